"""What Zilliz Cloud REST v2 and self-hosted Milvus share: the ``/v2/vectordb/jobs/import`` routes,
the progress call's several spellings, and the job records they answer with (reference sections 2, 3).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import FatalTargetError, TransientError
from ..models import UNREADABLE_JOB_ID, JobInfo, JobState
from .http import listed_job_id
from .reply import Reply

SUCCESS = frozenset({0})  # v2 and Milvus: code 0 only (for Milvus, code 200 means "partition not found")
CREATE = "/v2/vectordb/jobs/import/create"
LIST = "/v2/vectordb/jobs/import/list"
# What the official SDKs call first, then the spellings the docs also show.
PROGRESS = ("/v2/vectordb/jobs/import/describe", "/v2/vectordb/jobs/import/get_progress",
            "/v2/vectordb/jobs/import/getProgress")


class ProgressRoute:
    """Asks ``describe`` first and moves to the next spelling on a 404; the first that answers is kept
    for the rest of the run, so an older server costs one extra call, not one per poll."""

    def __init__(self) -> None:
        self._index = 0
        self._lock = threading.Lock()

    def call(self, request: Callable[[str], Any]) -> Any:
        index = self._index
        while True:
            try:
                data = request(PROGRESS[index])
            except FatalTargetError as exc:
                if exc.http_status != 404 or index + 1 >= len(PROGRESS):
                    raise
                index += 1
                continue
            with self._lock:
                self._index = index
            return data


def job_info(job_id: str, data: Any, states: Mapping[str, JobState]) -> JobInfo:
    """A progress reply's ``data`` as a :class:`JobInfo`, every field checked (:mod:`.reply`); unknown
    states count as running."""
    if data is None:
        raise TransientError(f"progress of job {job_id}: the reply has no data")
    reply = Reply(data, "data")
    files = [(d, name) for d in reply.objects("details") if (name := d.name("fileName")) is not None]
    rows = reply.count("importedRows")
    total = reply.count("totalRows")
    return JobInfo(
        job_id=job_id,
        state=states.get(reply.name("state") or "", JobState.RUNNING),
        collection=reply.name("collectionName"),
        file_name=reply.name("fileName") or (files[0][1] if files else None),
        reason=reply.text("reason"),
        progress=reply.percent("progress"),
        imported_rows=rows if rows is not None else total,
        file_names=tuple(name for _, name in files),
        file_rows=tuple(d.count("importedRows") for d, _ in files),
        # Milvus's describe answers each file's own state and reason (reference section 10): where
        # they single out a failed file, that file is the one that failed the job (jobs/isolation.py)
        file_states=tuple(states.get(d.name("state") or "") for d, _ in files),
        file_reasons=tuple(d.text("reason") for d, _ in files),
    )


def list_records(data: Any, states: Mapping[str, JobState]) -> tuple[list[JobInfo], int, int | None]:
    """The jobs of a list reply's ``data.records`` (a record without a valid job id as
    :data:`UNREADABLE_JOB_ID`), how many records it held and its ``count`` (the jobs in all, if given)."""
    if data is None:
        raise TransientError("the job list reply has no data")
    reply = Reply(data, "data")
    return records(reply.objects("records"), states), len(reply.objects("records")), reply.count("count")


def records(found: list[Reply], states: Mapping[str, JobState]) -> list[JobInfo]:
    """Job-list records as :class:`JobInfo` (job id, state, collection), each field checked."""
    return [JobInfo(job_id=listed_job_id(record) or UNREADABLE_JOB_ID,
                    state=states.get(record.name("state") or "", JobState.RUNNING),
                    collection=record.name("collectionName")) for record in found]
