"""What Zilliz Cloud REST v2 and self-hosted Milvus share: the ``/v2/vectordb/jobs/import`` routes,
the progress call's several spellings, and the job records they answer with (reference sections 2, 3).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import FatalTargetError, TransientError
from ..models import JobInfo, JobState
from .http import listed_job_id

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
    """A progress reply's ``data`` as a :class:`JobInfo`; unknown states count as running."""
    if not isinstance(data, dict):
        raise TransientError(f"progress of job {job_id}: the reply has no data")
    details = data.get("details")
    files = [d for d in details if isinstance(d, dict) and d.get("fileName")] \
        if isinstance(details, list) else []
    file_name = data.get("fileName") or (files[0]["fileName"] if files else None)
    progress = data.get("progress")
    rows = data.get("importedRows", data.get("totalRows"))
    return JobInfo(
        job_id=job_id,
        state=states.get(str(data.get("state")), JobState.RUNNING),
        collection=data.get("collectionName"),
        file_name=str(file_name) if file_name else None,
        reason=str(data.get("reason") or "") or None,
        progress=float(progress) if isinstance(progress, int | float) else None,
        imported_rows=int(rows) if isinstance(rows, int) else None,
        file_names=tuple(str(d["fileName"]) for d in files),
        file_rows=tuple(_count(d.get("importedRows")) for d in files),
    )


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def list_records(data: Any, states: Mapping[str, JobState]) -> list[JobInfo]:
    """The jobs of a list reply's ``data.records``; a record without a valid job id is skipped."""
    if not isinstance(data, dict):
        raise TransientError("the job list reply has no data")
    jobs = []
    for record in data.get("records") or []:
        job_id = listed_job_id(record)
        if job_id is None:
            continue
        jobs.append(JobInfo(job_id=job_id, state=states.get(str(record.get("state")), JobState.RUNNING),
                            collection=record.get("collectionName")))
    return jobs
