"""Self-hosted Milvus 2.4+, REST v2 on the cluster endpoint (reference section 3).

Milvus reads the files from the object store it is configured with, so a create call names each
object by its key in that bucket (``files: [["path/1.parquet"], ["path/2.parquet"]]``: one inner list
per file, several files in one job), not by URL. Every error arrives
as HTTP 200 with a body code; success is code 0 only (code 200 means "partition not found").
Finished jobs are forgotten after about 3 hours: a progress call for one is an error (code 2100, "import
job does not exist"), which becomes :class:`JobNotFoundError`; the ledger stays the long-term record.

Every create sends ``"options": {"timeout": "<n>s"}`` (``ImportRequest.timeout_s``, from
``settings.job_timeout_s``): a job created without it never times out, and while it is unfinished the
collection's schema cannot change (reference section 10; milvus-io/milvus 53071, 53159). A job that
times out reads ``Failed`` with the server's reason, like any failed job.

Two-phase import (Milvus 3.0+, pull request 48524, reference sections 9 and 10), with ``two_phase=True``:
create adds ``"auto_commit": "false"`` to the options; the job stops in ``Uncommitted``
(:attr:`JobState.UNCOMMITTED`) with its rows invisible until :meth:`MilvusTarget.commit` (``Committing``,
read as running, then ``Completed``) or :meth:`MilvusTarget.abort` (``Failed``). A server that refuses
the option (a well-formed error naming ``auto_commit``) gets one create without that option instead, and
``two_phase`` turns off for the rest of the process; an older server ignores the option, so its jobs
never read ``Uncommitted``: ``two_phase_proven`` turns True only once a job of this process was seen
``Uncommitted`` or ``Committing``, or a commit succeeded. Commit and abort refusals all come as code
2100, whatever the reason, so the target asks the job's state before deciding what a refusal means.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from ..config.manifest import TargetCapabilities, TargetConfig
from ..config.plugins import TargetSpec
from ..config.reader import HEADER_SAFE, Reader, db_name, endpoint
from ..errors import JobNotFoundError, JobTerminalError, PermanentError, TransientError
from ..models import ImportRequest, JobInfo, JobState, Secret, StoredObject
from ..preflight.schema import CollectionSchema
from ..sources.base import ObjectReader
from .base import Target
from .collections_v2 import GB, describe
from .http import asked_job_id, call, created_job_id
from .identity import endpoint_identity
from .jobs_v2 import CREATE, LIST, SUCCESS, ProgressRoute, job_info, list_records
from .reply import Reply

STATES = {"Pending": JobState.RUNNING, "PreImporting": JobState.RUNNING, "Importing": JobState.RUNNING,
          "Sorting": JobState.RUNNING, "IndexBuilding": JobState.RUNNING, "None": JobState.RUNNING,
          "Uncommitted": JobState.UNCOMMITTED, "Committing": JobState.RUNNING,
          "Completed": JobState.COMPLETED, "Failed": JobState.FAILED}
TWO_PHASE_STATES = frozenset({"Uncommitted", "Committing"})  # only a server with two-phase import says these
IMPORT_FAILED = 2100  # what describe answers for a job id the server does not know
COMMIT = "/v2/vectordb/jobs/import/commit"
ABORT = "/v2/vectordb/jobs/import/abort"
NO_AUTO_COMMIT = {"auto_commit": "false"}  # a string: Milvus decodes options as a string map
# Milvus holds 1,024 unfinished jobs in all, shared with everyone (reference/import-api.md); a job may name
# up to 1,024 files of up to 16 GB each; its objects are in the bucket the server reads, never a local
# folder; the REST import API exists from Milvus 2.4 on
CAPABILITIES = TargetCapabilities(credentials=False, sts_token=False, partitions=True, local_sources=False,
                                  window=256, files_per_job=1024, job_gb=1024 * 16, max_file_bytes=16 * GB,
                                  implied_version=(2, 4), two_phase=True)


class MilvusTarget:
    def __init__(self, client: httpx.Client, *, base_url: str, token: Secret | None = None,
                 db_name: str | None = None, two_phase: bool = False) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.db_name = db_name
        self.two_phase = two_phase
        self.two_phase_proven = False
        self._progress = ProgressRoute()

    max_file_bytes: int | None = CAPABILITIES.max_file_bytes
    reports_rows = True
    list_page_size: int | None = None  # no pagination: one reply holds every job (reference section 10)

    def describe(self, collection: str) -> CollectionSchema | None:
        return describe(self.client, self.base_url, collection, token=self.token, db_name=self.db_name)

    def _post(self, path: str, body: dict[str, Any], *, headers: dict[str, str] | None = None,
              creates: bool = False) -> Any:
        sent = {"Accept": "application/json", **(headers or {})}
        if self.token is not None:
            sent["Authorization"] = f"Bearer {self.token.reveal()}"
        if self.db_name is not None:
            sent["DB-Name"] = self.db_name
        return call(self.client, "POST", f"{self.base_url}{path}", headers=sent, json=body,
                    success_codes=SUCCESS, creates=creates)

    def _body(self, **fields: Any) -> dict[str, Any]:
        return {**fields, "dbName": self.db_name} if self.db_name is not None else fields

    def object_ref(self, obj: StoredObject, url: str) -> str:
        return obj.key

    def create(self, request: ImportRequest) -> str:
        body = self._body(collectionName=request.collection, files=[[key] for key in request.files])
        if request.partition is not None:
            body["partitionName"] = request.partition
        if request.timeout_s is not None:  # without it the job never times out (milvus-io/milvus 53159)
            body["options"] = {"timeout": f"{request.timeout_s}s"}  # a Go duration string
        headers = {"Idempotency-Key": request.idempotency_key}
        if not self.two_phase:
            return created_job_id(self._post(CREATE, body, headers=headers, creates=True))
        try:
            return created_job_id(self._post(CREATE, {**body, "options": {**body.get("options", {}),
                                                                         **NO_AUTO_COMMIT}},
                                             headers=headers, creates=True))
        except PermanentError as exc:
            if "auto_commit" not in exc.message:
                raise
        # A well-formed refusal naming the option: no job was made, so one plain create is safe.
        self.two_phase = False
        return created_job_id(self._post(CREATE, body, headers=headers, creates=True))

    def progress(self, job_id: str) -> JobInfo:
        return self._describe(job_id)[1]

    def list_jobs(self) -> Iterator[JobInfo]:
        data = self._post(LIST, self._body())
        jobs, _, _ = list_records(data, STATES)  # every field checked: the states below are strings
        for record in Reply(data, "data").objects("records"):
            self._notice(record.name("state"))
        yield from jobs

    def commit(self, job_id: str) -> None:
        """Make an uncommitted job's rows visible. Already ``Committing`` or ``Completed``: done (the
        server refuses a second commit; from here that is success). ``Failed``: :class:`JobTerminalError`
        (``committed=False``). Still importing: :class:`TransientError` (commit it later)."""
        try:
            self._post(COMMIT, self._body(jobId=asked_job_id(job_id)))
        except PermanentError as exc:
            if exc.code != IMPORT_FAILED:
                raise
            raw, info = self._describe(job_id)  # every refusal is 2100: the state says why
            if raw in ("Committing", "Completed"):
                return
            if info.state is JobState.FAILED:
                raise JobTerminalError(f"job {job_id} failed, it cannot be committed: {info.reason or exc}",
                                       committed=False, code=exc.code) from exc
            if info.state is JobState.RUNNING:
                raise TransientError(f"job {job_id} is still importing ({raw}): commit it once it reads "
                                     f"Uncommitted ({exc})", code=exc.code) from exc
            raise
        self.two_phase_proven = True

    def abort(self, job_id: str) -> None:
        """Drop an uncommitted job and its rows. Already ``Failed`` (aborted or not): done, its rows
        never become visible. ``Committing`` or ``Completed``: :class:`JobTerminalError`
        (``committed=True``)."""
        try:
            self._post(ABORT, self._body(jobId=asked_job_id(job_id)))
        except PermanentError as exc:
            if exc.code != IMPORT_FAILED:
                raise
            raw, info = self._describe(job_id)
            if info.state is JobState.FAILED:
                return
            if raw in ("Committing", "Completed"):
                raise JobTerminalError(f"job {job_id} is already {raw}: its rows are (or are becoming) "
                                       f"visible, it cannot be aborted ({exc})", committed=True,
                                       code=exc.code) from exc
            raise

    def _describe(self, job_id: str) -> tuple[str | None, JobInfo]:
        """The job's state as the server names it, and as a :class:`JobInfo`."""
        body = self._body(jobId=asked_job_id(job_id))
        try:
            data = self._progress.call(lambda path: self._post(path, body))
        except PermanentError as exc:
            if exc.code == IMPORT_FAILED:
                raise JobNotFoundError(f"job {job_id}: {exc} (Milvus forgets finished jobs after about "
                                       "3 hours)", code=exc.code) from exc
            raise
        info = job_info(job_id, data, STATES)  # every field checked: the state below is a string
        raw = Reply(data, "data").name("state")
        self._notice(raw)
        return raw, info

    def _notice(self, state: str | None) -> None:
        if state in TWO_PHASE_STATES:
            self.two_phase_proven = True


def read_section(r: Reader, node: Any, _base_dir: Path) -> TargetConfig:
    """A self-hosted Milvus's section: its endpoint, a token or a user and password, the database."""
    t = r.mapping(node, "target", required=("type", "endpoint"),
                  optional=("token", "user", "password", "db_name", "two_phase"))
    if "token" in t and ("user" in t or "password" in t):
        raise r.fail("target.token", "set either token or user and password, not both")
    if ("user" in t) != ("password" in t):
        raise r.fail("target.user" if "password" in t else "target.password",
                     "user and password go together")
    api_key = None
    if "token" in t:
        api_key = Secret(r.string(t["token"], "target.token", secret=True))
    elif "user" in t:
        user = r.string(t["user"], "target.user")
        if not HEADER_SAFE.fullmatch(user) or ":" in user:
            raise r.fail("target.user", "expected a user name of printable ASCII without ':' (it goes into "
                                        "an HTTP header)")
        api_key = Secret(f"{user}:{r.string(t['password'], 'target.password', secret=True)}")
    url = endpoint(r, t)
    if url is None:
        raise r.fail("target.endpoint", "expected http(s)://host[:port], e.g. http://localhost:19530")
    return TargetConfig(type=SPEC.type, capabilities=CAPABILITIES, base_url=url, api_key=api_key,
                        db_name=db_name(r, t),
                        two_phase=r.boolean(t.get("two_phase", True), "target.two_phase"))


def _build(t: TargetConfig, client: httpx.Client, _read: ObjectReader) -> Target:
    return MilvusTarget(client, base_url=t.base_url, token=t.api_key, db_name=t.db_name,
                        two_phase=t.two_phase)


SPEC = TargetSpec(type="milvus", parse=read_section, capabilities=CAPABILITIES, identity=endpoint_identity,
                  build=_build)
