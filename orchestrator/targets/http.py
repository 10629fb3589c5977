"""What every HTTP import API shares: one call, its errors translated once, codes classified, and
the job ids of replies checked.

Errors arrive as HTTP 200 with a body ``{"code": n, "message": "..."}``: both the status and the body
code are checked (``reference/import-api.md`` section 5).

"May this reply have made a job?" is answered here once, for every target: on a create call, only a
reply that proves no job was made (HTTP 429, a refused connection, a well-formed body error code) is a
plain :class:`TransientError`; a lost or garbled reply, a timeout after sending, HTTP 5xx (a gateway may
answer 502/503/504 after the backend made the job) and a success without a usable job id are
:class:`AmbiguousError`: look before retrying.
"""

from __future__ import annotations

import email.utils
import json as jsonlib
import logging
import math
import time
from typing import Any

import httpx

from ..errors import (
    AmbiguousError,
    FatalTargetError,
    JobNotFoundError,
    PermanentError,
    ServerFullError,
    TargetError,
    TransientError,
    UnreachableError,
)
from ..redact import shown_url
from .reply import Reply, bounded

# Body codes worth retrying after a pause: the server refused the call, no job was created.
TRANSIENT_CODES = frozenset({40003, 1, 2, 4, 8, 1807})
# Body codes of a server that holds all the import jobs it takes: room comes when a job ends.
FULL_CODES = frozenset({47039, 47055})
# Milvus 2.5 says "full" with the code of a failed import (2100): only this message tells them apart
# (milvus-io/milvus issue 40123).
FULL_MESSAGE = "number of jobs has reached the limit"
IMPORT_FAILED = 2100
# Body codes that doom every call of the run: credentials, permissions, the cluster itself.
FATAL_CODES = frozenset({80001, 80002, 21119, 1800, 96012, 96013, 96014, 96015, 96016,
                         80020, 40021, 40022, 96018, 96036})
MAX_BODY_BYTES = 8 * 1024 * 1024  # a longer reply is not read further: it is an error, like garbage
# "Job not found": look the job up elsewhere before resubmitting.
JOB_NOT_FOUND_CODES = frozenset({90144, 96026})

MAX_JOB_ID = 256  # characters; Milvus's Idempotency-Key has the same bound
log = logging.getLogger("orchestrator")

_FATAL_HINTS = {
    80001: "the API key was refused: check target.api_key",
    80002: "the API key was refused: check target.api_key",
    21119: "the API key was refused: check target.api_key",
    1800: "the credentials were refused: check target.token (or user and password)",
    80020: "the cluster was not found: check target.cluster_id",
}


def call(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    json: Any = None,
    params: dict[str, Any] | None = None,
    success_codes: frozenset[int],
    creates: bool = False,
) -> Any:
    """Make one request and return the body's ``data``; raise a classified :class:`TargetError`.

    ``creates`` marks a call that may create a job, so that a reply lost after sending (timeouts,
    dropped connections, 5xx including 503, garbage) is an :class:`AmbiguousError` rather than a plain
    transient one. Reads (progress, list) keep 503 and the rest plain :class:`TransientError`.
    """
    unsure = AmbiguousError if creates else TransientError
    try:
        with client.stream(method, url, headers=headers, json=json, params=params) as response:
            raw, complete = _read_bounded(response)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise UnreachableError(f"cannot reach {_origin(url)}: {type(exc).__name__}") from exc
    except httpx.TimeoutException as exc:  # the call's deadline (settings.timeout_s), or the run stopping
        why = f" ({exc})" if str(exc) and str(exc) != "timed out" else ""
        raise unsure(f"no reply from {_origin(url)}: {type(exc).__name__}{why}") from exc
    except httpx.TransportError as exc:
        raise unsure(f"no reply from {_origin(url)}: {type(exc).__name__}") from exc
    text = _decoded(raw[:4096], response)  # for messages only
    status = response.status_code
    if status == 429:
        raise TransientError("rate limited (HTTP 429)", http_status=status,
                             retry_after=retry_after(response.headers.get("Retry-After")))
    if status == 503:
        raise unsure("service unavailable (HTTP 503)", http_status=status,
                     retry_after=retry_after(response.headers.get("Retry-After")))
    if status >= 500:
        raise unsure(f"server error (HTTP {status})", http_status=status)
    if status in (401, 403):
        raise FatalTargetError(f"the credentials were refused (HTTP {status}): check target.api_key "
                               "(zilliz) or target.token (milvus)", http_status=status)
    if status == 404:
        raise FatalTargetError(f"{_origin(url)}{_path(url)} answered 404: check target.endpoint "
                               "or target.region", http_status=status)
    if 300 <= status < 400:
        raise FatalTargetError(_redirected(url, status, response.headers.get("Location")), http_status=status)
    if status != 200:
        raise PermanentError(f"HTTP {status}: {_snippet(text)}", http_status=status)
    if not complete:
        raise unsure(f"the reply is longer than {MAX_BODY_BYTES // (1024 * 1024)} MiB: not read further "
                     f"({_snippet(text, 80)!r}...)", http_status=status)
    try:
        body = jsonlib.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise unsure(f"the reply is not JSON: {_snippet(text)!r}", http_status=status) from exc
    if not isinstance(body, dict) or "code" not in body:
        raise unsure(f"the reply has no 'code': {_snippet(text)!r}", http_status=status)
    reply = Reply(body, "reply", creates=creates, http_status=status)
    code = reply.code("code")
    if code in success_codes:
        return body.get("data")
    raise classify(code, reply.text("message") or "no message")


def classify(code: int | None, message: str) -> TargetError:
    """The error a body code means; ``message`` is the server's text (cut to a bound here)."""
    text = f"code {code}: {bounded(message)}"
    if code in FULL_CODES or (code == IMPORT_FAILED and FULL_MESSAGE in message.lower()):
        return ServerFullError(text, code=code)
    if code in TRANSIENT_CODES:
        return TransientError(text, code=code)
    if code in FATAL_CODES:
        hint = _FATAL_HINTS.get(code)
        return FatalTargetError(f"{text} ({hint})" if hint else text, code=code)
    if code in JOB_NOT_FOUND_CODES:
        return JobNotFoundError(text, code=code)
    return PermanentError(text, code=code)


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), as the server says them
    (the pause is capped where it is taken: ``settings.max_retry_after_s``); None when it is absent,
    negative, not finite or does not parse."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = max(0.0, when.timestamp() - (time.time() if now is None else now))
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _read_bounded(response: httpx.Response) -> tuple[bytes, bool]:
    """The body and True; or its start and False when it is longer than :data:`MAX_BODY_BYTES` (the rest
    is left unread)."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return bytes(body[:4096]), False
    return bytes(body), True


def job_id_of(data: Reply) -> Any:
    """``data.jobId`` (``jobID`` in one doc example) as the reply gives it, unchecked; None if absent."""
    value = data.raw("jobId") if data.has("jobId") else data.raw("jobID")
    return None if value in (None, "") else value


def job_id_problem(job_id: Any) -> str | None:
    """What makes ``job_id`` unacceptable, or None: a job id is a string (or an integer) of 1 to
    :data:`MAX_JOB_ID` printable ASCII characters, without spaces (every id the APIs hand out fits:
    numbers, ``job-...``, UUIDs)."""
    if isinstance(job_id, bool) or not isinstance(job_id, str | int):
        return f"is a JSON {type(job_id).__name__}, not a string"
    if isinstance(job_id, int) and not 0 <= job_id < 10 ** MAX_JOB_ID:
        return "is a number out of range"
    text = str(job_id)
    if not text:
        return "is empty"
    if len(text) > MAX_JOB_ID:
        return f"is {len(text)} characters long (at most {MAX_JOB_ID})"
    if not all("!" <= c <= "~" for c in text):
        return "holds a space, a control or a non-ASCII character"
    return None


def shown_id(job_id: Any) -> str:
    """A job id fit for a message: at most 40 characters, control characters escaped."""
    text = job_id[:41] if isinstance(job_id, str) else str(job_id)[:41] if isinstance(job_id, int) else \
        type(job_id).__name__
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


def created_job_id(data: Any) -> str:
    """The job id of a create call's successful reply. Without one, or with one that is not a job id,
    the call may still have made a job: :class:`AmbiguousError` (look before retrying)."""
    if data is None:
        raise AmbiguousError("the server reported success without a job id")
    job_id = job_id_of(Reply(data, "data", creates=True))
    if job_id is None:
        raise AmbiguousError("the server reported success without a job id")
    problem = job_id_problem(job_id)
    if problem is not None:
        raise AmbiguousError(f"the server reported success with a job id that {problem}: "
                             f"{shown_id(job_id)}, refused")
    return str(job_id)


def listed_job_id(record: Reply) -> str | None:
    """The job id of one job-list record, or None (with a warning) when it has none or a bad one: such a
    record is listed as :data:`~orchestrator.models.UNREADABLE_JOB_ID`, never stored."""
    job_id = job_id_of(record)
    problem = "is missing" if job_id is None else job_id_problem(job_id)
    if problem is None:
        return str(job_id)
    shown = f" {shown_id(job_id)}" if job_id is not None else ""
    log.warning("the job list holds a record whose job id%s %s: that job cannot be described, so no "
                "object of its collection is taken for having no job while it is listed", shown, problem)
    return None


def asked_job_id(job_id: str) -> str:
    """``job_id`` checked before a progress, commit or abort call: a job id no server hands out (a
    ledger written by an older version may hold one) is :class:`PermanentError`, not a request."""
    problem = job_id_problem(job_id)
    if problem is not None:
        raise PermanentError(f"job id {shown_id(job_id)} {problem}: no import API made it")
    return job_id


def _origin(url: str) -> str:
    u = httpx.URL(url)
    return shown_url(f"{u.scheme}://{u.netloc.decode()}")


def _path(url: str) -> str:
    return shown_url(httpx.URL(url).path)


def _decoded(raw: bytes, response: httpx.Response) -> str:
    """The start of a reply as text, for messages: in its declared charset, or UTF-8 when that is
    unknown or no text encoding (``charset=rot13``)."""
    try:
        return raw.decode(response.encoding or "utf-8", errors="replace")
    except (LookupError, ValueError):
        return raw.decode("utf-8", errors="replace")


def _redirected(url: str, status: int, location: str | None) -> str:
    """What a redirect from the import API means: the endpoint moved. It is not followed: the API key
    would go with it, wherever it points."""
    where = f"a redirect to {shown_url(bounded(location, 300))}" if location else \
        "a redirect without a Location"
    return (f"{_origin(url)}{_path(url)} answered HTTP {status}, {where}: redirects are not followed "
            "(the API key must not go with them); set target.endpoint to the address it names, if you "
            "trust it")


def _snippet(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


