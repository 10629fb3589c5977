"""Self-hosted Milvus 2.4+, REST v2 on the cluster endpoint (reference section 3).

Milvus reads the files from the object store it is configured with, so a create call names each
object by its key in that bucket (``files: [["path/1.parquet"]]``), not by URL. Every error arrives
as HTTP 200 with a body code; success is code 0 only (code 200 means "partition not found").
Finished jobs are forgotten after about 3 hours: a progress call for one is an error (code 2100, "import
job does not exist"), which becomes :class:`JobNotFoundError`; the ledger stays the long-term record.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from ..errors import JobNotFoundError, PermanentError
from ..models import ImportRequest, JobInfo, JobState, Secret, StoredObject
from ..schema import CollectionSchema
from .collections_v2 import GB, describe
from .http import call
from .jobs_v2 import CREATE, LIST, SUCCESS, ProgressRoute, created_job_id, job_info, list_records

STATES = {"Pending": JobState.RUNNING, "PreImporting": JobState.RUNNING, "Importing": JobState.RUNNING,
          "Sorting": JobState.RUNNING, "IndexBuilding": JobState.RUNNING, "None": JobState.RUNNING,
          "Completed": JobState.COMPLETED, "Failed": JobState.FAILED}
IMPORT_FAILED = 2100  # what describe answers for a job id the server does not know


class MilvusTarget:
    def __init__(self, client: httpx.Client, *, base_url: str, token: Secret | None = None,
                 db_name: str | None = None) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.db_name = db_name
        self._progress = ProgressRoute()

    max_file_bytes: int | None = 16 * GB

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
        body = self._body(collectionName=request.collection, files=[[request.object_url]])
        if request.partition is not None:
            body["partitionName"] = request.partition
        return created_job_id(self._post(CREATE, body, headers={"Idempotency-Key": request.idempotency_key},
                                         creates=True))

    def progress(self, job_id: str) -> JobInfo:
        body = self._body(jobId=job_id)
        try:
            data = self._progress.call(lambda path: self._post(path, body))
        except PermanentError as exc:
            if exc.code == IMPORT_FAILED:
                raise JobNotFoundError(f"job {job_id}: {exc} (Milvus forgets finished jobs after about "
                                       "3 hours)", code=exc.code) from exc
            raise
        return job_info(job_id, data, STATES)

    def list_jobs(self) -> Iterator[JobInfo]:
        yield from list_records(self._post(LIST, self._body()), STATES)
