"""A fake self-hosted Milvus 2.4+ REST v2 import API (reference section 3) on a real socket.

Milvus reads files from the bucket it is configured with: a create call names keys in that bucket
(``files: [["a/1.parquet"]]``), and the fake records each job under ``s3://{bucket}/{key}`` so that
tests see the same object URLs for every API. It checks the bearer (``user:password`` or a token;
HTTP 401 + code 1800 otherwise), the ``DB-Name`` header against ``dbName``, and the body keys; job
states go Pending -> Importing -> Completed (or Failed, with a ``reason``); a progress call for a job
it does not know is code 2100, as in Milvus; describe answers ``details[]``, one per file, each with its
own ``state`` and ``reason`` (reference section 10, the describe handler).

As Milvus 2.6 / 3.0 are (reference section 10):

* ``options.timeout`` (a Go duration, ``"3600s"``, ``"1.5h"``; importutilv2/option.go) is parsed, a
  malformed one refused (code 1100), and a job still importing when it passes fails with the server's
  reason; a job created without it never times out (milvus-io/milvus 53071, 53159).
* With ``honour_idempotency`` (2.6.24+, 3.0.2+; pull requests 52320, 52544) the ``Idempotency-Key`` is
  checked (printable ASCII, at most 256 bytes: code 1100 otherwise), scoped to the collection,
  remembered ``key_memory_s`` (24 h), and looked up only after the job-limit check (``base.py``).
* The list has no pagination: the page fields pymilvus sends (``pageSize``, ``currentPage``) are
  ignored, and one reply holds every job.
* ``Uncommitted`` jobs are never garbage-collected (the GC sweep takes Completed and Failed only):
  ``job_memory_s`` never forgets one, since it has not finished.

Two-phase import (milvus-io/milvus pull requests 48524, 50692, 51083), unless ``two_phase_supported`` is
False (an older server: it ignores ``options.auto_commit`` and has no commit/abort routes, HTTP 404):
a create with ``"options": {"auto_commit": "false"}`` (a string; a JSON boolean is refused like Milvus's
string map refuses it) makes a job that goes Importing -> Uncommitted and stays there, rows invisible,
until ``/commit`` (Committing for ``commit_after`` seconds, then Completed) or ``/abort`` (Failed,
reason ``aborted``). With ``committing_times_out`` a Committing job whose ``options.timeout`` passes
fails instead (milvus-io/milvus 53315, before its fix); ``drop_commit_replies`` loses the replies
of that many commit calls after their work; ``before_commit`` is called as each commit call arrives
(answering False, it drops the call undone).
With ``refuse_two_phase`` the option is refused (code 1100, naming ``auto_commit``), as a server
that does not allow it. Refusals of commit and abort are code 2100 like the server's
(``ErrImportFailed``): commit of anything but an Uncommitted job, abort of a Committing or Completed job,
either on a job made with auto_commit; aborting a Failed job again succeeds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.base import ROWS, Exchange, FakeImportAPI, Handler, Job, check_keys

PREFIX = "/v2/vectordb/jobs/import"
MAX_FILES = 1024  # files one import job may name (Milvus REST v2)
MAX_KEY_BYTES = 256  # Idempotency-Key: printable ASCII, at most this long (pull requests 52320, 52544)
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")  # Go's time.ParseDuration, unsigned


def duration_s(text: str) -> float | None:
    """Seconds in a Go duration string (``"3600s"``, ``"1h30m"``), or None if it is not one."""
    parts = DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * UNITS[u] for n, u in parts)


def key_problem(key: str | None) -> str | None:
    """What Milvus says of an Idempotency-Key it cannot take, or None (no key, or a good one)."""
    if key is None:
        return None
    if not all(" " <= c <= "~" for c in key) or len(key.encode()) > MAX_KEY_BYTES:
        return (f"invalid parameter: Idempotency-Key must be printable ASCII of at most {MAX_KEY_BYTES} "
                "bytes")
    return None


@dataclass
class FakeMilvus(FakeImportAPI):
    TYPE = "milvus"
    CREATE_PATH = f"{PREFIX}/create"
    BUSY = (8, "rate limit exceeded")
    FULL = (2100, "The number of jobs has reached the limit, please try again later. If your request is set "
                  "to only import a single file, please consider importing multiple files in one request for "
                  "better efficiency.")  # Milvus 2.5 (milvus-io/milvus issue 40123)
    NEEDS_CREDENTIALS = False

    api_key: str = "root:Milvus"
    bucket: str = "a-bucket"  # the bucket this Milvus is configured to read
    running_state: str = "Importing"  # or PreImporting, Sorting, IndexBuilding, ...
    two_phase_supported: bool = True  # False: a server before two-phase import
    two_phase_manifest: bool = False  # what manifest_target() asks for
    refuse_two_phase: bool = False  # refuse auto_commit=false with a well-formed error
    commit_after: float = 0.0  # seconds a committed job reads Committing
    # a Committing job whose options.timeout passes fails, its rows rolled back, as before the fix of
    # milvus-io/milvus 53315 (53318, 53481)
    committing_times_out: bool = False
    # called as a commit call arrives, before its work; False: the call is dropped undone (its caller
    # died before it reached the server)
    before_commit: Callable[[Job], bool | None] | None = None
    drop_commit_replies: int = 0  # the next commit calls do their work, then lose their reply

    def routes(self) -> dict[tuple[str, str], Handler]:
        routes: dict[tuple[str, str], Handler] = {
            ("POST", self.CREATE_PATH): self._create, ("POST", f"{PREFIX}/describe"): self._progress,
            ("POST", f"{PREFIX}/get_progress"): self._progress, ("POST", f"{PREFIX}/list"): self._list}
        if self.two_phase_supported:
            routes[("POST", f"{PREFIX}/commit")] = self._commit
            routes[("POST", f"{PREFIX}/abort")] = self._abort
        return routes

    def phase(self, job: Job) -> str:
        """Also ``uncommitted`` and ``committing`` for a two-phase job."""
        phase = super().phase(job)
        if phase != "completed" or job.auto_commit:
            return phase
        if job.committed_at is None:
            return "uncommitted"
        now = self.clock()
        if (self.committing_times_out and job.timeout_s is not None and now - job.created >= job.timeout_s
                and now - job.committed_at < self.commit_after):
            job.fail_reason = f"import timeout, expired the specified time limit {job.timeout_s:g}s"
            job.failed_at = now
            return "failed"
        return "completed" if self.clock() - job.committed_at >= self.commit_after else "committing"

    def finished_at(self, job: Job) -> float | None:
        if not job.auto_commit and self.phase(job) == "completed" and job.committed_at is not None:
            return job.committed_at + self.commit_after
        return super().finished_at(job)

    def manifest_target(self) -> dict[str, Any]:
        """Two-phase import off unless ``two_phase_manifest``: the shared suites check the rules that
        every server needs; tests/test_two_phase.py checks the protocol."""
        return {"type": self.TYPE, "endpoint": self.url, "token": "${MILVUS_TOKEN}",
                "two_phase": self.two_phase_manifest}

    def urls_of(self, body: Any) -> list[str]:
        return [f"s3://{self.bucket}/{inner[0]}" for inner in body["files"]]

    def new_job_id(self, n: int) -> str:
        return f"{448707763884413000 + n}"

    def unauthorized(self, h: Exchange) -> None:
        self.reply(h, {"code": 1800, "message": "user hasn't authenticated"})  # HTTP 200, like Milvus

    def state(self, job: Job) -> str:
        return {"running": self.running_state, "uncommitted": "Uncommitted", "committing": "Committing",
                "completed": "Completed", "failed": "Failed"}[self.phase(job)]

    def _db_problem(self, h: Exchange, body: dict[str, Any]) -> str | None:
        header = h.headers.get("DB-Name")
        if "dbName" in body and header is not None and header != body["dbName"]:
            return f"invalid parameter: DB-Name {header} and dbName {body['dbName']} differ"
        return None

    def _create(self, h: Exchange, body: Any, _query: dict[str, str]) -> None:
        problem = check_keys(body, required=("collectionName", "files"),
                             optional=("partitionName", "dbName", "options"))
        files = body.get("files") if isinstance(body, dict) else None
        if not problem and not (isinstance(files, list) and 1 <= len(files) <= MAX_FILES and all(
                isinstance(inner, list) and len(inner) == 1 and isinstance(inner[0], str)
                for inner in files)):
            problem = (f"invalid parameter: files must be a list of 1 to {MAX_FILES} lists of one path each "
                       "(one parquet file per inner list)")
        url = next((inner[0] for inner in files if "://" in inner[0]), None) if not problem else None
        if url is not None:
            problem = f"invalid parameter: {url} is a URL; files are paths in the Milvus bucket"
        problem = problem or self._db_problem(h, body)
        options = body.get("options", {}) if isinstance(body, dict) else {}
        if not problem and not (isinstance(options, dict)
                                and all(isinstance(v, str) for v in options.values())):
            problem = "invalid parameter: options must map names to strings"
        timeout_s = None
        if not problem and "timeout" in options:
            timeout_s = duration_s(options["timeout"])
            if timeout_s is None:
                problem = f"invalid parameter: timeout {options['timeout']!r} is not a duration"
        if not problem and self.honour_idempotency:
            problem = key_problem(h.headers.get("Idempotency-Key"))
        auto_commit = True
        if not problem and self.two_phase_supported and "auto_commit" in options:
            auto_commit = options["auto_commit"].lower() not in ("false", "0", "f")
            if not auto_commit and self.refuse_two_phase:
                problem = "invalid parameter: auto_commit=false is not allowed on this cluster"
        if problem:
            return self.reply(h, {"code": 1100, "message": problem})
        urls = [f"s3://{self.bucket}/{inner[0]}" for inner in files]
        return self.new_job(h, object_url=urls[0], more=tuple(urls[1:]),
                            collection=body["collectionName"], partition=body.get("partitionName"),
                            db_name=body.get("dbName", h.headers.get("DB-Name")), auto_commit=auto_commit,
                            timeout_s=timeout_s)

    def _progress(self, h: Exchange, body: Any, _query: dict[str, str]) -> None:
        if self.poll_fault(h):
            return None
        problem = check_keys(body, required=("jobId",), optional=("dbName",))
        if problem:
            return self.reply(h, {"code": 1100, "message": problem})
        job = self.job(body["jobId"])
        if job is None:
            return self.reply(h, {"code": 2100, "message": f"import failed: import job does not exist, "
                                                           f"jobID={body['jobId']}"})
        phase = self.phase(job)
        rows = 0 if phase in ("running", "failed") else ROWS
        # handler_v2.go's describe (GetImportProgress): the job's fields, and details[], one per file with
        # its own fileName, fileSize, progress, state, importedRows, totalRows and reason (reference
        # section 10); with ``file_details="own"`` only the file that failed the job carries a reason
        return self.reply(h, {"code": 0, "data": {
            "jobId": job.job_id, "collectionName": job.collection, "state": self.state(job),
            "progress": 100 if phase != "running" else 40, "reason": job.fail_reason or "",
            "importedRows": rows * len(job.object_urls), "totalRows": ROWS * len(job.object_urls),
            "fileSize": 1000 * len(job.object_urls),
            "details": [{"fileName": self.reported_name(url), "fileSize": 1000, "state": self.state(job),
                         "progress": 100 if phase != "running" else 40, "importedRows": rows,
                         "totalRows": ROWS, "reason": self.file_reason(job, url)}
                        for url in job.object_urls]}})

    def _two_phase_job(self, h: Exchange, body: Any, action: str) -> Job | None:
        """The job a commit or abort names, or None once the refusal is answered."""
        problem = check_keys(body, required=("jobId",), optional=("dbName",))
        if problem:
            self.reply(h, {"code": 1100, "message": problem})
            return None
        job = self.job(body["jobId"])
        if job is None:
            self.reply(h, {"code": 2100, "message": f"import failed: import job does not exist, "
                                                    f"jobID={body['jobId']}"})
        elif job.auto_commit:
            self.reply(h, {"code": 2100, "message": f"import failed: job {job.job_id} was created with "
                                                    f"auto_commit, {action} not allowed"})
            return None
        return job

    def _commit(self, h: Exchange, body: Any, _query: dict[str, str]) -> None:
        job = self._two_phase_job(h, body, "commit")
        if job is None:
            return None
        if self.before_commit is not None and self.before_commit(job) is False:
            return h.drop()
        with self._lock:
            committed = self.phase(job) == "uncommitted"
            if committed:
                job.committed_at = self.clock()
            drop = self.drop_commit_replies > 0
            self.drop_commit_replies = max(0, self.drop_commit_replies - 1)
        if drop:
            return h.drop()  # committed (or refused), and the reply is lost
        if committed:
            return self.reply(h, {"code": 0, "data": {}})
        return self.reply(h, {"code": 2100, "message": f"import failed: job {job.job_id} is in state "
                                                       f"{self.state(job)}, commit not allowed"})

    def _abort(self, h: Exchange, body: Any, _query: dict[str, str]) -> None:
        job = self._two_phase_job(h, body, "abort")
        if job is None:
            return None
        with self._lock:
            phase = self.phase(job)
            if phase in ("running", "uncommitted"):
                job.fail_reason, job.failed_at = "aborted", self.clock()
        if phase not in ("committing", "completed"):
            return self.reply(h, {"code": 0, "data": {}})  # aborted now, or failed already
        return self.reply(h, {"code": 2100, "message": f"import failed: job {job.job_id} is in "
                                                       f"terminal/committed state {self.state(job)}, "
                                                       "abort not allowed"})

    def _list(self, h: Exchange, body: Any, _query: dict[str, str]) -> None:
        if not self.list_enabled:
            return self.reply(h, {"code": 1100, "message": "listing import jobs is not enabled"})
        if self.poll_fault(h):
            return None
        problem = check_keys(body if body is not None else {}, required=(),  # page fields: read, ignored
                             optional=("collectionName", "dbName", "pageSize", "currentPage"))
        if problem:
            return self.reply(h, {"code": 1100, "message": problem})
        wanted = (body or {}).get("collectionName")
        return self.reply(h, {"code": 0, "data": {"records": [
            {"jobId": j.job_id, "collectionName": j.collection, "state": self.state(j),
             "progress": 100 if self.phase(j) != "running" else 40, "reason": j.fail_reason or ""}
            for j in self.listed_jobs() if wanted in (None, j.collection)]}})
