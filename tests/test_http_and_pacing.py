"""Response classification, backoff and pacing: pure parts, no server."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from orchestrator.errors import (
    AmbiguousError,
    FatalTargetError,
    PermanentError,
    ServerFullError,
    TransientError,
    UnreachableError,
)
from orchestrator.models import Secret
from orchestrator.redact import Redactor
from orchestrator.run.submitter import idempotency_key
from orchestrator.targets.http import call, retry_after
from orchestrator.targets.pacing import RateLimiter, backoff, with_retries

OK = frozenset({0, 200})


def answer(status: int, body: Any = None, *, text: str | None = None, headers: dict[str, str] | None = None,
           creates: bool = True) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return call(client, "POST", "http://api.test/v1/x", headers={}, json={}, success_codes=OK,
                    creates=creates)


def test_success_needs_status_200_and_a_success_code() -> None:
    assert answer(200, {"code": 200, "data": {"jobId": "j"}}) == {"jobId": "j"}
    assert answer(200, {"code": 0, "data": {"jobId": "j"}}) == {"jobId": "j"}


@pytest.mark.parametrize(("status", "body", "kind", "words"), [
    (200, {"code": 80001, "message": "Invalid token"}, FatalTargetError, "check target.api_key"),
    (200, {"code": 80020, "message": "Cluster not exist"}, FatalTargetError, "check target.cluster_id"),
    (200, {"code": 47055, "message": "busy"}, ServerFullError, "code 47055: busy"),
    (200, {"code": 40003, "message": "cluster state"}, TransientError, "code 40003"),
    # Milvus 2.5's "full" shares its code with a real import failure: only the message tells
    (200, {"code": 2100, "message": "The number of jobs has reached the limit, please try again later."},
     ServerFullError, "code 2100"),
    (200, {"code": 2100, "message": "import failed: field 'x' type mis-match"}, PermanentError, "mis-match"),
    (200, {"code": 90001, "message": "collection not found"}, PermanentError, "code 90001"),
    (200, {"code": 83001, "message": "access denied"}, PermanentError, "access denied"),
    (200, {"message": "no code"}, AmbiguousError, "no 'code'"),
    (200, ["a", "list"], AmbiguousError, "no 'code'"),
    (500, {"message": "oops"}, AmbiguousError, "HTTP 500"),
    (502, {}, AmbiguousError, "HTTP 502"),
    (401, {}, FatalTargetError, "HTTP 401"),
    (404, {}, FatalTargetError, "check target.endpoint"),
    (400, {"message": "bad"}, PermanentError, "HTTP 400"),
])
def test_classification(status: int, body: Any, kind: type[Exception], words: str) -> None:
    with pytest.raises(kind) as info:
        answer(status, body)
    assert type(info.value) is kind and words in str(info.value)


def test_rate_limit_carries_retry_after_and_is_not_ambiguous() -> None:
    with pytest.raises(TransientError) as info:
        answer(429, {}, headers={"Retry-After": "7"})
    assert type(info.value) is TransientError and info.value.retry_after == 7.0


def test_garbage_is_ambiguous_for_creates_and_transient_for_reads() -> None:
    with pytest.raises(AmbiguousError, match="not JSON"):
        answer(200, text="<html>502</html>")
    with pytest.raises(TransientError) as info:
        answer(200, text="<html>502</html>", creates=False)
    assert type(info.value) is TransientError


def test_lost_connection_is_ambiguous_but_refused_connection_is_not() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    with httpx.Client(transport=httpx.MockTransport(drop)) as client, pytest.raises(AmbiguousError):
        call(client, "POST", "http://api.test/x", headers={}, success_codes=OK, creates=True)
    with httpx.Client() as client, pytest.raises(TransientError) as info:
        call(client, "POST", "http://127.0.0.1:9/x", headers={}, success_codes=OK, creates=True)
    assert type(info.value) is UnreachableError and "cannot reach" in str(info.value)  # nothing was sent


def test_retry_after_parses_seconds_and_dates() -> None:
    assert retry_after("3") == 3.0
    assert retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after("soon") is None and retry_after(None) is None


def test_backoff_is_full_jitter_capped_and_honours_retry_after() -> None:
    assert backoff(1, retry_after=None, rng=lambda: 1.0) == 0.5
    assert backoff(4, retry_after=None, rng=lambda: 1.0) == 4.0
    assert backoff(30, retry_after=None, rng=lambda: 1.0) == 30.0
    assert backoff(3, retry_after=None, rng=lambda: 0.0) == 0.0
    assert backoff(1, retry_after=12.0, rng=lambda: 0.5) == 12.0


def test_rate_limiter_spaces_calls_on_an_injected_clock() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(4, clock=lambda: now[0], sleep=sleep)
    stamps = []
    for _ in range(9):
        limiter.acquire()
        stamps.append(now[0])
    assert stamps == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    for t in stamps:  # never more than 4 in any one-second window
        assert sum(1 for s in stamps if t <= s < t + 1) <= 4


def test_with_retries_stops_at_max_attempts() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        raise TransientError("busy", retry_after=None)

    with pytest.raises(TransientError):
        with_retries(flaky, max_attempts=3, sleep=lambda s: None, rng=lambda: 0.0, stop=threading.Event())
    assert len(calls) == 3


def test_redactor_and_idempotency_key() -> None:
    redact = Redactor([Secret("supersecretvalue"), Secret("x")])
    assert redact("got supersecretvalue back") == "got *** back"
    a = idempotency_key([("s3://b/k", "e1", 0)], "t\0c\0")
    assert a == idempotency_key([("s3://b/k", "e1", 0)], "t\0c\0")
    assert a != idempotency_key([("s3://b/k", "e1", 1)], "t\0c\0")  # after a failure or a re-arm
    assert a != idempotency_key([("s3://b/k", "e1", 0)], "t\0other\0")  # another destination
    assert len(a) <= 256 and a.isascii()
    # a job of several objects: one key for the group, whatever the order; another group, another key
    group = [("s3://b/k", "e1", 0), ("s3://b/l", "e7", 2)]
    assert idempotency_key(group, "t\0c\0") == idempotency_key(group[::-1], "t\0c\0")
    assert idempotency_key(group, "t\0c\0") not in (a, idempotency_key([*group[:1], ("s3://b/m", "e7", 2)],
                                                                          "t\0c\0"))
    assert idempotency_key(group, "t\0c\0") != idempotency_key([group[0], (*group[1][:2], 3)], "t\0c\0")


def test_every_log_line_is_redacted_while_a_manifest_is_in_use(tmp_path: Any) -> None:
    import io
    import logging

    from orchestrator.cli.logs import JsonFormatter
    from orchestrator.run.wiring import load_manifest, redacting

    path = tmp_path / "m.yaml"
    path.write_text("version: 1\ntarget: {type: milvus, endpoint: 'http://127.0.0.1:9', token: '${T}'}\n"
                    "sources: [{url: 's3://lake/x/', collection: c}]\n")
    manifest = load_manifest(path, {"T": "root:hunter2-secret"})
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("orchestrator")
    logger.addHandler(handler)
    try:
        with redacting(manifest):  # e.g. a proxy's error page that echoed our request
            logger.warning("no reply: %s", "<html>Bearer root:hunter2-secret</html>",
                           extra={"event": "ambiguous", "error": "token root:hunter2-secret refused"})
        logger.warning("after: %s", "root:hunter2-secret")  # outside, the filter is gone again
    finally:
        logger.removeHandler(handler)
    first, second = out.getvalue().splitlines()
    assert "hunter2" not in first and "Bearer ***" in first and '"error": "token *** refused"' in first
    assert "hunter2" in second
