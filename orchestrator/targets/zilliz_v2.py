"""Zilliz Cloud REST v2: ``/v2/vectordb/jobs/import/*`` on the control plane (reference section 2).

Success is body code 0; the job id comes as ``jobId`` (or ``jobID`` in one doc example). Progress is
``describe``, falling back to ``get_progress``/``getProgress`` on a 404; the list is paginated.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from ..config.manifest import TargetCapabilities, TargetConfig
from ..config.plugins import TargetSpec
from ..config.reader import Reader, db_name, endpoint
from ..models import ImportRequest, JobInfo, JobState, Secret, StoredObject
from ..preflight.schema import CollectionSchema
from ..sources.base import ObjectReader
from .base import OnePhase, Target, required_key
from .collections_v2 import GB, describe
from .http import asked_job_id, call, created_job_id
from .identity import cluster_identity
from .jobs_v2 import CREATE, LIST, SUCCESS, ProgressRoute, job_info, list_records

STATES = {"Pending": JobState.RUNNING, "Importing": JobState.RUNNING, "InProgress": JobState.RUNNING,
          "Completed": JobState.COMPLETED, "Failed": JobState.FAILED}
PAGE_SIZE = 100
DEFAULT_URL = "https://api.cloud.zilliz.com"
# Zilliz Cloud holds fewer than 10,000 unfinished jobs per collection (reference/import-api.md); a job may
# name up to 1,000 files of up to 10 GB, 1 TB in all; the REST v2 import API implies Milvus 2.4 or later
CAPABILITIES = TargetCapabilities(credentials=True, sts_token=True, partitions=True, local_sources=True,
                                  window=1000, files_per_job=1000, job_gb=1024, max_file_bytes=10 * GB,
                                  implied_version=(2, 4))


class ZillizV2Target(OnePhase):
    max_file_bytes: int | None = CAPABILITIES.max_file_bytes

    def __init__(self, client: httpx.Client, *, base_url: str, cluster_id: str, api_key: Secret,
                 db_name: str | None = None, cluster_endpoint: str | None = None) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.cluster_id = cluster_id
        self.api_key = api_key
        self.db_name = db_name
        self.cluster_endpoint = cluster_endpoint
        self._progress = ProgressRoute()

    def describe(self, collection: str) -> CollectionSchema | None:
        if self.cluster_endpoint is None:
            return None
        return describe(self.client, self.cluster_endpoint, collection, token=self.api_key,
                        db_name=self.db_name)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key.reveal()}", "Accept": "application/json",
                **(extra or {})}

    def _post(self, path: str, body: dict[str, Any], *, headers: dict[str, str] | None = None,
              creates: bool = False) -> Any:
        return call(self.client, "POST", f"{self.base_url}{path}", headers=self._headers(headers), json=body,
                    success_codes=SUCCESS, creates=creates)

    def object_ref(self, obj: StoredObject, url: str) -> str:
        return url

    def create(self, request: ImportRequest) -> str:
        body: dict[str, Any] = {"clusterId": self.cluster_id, "collectionName": request.collection,
                                "objectUrls": [[url] for url in request.files]}
        if request.partition is not None:
            body["partitionName"] = request.partition
        if self.db_name is not None:
            body["dbName"] = self.db_name
        if request.credentials is not None:
            body["accessKey"] = request.credentials.access_key.reveal()
            body["secretKey"] = request.credentials.secret_key.reveal()
            if request.credentials.token is not None:
                body["token"] = request.credentials.token.reveal()
        return created_job_id(self._post(CREATE, body, headers={"Idempotency-Key": request.idempotency_key},
                                         creates=True))

    def progress(self, job_id: str) -> JobInfo:
        body = {"clusterId": self.cluster_id, "jobId": asked_job_id(job_id)}
        return job_info(job_id, self._progress.call(lambda path: self._post(path, body)), STATES)

    def list_jobs(self) -> Iterator[JobInfo]:
        page = 1
        seen = 0
        ids: set[str] = set()
        while True:
            data = self._post(LIST, {"clusterId": self.cluster_id, "pageSize": PAGE_SIZE,
                                     "currentPage": page})
            jobs, records, count = list_records(data, STATES)
            new = [job for job in jobs if job.job_id not in ids]
            yield from new
            ids.update(job.job_id for job in new)
            seen += records  # skipped ones included: they count in ``count``
            # a short page is the last; a page of jobs all seen is a server that ignores the page fields
            if records < PAGE_SIZE or not new or (count is not None and seen >= count):
                return
            page += 1


def _section(r: Reader, node: Any, _base_dir: Path) -> TargetConfig:
    t = r.mapping(node, "target", required=("type", "cluster_id", "api_key"),
                  optional=("endpoint", "db_name", "cluster_endpoint"))
    return TargetConfig(
        type=SPEC.type,
        capabilities=CAPABILITIES,
        base_url=endpoint(r, t) or DEFAULT_URL,
        cluster_id=r.string(t["cluster_id"], "target.cluster_id"),
        api_key=Secret(r.string(t["api_key"], "target.api_key", secret=True)),
        db_name=db_name(r, t),
        cluster_endpoint=endpoint(r, t, "cluster_endpoint"),
    )


def _build(t: TargetConfig, client: httpx.Client, _read: ObjectReader) -> Target:
    return ZillizV2Target(client, base_url=t.base_url, cluster_id=t.cluster_id, api_key=required_key(t),
                          db_name=t.db_name, cluster_endpoint=t.cluster_endpoint)


SPEC = TargetSpec(type="zilliz-v2", parse=_section, capabilities=CAPABILITIES, identity=cluster_identity,
                  build=_build)
