"""A fake Zilliz Cloud import API (REST v1) on a real socket, with injectable faults.

It checks the bearer token and the body, answers errors as HTTP 200 + body ``code`` like the real
service, and records every request it received. Jobs complete after ``complete_after`` seconds of its
clock, or fail with a reason when their object URL contains one of ``fail_objects``' keys.

Faults (consumed in order from ``faults``, then drawn at ``fault_rate`` with a seeded RNG):
``500``, ``429`` (with Retry-After), ``busy`` (200 + code 47055), ``slow`` (a late reply),
``drop`` (the job is created, then the connection is closed without a reply), ``garbage`` (HTML).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

FAULTS = ("500", "429", "busy", "slow", "drop", "garbage")


@dataclass
class Job:
    job_id: str
    collection: str
    object_url: str
    created: float
    fail_reason: str | None
    access_key: str
    idempotency_key: str | None


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float = 0.0  # time.monotonic() on arrival


@dataclass
class FakeZilliz:
    api_key: str = "test-api-key-0123456789"
    cluster_id: str = "inxx-fake0000000001"
    complete_after: float = 0.0
    fail_objects: dict[str, str] = field(default_factory=dict)  # url substring -> job failure reason
    refuse_objects: dict[str, tuple[int, str]] = field(default_factory=dict)  # url substring -> code, msg
    faults: list[str] = field(default_factory=list)  # consumed in order, for create calls
    fault_rate: dict[str, float] = field(default_factory=dict)  # fault -> probability, for create calls
    poll_fault_rate: float = 0.0  # probability of a 500 on progress/list calls
    honour_idempotency: bool = False
    list_enabled: bool = True
    list_key: str = "tasks"  # the doc example says tasks, the doc schema records
    success_code: int = 200
    slow_s: float = 0.3
    latency_s: float = 0.0
    seed: int = 7
    clock: Callable[[], float] = time.monotonic
    before_reply: Callable[[Job], None] | None = None  # called after a job is created, before the reply
    jobs: dict[str, Job] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._rng = random.Random(self.seed)
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeZilliz:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def handle(self) -> None:
                with contextlib.suppress(OSError):  # the client died mid-request (tests kill it)
                    super().handle()

            def do_GET(self) -> None:
                fake._dispatch(self, "GET")

            def do_POST(self) -> None:
                fake._dispatch(self, "POST")

        class Server(ThreadingHTTPServer):
            request_queue_size = 128
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- what tests look at -------------------------------------------------------------------

    def jobs_for(self, object_url: str) -> list[Job]:
        with self._lock:
            return [j for j in self.jobs.values() if j.object_url == object_url]

    def creates(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == "/v1/vector/collections/import"]

    def state(self, job: Job) -> str:
        if job.fail_reason is not None:
            return "ImportFailed"
        return "ImportCompleted" if self.clock() - job.created >= self.complete_after else "ImportRunning"

    # -- handling -----------------------------------------------------------------------------

    def _dispatch(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urlparse(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self.received.append(Received(method, parsed.path, dict(h.headers.items()), body,
                                          time.monotonic()))
        if self.latency_s:
            time.sleep(self.latency_s)
        if parsed.path == "/_fake/received":  # for benchmarks that run the fake in another process
            with self._lock:
                stamps = [r.at for r in self.received if r.path != "/_fake/received"]
            return self._reply(h, {"code": 0, "data": stamps})
        if h.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._reply(h, {"code": 80001, "message": "Invalid token: your token is not valid."})
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        routes = {
            ("POST", "/v1/vector/collections/import"): self._create,
            ("GET", "/v1/vector/collections/import/get"): self._progress,
            ("GET", "/v1/vector/collections/import/list"): self._list,
        }
        handler = routes.get((method, parsed.path))
        if handler is None:
            return self._reply(h, {"code": 404, "message": "not found"}, status=404)
        handler(h, body, query)

    def _reply(self, h: BaseHTTPRequestHandler, payload: Any, *, status: int = 200,
               headers: dict[str, str] | None = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "text/html" if raw is not None else "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        try:
            h.end_headers()
            h.wfile.write(data)
        except OSError:  # the client died (tests kill it on purpose)
            h.close_connection = True

    def _next_fault(self) -> str | None:
        with self._lock:
            if self.faults:
                return self.faults.pop(0)
            for fault, rate in self.fault_rate.items():
                if self._rng.random() < rate:
                    return fault
        return None

    def _create(self, h: BaseHTTPRequestHandler, body: Any, _query: dict[str, str]) -> None:
        if not isinstance(body, dict):
            return self._reply(h, {"code": 1100, "message": "invalid parameter: body is not JSON"})
        missing = [k for k in ("clusterId", "collectionName", "objectUrl", "accessKey", "secretKey")
                   if not body.get(k)]
        if missing:
            return self._reply(h, {"code": 1100, "message": f"invalid parameter: missing {missing}"})
        if body["clusterId"] != self.cluster_id:
            return self._reply(h, {"code": 80020, "message": "Cluster not exist or you don't have "
                                                             "permission."})
        refusal = next((r for s, r in self.refuse_objects.items() if s in body["objectUrl"]), None)
        if refusal is not None:
            return self._reply(h, {"code": refusal[0], "message": refusal[1]})
        fault = self._next_fault()
        if fault == "500":
            return self._reply(h, {"message": "internal error"}, status=500)
        if fault == "429":
            return self._reply(h, {"message": "too many requests"}, status=429,
                               headers={"Retry-After": "0"})
        if fault == "busy":
            return self._reply(h, {"code": 47055, "message": "cluster is busy importing"})
        if fault == "garbage":
            return self._reply(h, None, raw=b"<html>502 Bad Gateway</html>")
        if fault == "slow":
            time.sleep(self.slow_s)
        key = h.headers.get("Idempotency-Key")
        with self._lock:
            if self.honour_idempotency and key:
                for job in self.jobs.values():
                    if job.idempotency_key == key:
                        return self._reply(h, {"code": self.success_code, "data": {"jobId": job.job_id}})
            job_id = f"job-{next(self._ids):020d}"
            reason = next((r for s, r in self.fail_objects.items() if s in body["objectUrl"]), None)
            self.jobs[job_id] = Job(job_id, body["collectionName"], body["objectUrl"], self.clock(),
                                    reason, body["accessKey"], key)
        if self.before_reply is not None:
            self.before_reply(self.jobs[job_id])
        if fault == "drop":
            h.close_connection = True
            return  # the job exists, the reply is lost
        self._reply(h, {"code": self.success_code, "data": {"jobId": job_id}})

    def _poll_fault(self, h: BaseHTTPRequestHandler) -> bool:
        with self._lock:
            hit = self.poll_fault_rate > 0 and self._rng.random() < self.poll_fault_rate
        if hit:
            self._reply(h, {"message": "internal error"}, status=500)
        return hit

    def _progress(self, h: BaseHTTPRequestHandler, _body: Any, query: dict[str, str]) -> None:
        if self._poll_fault(h):
            return
        with self._lock:
            job = self.jobs.get(query.get("jobId", ""))
        if job is None or query.get("clusterId") != self.cluster_id:
            return self._reply(h, {"code": 90144, "message": "job not found"})
        state = self.state(job)
        done = state != "ImportRunning"
        key = job.object_url.split("://", 1)[1].split("/", 1)[1]
        detail = {"fileName": key, "fileSize": 1000, "readyPercentage": 1 if done else 0.5,
                  "completeTime": "2026-11-29T00:00:00Z" if done else None,
                  "errorMessage": job.fail_reason}
        self._reply(h, {"code": self.success_code, "data": {
            "collectionName": job.collection, "jobId": job.job_id, **detail, "details": [detail]}})

    def _list(self, h: BaseHTTPRequestHandler, _body: Any, query: dict[str, str]) -> None:
        if not self.list_enabled:
            return self._reply(h, {"code": 1100, "message": "listing import jobs is not enabled"})
        if self._poll_fault(h):
            return
        size = int(query.get("pageSize", 10))
        page = int(query.get("currentPage", 1))
        with self._lock:
            jobs = list(self.jobs.values())
        chunk = jobs[(page - 1) * size: page * size]
        self._reply(h, {"code": self.success_code, "data": {
            "count": len(jobs), "currentPage": page, "pageSize": size,
            self.list_key: [{"collectionName": j.collection, "jobId": j.job_id, "state": self.state(j)}
                            for j in chunk]}})


def main() -> None:
    """Serve a fake in its own process (for benchmarks): ``python -m tests.fakes.zilliz KEY LATENCY``."""
    import sys

    fake = FakeZilliz(api_key=sys.argv[1], latency_s=float(sys.argv[2])).start()
    print(fake.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
