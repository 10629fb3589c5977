"""Milvus over gRPC: pymilvus' bulk insert (reference section 8), for servers without the REST import
API (Milvus 2.2 and 2.3) and for any server where only the gRPC port is open.

The server reads the files itself, from its own storage: a create call names each object by its key
in the server's bucket (MinIO/S3 storage) or by its absolute path (a server with local storage, such as
the embedded server, and a local-folder source). One object per task. The task list
(``ListImportTasks``) names each task's files, so a task made by a call whose reply was lost is found
by its file, which is unique per object, and adopted as with the REST targets. gRPC replies carry no
server time, though, so no task naming an object proves nothing (the server may have forgotten it):
such an interrupted call is held ``uncertain`` for a person instead of being sent again.

The import call is made exactly once per attempt: pymilvus' own retry loop (which would send the call
again after a dropped connection, and could make a second task) is bypassed for it; every other call
goes through pymilvus as usual.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from pymilvus import MilvusClient
from pymilvus.client.prepare import Prepare
from pymilvus.client.types import BulkInsertState
from pymilvus.client.utils import check_status
from pymilvus.exceptions import MilvusException

from ..errors import (
    AmbiguousError,
    FatalTargetError,
    JobNotFoundError,
    PermanentError,
    TargetError,
    TransientError,
)
from ..models import ImportRequest, JobInfo, JobState, Secret, StoredObject
from ..preflight.rules import Version, parse_version
from ..preflight.schema import CollectionSchema, from_describe
from ..redact import shown_url
from .base import OnePhase
from .http import classify
from .milvus_grpc_spec import CAPABILITIES
from .reply import Reply, bounded

T = TypeVar("T")
STATES = {BulkInsertState.ImportPending: JobState.RUNNING, BulkInsertState.ImportStarted: JobState.RUNNING,
          BulkInsertState.ImportPersisted: JobState.RUNNING,  # persisted, the index still building
          BulkInsertState.ImportCompleted: JobState.COMPLETED, BulkInsertState.ImportFailed: JobState.FAILED,
          BulkInsertState.ImportFailedAndCleaned: JobState.FAILED}
# gRPC codes that mean "nothing will work": stop the run.
_FATAL = {grpc.StatusCode.UNAUTHENTICATED: "the credentials were refused: check target.token (or user "
          "and password)", grpc.StatusCode.PERMISSION_DENIED: "permission denied: check the user's "
          "privileges", grpc.StatusCode.UNIMPLEMENTED: "this server has no bulk insert"}


class MilvusGrpcTarget(OnePhase):
    def __init__(self, uri: str, *, token: Secret | None = None, db_name: str | None = None,
                 timeout_s: float = 30.0, client: Any = None) -> None:
        self.uri = uri
        self.token = token
        self.db_name = db_name
        self.timeout_s = timeout_s
        self._client = client
        self._lock = threading.Lock()

    max_file_bytes: int | None = CAPABILITIES.max_file_bytes

    # -- the Target protocol -----------------------------------------------------------------

    def object_ref(self, obj: StoredObject, url: str) -> str:
        """The key in the server's bucket, or the absolute path of a local file (``obj.key`` both)."""
        return obj.key

    def create(self, request: ImportRequest) -> str:
        client = self._connected()
        handler = client._get_connection()
        call = Prepare.do_bulk_insert(request.collection, request.partition or "", [request.object_url])
        context = getattr(client, "_generate_call_context", None)  # pymilvus 3: the database per call
        metadata = context().to_grpc_metadata() if context is not None else None
        try:
            reply = handler._stub.Import(call, timeout=self.timeout_s, metadata=metadata)
        except grpc.RpcError as exc:
            raise _rpc_error(exc, creates=True) from exc
        try:
            check_status(reply.status)
        except MilvusException as exc:
            raise classify(exc.code, f"{request.object_url}: {exc.message}") from exc
        if not reply.tasks:
            raise AmbiguousError("the server reported success without a task id")
        return str(reply.tasks[0])

    def progress(self, job_id: str) -> JobInfo:
        if not job_id.isdigit():
            raise JobNotFoundError(f"job {job_id}: not a Milvus task id")
        try:
            state = self._call(lambda h: h.get_bulk_insert_state(int(job_id), timeout=self.timeout_s))
        except PermanentError as exc:  # 2.3: code 1000, "key not found[key=.../importtask/<id>]"
            raise JobNotFoundError(f"job {job_id}: {exc} (Milvus forgets finished tasks after "
                                   "rootCoord.importTaskRetention, a day by default)", code=exc.code) from exc
        return _job_info(state)

    def describe(self, collection: str) -> CollectionSchema | None:
        described = self._call(lambda _h: self._connected().describe_collection(collection,
                                                                                 timeout=self.timeout_s))
        return from_describe(described, where=f"describe {collection}")

    list_page_size: int | None = None  # one call answers every task

    def list_jobs(self) -> Iterator[JobInfo]:
        tasks = self._call(lambda h: h.list_bulk_insert_tasks(0, "", timeout=self.timeout_s))
        yield from (_job_info(task) for task in tasks)

    # -- what the pre-flight check asks --------------------------------------------------------

    def server_version(self) -> Version | None:
        return parse_version(str(self._call(lambda _h: self._connected().get_server_version(
            timeout=self.timeout_s))))

    # -- plumbing ----------------------------------------------------------------------------

    def _connected(self) -> Any:
        """The client, connected on first use."""
        with self._lock:
            if self._client is None:
                logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # its errors reach users via ours
                try:
                    self._client = MilvusClient(uri=self.uri, token=self.token.reveal() if self.token else "",
                                                db_name=self.db_name or "", timeout=self.timeout_s)
                except MilvusException as exc:
                    raise FatalTargetError(f"cannot connect to Milvus at {shown_url(self.uri)}: "
                                           f"{bounded(str(exc.message))}",
                                           code=exc.code) from exc
            return self._client

    def _call(self, fn: Callable[[Any], T]) -> T:
        """One call through pymilvus (which retries dropped connections itself), errors translated."""
        client = self._connected()
        try:
            return fn(client._get_connection())
        except grpc.RpcError as exc:
            raise _rpc_error(exc, creates=False) from exc
        except MilvusException as exc:
            raise classify(exc.code, exc.message) from exc


def _job_info(state: Any) -> JobInfo:
    """A pymilvus ``BulkInsertState`` as a :class:`JobInfo`, its server-given fields checked like any
    reply's (:mod:`.reply`)."""
    task = Reply({"taskId": state.task_id, "rowCount": state.row_count, "failedReason": state.failed_reason,
                  "infos": dict(state.infos or {})}, "task")
    infos = task.obj("infos") or Reply({}, "task.infos")
    task_id = task.count("taskId")
    rows = task.count("rowCount")
    return JobInfo(
        job_id=str(task_id),
        state=STATES.get(state.state, JobState.RUNNING),
        collection=infos.name("collection"),
        file_name=infos.name("files"),  # as the create call named it: a key, or an absolute path
        reason=task.text("failedReason"),
        progress=infos.percent("progress_percent", spelled=True),
        imported_rows=rows if state.state == BulkInsertState.ImportCompleted else None,
    )


def _rpc_error(exc: grpc.RpcError, *, creates: bool) -> TargetError:
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    details = exc.details() if hasattr(exc, "details") else exc
    text = f"gRPC {getattr(code, 'name', 'error')}: {bounded(str(details))}"
    if code in _FATAL:
        return FatalTargetError(f"{text} ({_FATAL[code]})")
    if creates and code is not grpc.StatusCode.INVALID_ARGUMENT:
        return AmbiguousError(text)  # it may have reached the server and made a task
    return TransientError(text)
