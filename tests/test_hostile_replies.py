"""Misbehaving servers: a Retry-After of days (or of nothing), and replies that never end. Each is a
bounded wait or a classified error, on a real socket."""

from __future__ import annotations

import resource
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.errors import MAX_RETRY_AFTER_S, AmbiguousError, TransientError
from orchestrator.submit import backoff
from orchestrator.targets.http import MAX_BODY_BYTES, call, retry_after
from tests.conftest import HTTP_TARGETS, SECRETS
from tests.fakes.base import FakeImportAPI
from tests.fakes.canned import Canned, CannedServer
from tests.test_exactly_once import assert_exactly_once

OK = frozenset({0})


@pytest.mark.parametrize(("value", "seconds"), [
    ("999999", MAX_RETRY_AFTER_S), ("1e400", None), ("inf", None), ("-inf", None), ("nan", None),
    ("-5", None), ("3.5", 3.5), ("0", 0.0), ("", None), ("soon", None), ("Wed, 99 Foo 2015", None),
    ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_S), ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
    ("Wed, 21 Oct 2015 07:27:10 GMT", 0.0),
])
def test_retry_after_is_capped_and_nonsense_ignored(value: str, seconds: float | None) -> None:
    assert retry_after(value, now=1445412480.0) == seconds


def test_backoff_never_waits_past_the_cap_nor_on_nonsense() -> None:
    assert backoff(1, retry_after=10 ** 9, rng=lambda: 0.5) == MAX_RETRY_AFTER_S
    assert backoff(1, retry_after=float("inf"), rng=lambda: 1.0) == 0.5
    assert backoff(1, retry_after=float("nan"), rng=lambda: 1.0) == 0.5
    assert backoff(1, retry_after=-3.0, rng=lambda: 1.0) == 0.5


@pytest.mark.parametrize("header", ["999999", "inf", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_429_over_http_waits_at_most_the_cap(canned: CannedServer, header: str) -> None:
    canned.reply = Canned(429, '{"message": "slow down"}', headers={"Retry-After": header})
    with httpx.Client() as client, pytest.raises(TransientError) as info:
        call(client, "POST", f"{canned.url}/create", headers={}, success_codes=OK, creates=True)
    assert info.value.retry_after is None or 0 <= info.value.retry_after <= MAX_RETRY_AFTER_S


@pytest.mark.parametrize("creates", [True, False])
def test_an_endless_reply_is_cut_at_the_bound_and_classified_like_garbage(creates: bool) -> None:
    fake = FakeImportAPI.__new__(FakeImportAPI)  # only its endless reply: any route answers it

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            FakeImportAPI.endless(fake, self)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with httpx.Client(timeout=30) as client, pytest.raises(TransientError) as info:
            call(client, "POST", f"http://127.0.0.1:{server.server_address[1]}/create", headers={},
                 json={}, success_codes=OK, creates=creates)
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    finally:
        server.shutdown()
        server.server_close()
    assert (type(info.value) is AmbiguousError) is creates
    assert f"longer than {MAX_BODY_BYTES // 2 ** 20} MiB" in str(info.value) and len(str(info.value)) < 300
    assert grown_mb < 3 * MAX_BODY_BYTES / 2 ** 20


@pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)
def test_an_endless_create_reply_is_adopted_not_resubmitted(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(3)])
    fake_api.faults = ["endless"]
    manifest = write_manifest(settings={"concurrency": 1})
    result = CliRunner().invoke(cli, ["run", str(manifest)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "adopted=1" in result.stdout and "submitted=2" in result.stdout
    assert "Traceback" not in result.output and not any(s in result.output for s in SECRETS)
    assert_exactly_once(fake_api, manifest, urls)
