"""What every fake import API shares: a real socket or an in-process transport, the job store, fault
injection, request records.

Each API (``zilliz.py`` v1, ``zilliz_v2.py``, ``milvus.py``) adds only its routes, its request checks
and its reply shapes, so tests can be parametrized over them through one interface:
``start()/stop()/url``, ``transport()`` (the same fake in-process, for ``httpx.Client(transport=...)``:
unit tests of a target that need no connection; see :class:`Exchange`), ``api_key``, ``jobs``
(``Job.object_url`` is always the object's URL), ``creates()``, ``created_urls()``, ``jobs_for(url)``,
``faults``, ``fault_rate``, ``poll_fault_rate``, ``honour_idempotency``, ``list_enabled``,
``complete_after``, ``fail_objects``, ``refuse_objects``, and ``manifest_target()`` for the manifest's
``target`` section.

Faults (consumed in order from ``faults``, then drawn at ``fault_rate`` with a seeded RNG), on create
calls. Refused before any job is made: ``500``, ``429`` (with Retry-After), ``busy`` (200 + the API's
"try again" code), ``full`` (200 + the API's "too many jobs" reply), ``garbage`` (HTML). The job is
made, then the reply is lost or wrong: ``drop`` (the
connection is closed without a reply), ``502``, ``504``, ``503-after`` (an HTTP 5xx reply, as a gateway
gives after the backend made the job), ``no-id`` (the success code without a job id), ``bad-id`` (a
success reply whose job id is ``bad_id``, by default 10 MB long), ``loris-header`` and ``loris-body`` (a
slow-loris server: the reply's headers, or its body, one byte every ``trickle_s``, padded so long that
it never ends while the client waits). ``dup-id`` makes nothing and answers
with the id of an existing job of another object (a protocol violation; needs one such job). ``slow``
answers late; ``none`` answers normally (to place a fault later in ``faults``).

Servers as they are, off by default: ``list_lag_s`` (a job shows in the list only that many seconds of
the fake's clock after it was made; progress by id knows it at once), ``job_memory_s`` (a job finished
longer ago than that is forgotten: progress answers "not found", the list drops it; ``jobs`` still
holds it for tests), ``pages_ignored`` (a paged list that answers every job on every page, with no
``count``, as Milvus's unpaged list would). As Milvus 2.6 / 3.0 (reference section 10): a job created
with ``timeout_s`` (Milvus's ``options.timeout``) fails when it passes before the job could complete;
with ``honour_idempotency`` a key is remembered ``key_memory_s`` (24 h) per collection, looked up after
the job-limit check.

File names: progress replies report an object as :meth:`FakeImportAPI.reported_name`, the part of its
URL after the host (``s3://b/emb/a b.parquet`` -> ``emb/a b.parquet``; ``https://h/b/emb/a%20b.parquet``
-> ``b/emb/a%20b.parquet``, still percent-encoded, as given). ``visible_rows(url)`` is how many rows
the jobs of one object made visible (``ROWS`` per completed job; a two-phase job only once committed).

Like a real server, the fake can hold a bounded number of unfinished jobs (``max_jobs``: a create past
it gets the ``full`` reply); ``complete_after`` is how long a job runs.
"""

from __future__ import annotations

import contextlib
import email.utils
import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Protocol, Self
from urllib.parse import parse_qs, urlparse

import httpx

FAULTS = ("500", "429", "busy", "full", "slow", "drop", "garbage", "502", "504", "503-after", "no-id",
          "bad-id", "dup-id", "loris-header", "loris-body", "none")
LORIS_PADDING = 100_000  # bytes a slow-loris reply trickles before its end: hours at any trickle_s
ROWS = 3  # the rows every fake job imports
STOP_POLL_S = 0.01  # how often a serving fake looks whether stop() was asked (http.server's default: 0.5 s)
DESCRIBE_COLLECTION = "/v2/vectordb/collections/describe"
NO_CLUSTER = "Cluster not exist or you don't have permission."
IN_PROCESS = "http://{type}.in-process.invalid"  # a fake's URL while it serves no socket


class Headers(Protocol):
    def get(self, name: str, default: None = None) -> str | None: ...


class Exchange(Protocol):
    """One request to a fake and the way its answer goes back: over a real socket (:class:`SocketExchange`)
    or in-process (:class:`MemoryExchange`, for ``httpx.MockTransport``). The fake's logic sees only this."""

    method: str
    path: str  # with the query
    headers: Headers  # looked up by name, whatever its case
    sent_headers: list[tuple[str, str]]  # as the client spelled them, in order
    body: bytes

    def send(self, status: int, headers: Iterable[tuple[str, str]], body: bytes, *,
             close: bool = False) -> None:
        """Answer: the status, headers and the whole body (``close``: then end the connection)."""

    def drop(self) -> None:
        """Close the connection without a reply (the job, if made, exists)."""

    def send_slowly(self, fast: bytes, slow: bytes, pause_s: float, stopping: threading.Event) -> None:
        """Write ``fast`` raw, then ``slow`` one byte every ``pause_s`` until the client hangs up or
        ``stopping`` is set (a slow-loris reply: raw bytes, headers included)."""

    def send_chunked(self, chunk: bytes, times: int) -> None:
        """A 200 whose chunked body is ``chunk`` ``times`` over, until the client hangs up."""


Handler = Callable[[Exchange, Any, dict[str, str]], None]


@dataclass
class Job:
    job_id: str
    collection: str
    object_url: str
    created: float
    fail_reason: str | None
    access_key: str
    idempotency_key: str | None
    partition: str | None = None
    db_name: str | None = None
    auto_commit: bool = True  # False: a two-phase job (Milvus), invisible until committed
    committed_at: float | None = None  # when a two-phase job was committed
    failed_at: float | None = None  # when it was aborted (a job refused at creation fails at once)
    more: tuple[str, ...] = ()  # the other objects of a job of several (``object_url`` is the first)
    timeout_s: float | None = None  # Milvus ``options.timeout``: fails the job if it runs longer
    failed_file: str | None = None  # the object of ``fail_objects`` that failed it

    @property
    def object_urls(self) -> tuple[str, ...]:
        return (self.object_url, *self.more)


@dataclass(frozen=True)
class OddReply:
    """A reply a misbehaving server sends to a create call: any status, headers and body; with
    ``makes_job`` the job is created first (the reply is lost or garbled after the fact)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    makes_job: bool = False


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float = 0.0  # time.monotonic() on arrival


@dataclass
class FakeImportAPI:
    TYPE: ClassVar[str]  # the manifest's target.type
    CREATE_PATH: ClassVar[str]
    BUSY: ClassVar[tuple[int, str]]  # the body code and message of a call refused for now (rate, state)
    FULL: ClassVar[tuple[int, str]]  # ... and of a server that holds all the import jobs it takes
    NEEDS_CREDENTIALS: ClassVar[bool] = True  # the manifest must carry import credentials

    api_key: str = "test-api-key-0123456789"
    complete_after: float = 0.0
    per_file_s: float = 0.0  # a job of n files runs complete_after + n * per_file_s
    fail_objects: dict[str, str] = field(default_factory=dict)  # url substring -> job failure reason
    # whether the reason of a failed job of several names the file that failed it (``(file k)``), as
    # Milvus's reader errors sometimes do and often do not (they name a field)
    reason_names_file: bool = True
    # what a describe reply's ``details[]`` say of each file of a failed job: ``own``, its own reason
    # (the one that failed it: the job's reason; the others: none), or ``job``, the job's reason for
    # every file (details that do not tell which file failed)
    file_details: str = "own"
    refuse_objects: dict[str, tuple[int, str]] = field(default_factory=dict)  # url substring -> code, msg
    faults: list[str] = field(default_factory=list)  # consumed in order, for create calls
    odd_replies: list[OddReply] = field(default_factory=list)  # consumed in order, before ``faults``
    fault_rate: dict[str, float] = field(default_factory=dict)  # fault -> probability, for create calls
    poll_fault_rate: float = 0.0  # probability of a 500 on progress/list calls
    honour_idempotency: bool = False
    max_jobs: int | None = None  # unfinished jobs the server holds; a create past it is refused as full
    before_list: Callable[[], None] | None = None  # called before each list call answers
    newest_first: bool = False  # the order of the job list
    # a paged list (Zilliz) whose server ignores the page fields and says no ``count``, as Milvus's
    # list does (reference section 10): every page answers every job
    pages_ignored: bool = False
    list_enabled: bool = True
    slow_s: float = 0.3
    trickle_s: float = 0.05  # a slow-loris reply's pause between bytes
    latency_s: float = 0.0
    seed: int = 7
    clock: Callable[[], float] = time.monotonic
    before_reply: Callable[[Job], None] | None = None  # called after a job is created, before the reply
    list_lag_s: float = 0.0  # a job shows in the list only this long after it was made
    job_memory_s: float | None = None  # finished jobs are forgotten this long after they finished
    # how long an Idempotency-Key is remembered, per collection (reference section 10: about 24 h;
    # milvus-io/milvus pull requests 52320, 52544)
    key_memory_s: float = 86_400.0
    bad_id: str | None = None  # the job id a ``bad-id`` reply carries (None: 10 MB of digits)
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> describe ``data``
    # A hostile server: every JSON reply goes through ``hostile(route path, payload)`` and the result is
    # sent instead (bytes are sent as they are), with ``content_type`` (say, an unknown charset)
    hostile: Callable[[str, Any], Any] | None = None
    content_type: str = "application/json"
    jobs: dict[str, Job] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._rng = random.Random(self.seed)
        self._server: ThreadingHTTPServer | None = None
        self._stopping = threading.Event()  # ends the replies that trickle

    # -- what each API defines ----------------------------------------------------------------

    def routes(self) -> dict[tuple[str, str], Handler]:
        raise NotImplementedError

    def manifest_target(self) -> dict[str, Any]:
        """The manifest's ``target`` section for this fake (secrets as ``${ENV}`` references)."""
        raise NotImplementedError

    def urls_of(self, body: Any) -> list[str]:
        """The object URLs one create call named, in order."""
        raise NotImplementedError

    def new_job_id(self, n: int) -> str:
        return f"job-{n:020d}"

    def created_reply(self, job_id: str) -> dict[str, Any]:
        return {"code": 0, "data": {"jobId": job_id}}

    def authorized(self, h: Exchange) -> bool:
        return h.headers.get("Authorization") == f"Bearer {self.api_key}"

    def unauthorized(self, h: Exchange) -> None:
        self.reply(h, {"code": 80001, "message": "Invalid token: your token is not valid."})

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        fake = self

        class RequestHandler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def handle(self) -> None:
                with contextlib.suppress(OSError):  # the client died mid-request (tests kill it)
                    super().handle()

            def do_GET(self) -> None:
                fake._dispatch(SocketExchange(self))

            def do_POST(self) -> None:
                fake._dispatch(SocketExchange(self))

        class Server(ThreadingHTTPServer):
            request_queue_size = 128
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), RequestHandler)
        threading.Thread(target=self._server.serve_forever, args=(STOP_POLL_S,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def transport(self) -> httpx.MockTransport:
        """The fake in-process, with no socket: a transport for ``httpx.Client(transport=...)`` that hands
        each request to the same dispatch as the socket does (auth, codes, faults, job caps, clocks).
        A fault that needs a real connection (``drop``, ``endless``, the slow-loris ones, a reply slower
        than the client's read timeout) raises :class:`NeedsSocket`: such tests run on :meth:`start`."""

        def handle(request: httpx.Request) -> httpx.Response:
            read = (request.extensions.get("timeout") or {}).get("read")
            slowest = max(self.latency_s, self.slow_s if "slow" in self.faults else 0.0)
            if read is not None and slowest >= read:  # httpx bounds no in-process call: no ReadTimeout
                raise NeedsSocket("a reply slower than the client's read timeout needs a real connection")
            exchange = MemoryExchange(request)
            self._dispatch(exchange)
            return exchange.response(request)

        return httpx.MockTransport(handle)

    @property
    def url(self) -> str:
        """Where the socket listens; before :meth:`start`, a name no DNS resolves (in-process use)."""
        if self._server is None:
            return IN_PROCESS.format(type=self.TYPE)
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- what tests look at -------------------------------------------------------------------

    def jobs_for(self, object_url: str) -> list[Job]:
        """Every job that names ``object_url`` (alone, or among others)."""
        with self._lock:
            return [j for j in self.jobs.values() if object_url in j.object_urls]

    def creates(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == self.CREATE_PATH]

    def created_urls(self) -> list[str]:
        """The object URLs of every create call received, in order (whatever the API's spelling)."""
        return [url for r in self.creates() for url in self.urls_of(r.body)]

    def unfinished(self) -> int:
        """Jobs still pending or running, by the fake's clock."""
        with self._lock:
            jobs = list(self.jobs.values())
        return sum(1 for j in jobs if self.phase(j) == "running")

    def add_job(self, object_url: str, collection: str) -> Job:
        """A job as if a create call had made it (its reply never reached anyone)."""
        with self._lock:
            job_id = self.new_job_id(next(self._ids))
            self.jobs[job_id] = Job(job_id, collection, object_url, self.clock(), None, "", None)
            return self.jobs[job_id]

    def phase(self, job: Job) -> str:
        """``running``, ``completed`` or ``failed``, by the fake's clock. A job whose ``timeout_s``
        passed before it could complete fails then, with Milvus's reason (reference section 10:
        ``options.timeout``, importutilv2/option.go; a job without it never times out)."""
        if (job.fail_reason is None and job.timeout_s is not None and job.timeout_s < self.duration(job)
                and self.clock() - job.created >= job.timeout_s):
            job.fail_reason = f"import timeout, expired the specified time limit {job.timeout_s:g}s"
            job.failed_at = job.created + job.timeout_s
        if job.fail_reason is not None:
            return "failed"
        return "completed" if self.clock() - job.created >= self.duration(job) else "running"

    def duration(self, job: Job) -> float:
        return self.complete_after + self.per_file_s * len(job.object_urls)

    def finished_at(self, job: Job) -> float | None:
        """When the job ended (completed or failed), by the fake's clock; None while it runs."""
        phase = self.phase(job)
        if phase == "failed":
            return job.failed_at if job.failed_at is not None else job.created
        if phase == "completed":
            return job.created + self.duration(job)
        return None

    def remembered(self, job: Job) -> bool:
        """False once the job finished more than ``job_memory_s`` ago."""
        finished = self.finished_at(job) if self.job_memory_s is not None else None
        return finished is None or self.clock() - finished < (self.job_memory_s or 0.0)

    def listed_jobs(self) -> list[Job]:
        """The jobs a list call shows: remembered ones, at least ``list_lag_s`` old (``before_list`` runs
        first: a test can change the jobs between two pages)."""
        if self.before_list is not None:
            self.before_list()
        now = self.clock()
        jobs = [j for j in self.all_jobs() if now - j.created >= self.list_lag_s and self.remembered(j)]
        return jobs[::-1] if self.newest_first else jobs

    def page(self, jobs: list[Job], size: int, page: int) -> tuple[list[Job], dict[str, int]]:
        """One page of a paged list, and its ``count`` field (none when ``pages_ignored``)."""
        if self.pages_ignored:
            return jobs, {}
        return jobs[(page - 1) * size: page * size], {"count": len(jobs)}

    def reported_name(self, object_url: str) -> str:
        """How progress replies name the object: its URL after the host, as given (still
        percent-encoded for the https styles)."""
        return object_url.split("://", 1)[1].split("/", 1)[1]

    def file_reason(self, job: Job, object_url: str) -> str:
        """The reason a describe reply's ``details[]`` give for one file of ``job`` (``file_details``):
        with ``own``, only the file that failed the job has one (a job failed as a whole, by a timeout
        or an abort, gives every file its reason)."""
        if job.fail_reason is None:
            return ""
        if self.file_details == "own" and job.failed_file is not None and object_url != job.failed_file:
            return ""
        return job.fail_reason

    def visible_rows(self, object_url: str) -> int:
        """The rows the jobs of ``object_url`` made visible: imported once means ``ROWS``."""
        return sum(ROWS for j in self.jobs_for(object_url) if self.phase(j) == "completed")

    # -- the machinery the routes use ---------------------------------------------------------

    def reply(self, h: Exchange, payload: Any, *, status: int = 200,
              headers: dict[str, str] | None = None, raw: bytes | None = None) -> None:
        html = raw is not None
        if raw is None:
            sent = self.hostile(urlparse(h.path).path, payload) if self.hostile is not None else payload
            raw = sent if isinstance(sent, bytes) else json.dumps(sent).encode()
        h.send(status, [("Content-Type", "text/html" if html else self.content_type),
                        ("Content-Length", str(len(raw))), *(headers or {}).items()], raw)

    def send_raw(self, h: Exchange, odd: OddReply) -> None:
        h.send(odd.status, [*odd.headers.items(), ("Content-Length", str(len(odd.body)))], odd.body,
               close=True)

    def endless(self, h: Exchange, *, limit_bytes: int = 1 << 30) -> None:
        """A 200 whose chunked JSON body goes on (up to ``limit_bytes``, far past any client's bound)
        until the client hangs up."""
        chunk = b'{"code": 0, "data": {"jobId": "' + b"9" * 65536
        h.send_chunked(chunk, limit_bytes // len(chunk))

    def trickle(self, h: Exchange, payload: Any, *, headers_too: bool) -> None:
        """A slow-loris reply: its headers (padded), or only its body (after blank padding, which JSON
        allows), one byte every ``trickle_s``, until it ends (never, in a test), the client hangs up or
        the fake stops."""
        body = b" " * (0 if headers_too else LORIS_PADDING) + json.dumps(payload).encode()
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                + (f"X-Padding: {'a' * LORIS_PADDING}\r\n" if headers_too else "") + "\r\n").encode()
        slow, fast = (head + body, b"") if headers_too else (body, head)
        h.send_slowly(fast, slow, self.trickle_s, self._stopping)

    def new_job(self, h: Exchange, *, object_url: str, collection: str, access_key: str = "",
                partition: str | None = None, db_name: str | None = None, auto_commit: bool = True,
                more: tuple[str, ...] = (), timeout_s: float | None = None) -> None:
        """Refuse, fail, fault or create the job for one create call (of ``object_url`` and ``more``),
        and answer it. A refusal or a failure of a job of several names the file at fault, as Milvus
        does."""
        urls = (object_url, *more)
        refusal = next(((u, r) for u in urls for s, r in self.refuse_objects.items() if s in u), None)
        if refusal is not None:
            code, message = refusal[1]
            named = f"{message} (file {self.reported_name(refusal[0])})" if more else message
            return self.reply(h, {"code": code, "message": named})
        with self._lock:
            odd = self.odd_replies.pop(0) if self.odd_replies else None
        if odd is not None and not odd.makes_job:
            return self.send_raw(h, odd)
        fault = None if odd is not None else self._next_fault()
        if fault == "500":
            return self.reply(h, {"message": "internal error"}, status=500)
        if fault == "429":
            return self.reply(h, {"message": "too many requests"}, status=429, headers={"Retry-After": "0"})
        if fault == "busy":
            return self.reply(h, {"code": self.BUSY[0], "message": self.BUSY[1]})
        if fault == "full" or (self.max_jobs is not None and self.unfinished() >= self.max_jobs):
            return self.reply(h, {"code": self.FULL[0], "message": self.FULL[1]})
        if fault == "garbage":
            return self.reply(h, None, raw=b"<html>502 Bad Gateway</html>")
        if fault == "dup-id":
            other = next((j for j in self.all_jobs() if j.object_urls != urls), None)
            if other is None:
                return self.reply(h, {"message": "dup-id needs a job of another object"}, status=500)
            return self.reply(h, self.created_reply(other.job_id))
        if fault == "slow":
            time.sleep(self.slow_s)
        key = h.headers.get("Idempotency-Key")
        with self._lock:
            # after the limit check above, as Milvus does (reference section 10): a retry while the
            # server is full is refused, not answered with a job; the key is scoped to the collection
            # and remembered ``key_memory_s``; a failed job's key keeps returning that failed job
            if self.honour_idempotency and key:
                for job in self.jobs.values():
                    if (job.idempotency_key, job.collection) == (key, collection) \
                            and self.clock() - job.created < self.key_memory_s:
                        return self.reply(h, self.created_reply(job.job_id))
            job_id = self.new_job_id(next(self._ids))
            failing = next(((u, r) for u in urls for s, r in self.fail_objects.items() if s in u), None)
            reason = None if failing is None else \
                f"{failing[1]} (file {self.reported_name(failing[0])})" if more and self.reason_names_file \
                else failing[1]
            self.jobs[job_id] = Job(job_id, collection, object_url, self.clock(), reason, access_key, key,
                                    partition, db_name, auto_commit, more=more, timeout_s=timeout_s,
                                    failed_file=None if failing is None else failing[0])
        if self.before_reply is not None:
            self.before_reply(self.jobs[job_id])
        if fault == "drop":
            return h.drop()  # the job exists, the reply is lost
        if fault in ("502", "504", "503-after"):
            return self.reply(h, None, status=int(fault[:3]), raw=b"<html>Bad Gateway</html>")
        if fault == "no-id":
            return self.reply(h, {**self.created_reply(job_id), "data": {}})
        if fault == "bad-id":
            return self.reply(h, self.created_reply(self.bad_id if self.bad_id is not None else "9" * 10**7))
        if fault == "endless":
            return self.endless(h)  # the job exists, the reply never ends
        if fault in ("loris-header", "loris-body"):
            return self.trickle(h, self.created_reply(job_id), headers_too=fault == "loris-header")
        if odd is not None:
            return self.send_raw(h, odd)  # the job exists, the reply says something else
        return self.reply(h, self.created_reply(job_id))

    def _describe_collection(self, h: Exchange, body: Any) -> None:
        name = body.get("collectionName") if isinstance(body, dict) else None
        if name not in self.collections:
            return self.reply(h, {"code": 100, "message": f"collection not found[collection={name}]"})
        return self.reply(h, {"code": 0, "data": self.collections[name]})

    def poll_fault(self, h: Exchange) -> bool:
        """A 500 on a progress or list call, at ``poll_fault_rate``."""
        with self._lock:
            hit = self.poll_fault_rate > 0 and self._rng.random() < self.poll_fault_rate
        if hit:
            self.reply(h, {"message": "internal error"}, status=500)
        return hit

    def job(self, job_id: Any) -> Job | None:
        """The job as the server knows it: None for an unknown or forgotten one."""
        with self._lock:
            job = self.jobs.get(str(job_id))
        return job if job is not None and self.remembered(job) else None

    def all_jobs(self) -> list[Job]:
        with self._lock:
            return list(self.jobs.values())

    def _next_fault(self) -> str | None:
        with self._lock:
            if self.faults:
                return self.faults.pop(0)
            for fault, rate in self.fault_rate.items():
                if self._rng.random() < rate:
                    return fault
        return None

    def _dispatch(self, h: Exchange) -> None:
        method = h.method
        parsed = urlparse(h.path)
        try:
            body = json.loads(h.body) if h.body else None
        except ValueError:
            body = None
        if parsed.path == "/_fake/received":  # for benchmarks that run the fake in another process
            with self._lock:
                stamps = [r.at for r in self.received]
            return self.reply(h, {"code": 0, "data": stamps})
        if parsed.path == "/_fake/calls":  # the same: calls by path, and the jobs made
            with self._lock:
                paths = [r.path for r in self.received]
                made = len(self.jobs)
            return self.reply(h, {"code": 0, "data": {"paths": paths, "jobs": made}})
        with self._lock:
            self.received.append(Received(method, parsed.path, dict(h.sent_headers), body, time.monotonic()))
        if self.latency_s:
            time.sleep(self.latency_s)
        if not self.authorized(h):
            return self.unauthorized(h)
        if (method, parsed.path) == ("POST", DESCRIBE_COLLECTION):  # the data plane, for pre-flight
            return self._describe_collection(h, body)
        handler = self.routes().get((method, parsed.path))
        if handler is None:
            return self.reply(h, {"code": 404, "message": "not found"}, status=404)
        handler(h, body, {k: v[0] for k, v in parse_qs(parsed.query).items()})
        return None


def check_keys(body: Any, *, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> str | None:
    """What is wrong with a JSON body's keys, as the server would say it, or None."""
    if not isinstance(body, dict):
        return "invalid parameter: body is not a JSON object"
    missing = [k for k in required if body.get(k) in (None, "", [])]
    if missing:
        return f"invalid parameter: missing {missing}"
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
        return f"invalid parameter: unknown {unknown}"
    return None


class NeedsSocket(AssertionError):
    """A fault that only a real connection can give (a lost reply, a slow-loris, an endless body) was
    drawn by a fake serving in-process: the test belongs on :meth:`FakeImportAPI.start`."""


class SocketExchange:
    """A request on a real socket (``http.server``): the reply is written to the connection."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self._h = handler
        self.method = handler.command
        self.path = handler.path
        self.headers: Headers = handler.headers
        self.sent_headers = list(handler.headers.items())
        length = int(handler.headers.get("Content-Length") or 0)
        self.body = handler.rfile.read(length) if length else b""

    def send(self, status: int, headers: Iterable[tuple[str, str]], body: bytes, *,
             close: bool = False) -> None:
        h = self._h
        if close:
            h.close_connection = True
        try:
            h.send_response(status)  # with the Server and Date headers
            for name, value in headers:
                h.send_header(name, value)
            h.end_headers()
            h.wfile.write(body)
        except OSError:  # the client died (tests kill it on purpose)
            h.close_connection = True

    def drop(self) -> None:
        self._h.close_connection = True

    def send_slowly(self, fast: bytes, slow: bytes, pause_s: float, stopping: threading.Event) -> None:
        h = self._h
        h.close_connection = True
        try:
            h.wfile.write(fast)
            h.wfile.flush()
            for i in range(len(slow)):
                if stopping.wait(pause_s):
                    return
                h.wfile.write(slow[i:i + 1])
                h.wfile.flush()
        except OSError:  # the client gave up and closed: what it should do
            pass

    def send_chunked(self, chunk: bytes, times: int) -> None:
        h = self._h
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        h.close_connection = True
        try:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            for _ in range(times):
                h.wfile.write(framed)
        except OSError:  # the client stopped reading and closed: what it should do
            pass


class MemoryExchange:
    """A request handed over in-process by ``httpx.MockTransport``: the reply becomes an
    ``httpx.Response`` with the headers ``http.server`` adds to every reply (``Server``, ``Date``)."""

    SERVER = f"{BaseHTTPRequestHandler.server_version} {BaseHTTPRequestHandler.sys_version}"

    def __init__(self, request: httpx.Request) -> None:
        self.method = request.method
        self.path = request.url.raw_path.decode("ascii")
        self.headers: Headers = request.headers
        self.sent_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        self.body = request.content
        self._reply: tuple[int, list[tuple[str, str]], bytes] | None = None

    def send(self, status: int, headers: Iterable[tuple[str, str]], body: bytes, *,
             close: bool = False) -> None:
        sent = [("Server", self.SERVER), ("Date", email.utils.formatdate(time.time(), usegmt=True)), *headers]
        self._reply = (status, sent, body)

    def drop(self) -> None:
        raise NeedsSocket("a lost reply (fault 'drop') needs a real connection")

    def send_slowly(self, fast: bytes, slow: bytes, pause_s: float, stopping: threading.Event) -> None:
        raise NeedsSocket("a slow-loris reply needs a real connection")

    def send_chunked(self, chunk: bytes, times: int) -> None:
        raise NeedsSocket("an endless reply needs a real connection")

    def response(self, request: httpx.Request) -> httpx.Response:
        if self._reply is None:
            raise NeedsSocket(f"{self.method} {self.path} was never answered")
        status, headers, body = self._reply
        return httpx.Response(status, headers=headers, content=body, request=request)
