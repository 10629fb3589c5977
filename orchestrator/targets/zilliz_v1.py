"""Zilliz Cloud REST v1: ``/v1/vector/collections/import`` (reference section 1).

v1 has no state field on progress: running while ``completeTime`` is null, failed when
``errorMessage`` is set, completed otherwise. Nor does it count rows: a completed job imported its
whole file, the rows the pre-flight check read from the footer. Success codes are 200 and 0 (the docs
disagree).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from ..config.manifest import TargetCapabilities, TargetConfig
from ..config.plugins import TargetSpec
from ..config.reader import Reader, endpoint, excerpt
from ..errors import TransientError
from ..models import ImportRequest, JobInfo, JobState, Secret, StoredObject
from ..preflight.schema import CollectionSchema
from ..sources.base import ObjectReader
from .base import OnePhase, Target, required_key
from .collections_v2 import GB, describe
from .http import asked_job_id, call, created_job_id
from .identity import cluster_identity
from .jobs_v2 import records
from .reply import Reply

SUCCESS = frozenset({0, 200})
_LIST_STATES = {"ImportRunning": JobState.RUNNING, "ImportCompleted": JobState.COMPLETED,
                "ImportFailed": JobState.FAILED}
PAGE_SIZE = 100
_REGION = re.compile(r"(gcp|aws|az|ali|tc)-[a-z]+(-[a-z0-9]+)*[0-9]?")  # a Zilliz Cloud region
# Zilliz Cloud holds fewer than 10,000 unfinished jobs per collection (reference/import-api.md); a v1 call
# names one file of up to 10 GB
CAPABILITIES = TargetCapabilities(credentials=True, sts_token=False, partitions=False, local_sources=True,
                                  window=1000, max_file_bytes=10 * GB)


class ZillizV1Target(OnePhase):
    max_file_bytes: int | None = CAPABILITIES.max_file_bytes
    reports_rows = False  # neither progress nor the list has a row count (reference section 1)

    def __init__(self, client: httpx.Client, *, base_url: str, cluster_id: str, api_key: Secret,
                 cluster_endpoint: str | None = None) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.cluster_id = cluster_id
        self.api_key = api_key
        self.cluster_endpoint = cluster_endpoint

    def describe(self, collection: str) -> CollectionSchema | None:
        if self.cluster_endpoint is None:
            return None
        return describe(self.client, self.cluster_endpoint, collection, token=self.api_key)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key.reveal()}", "Accept": "application/json",
                **(extra or {})}

    def object_ref(self, obj: StoredObject, url: str) -> str:
        return url

    def create(self, request: ImportRequest) -> str:
        body: dict[str, Any] = {"clusterId": self.cluster_id, "collectionName": request.collection,
                                "objectUrl": request.object_url}
        if request.credentials is not None:
            body["accessKey"] = request.credentials.access_key.reveal()
            body["secretKey"] = request.credentials.secret_key.reveal()
        data = call(self.client, "POST", f"{self.base_url}/v1/vector/collections/import",
                    headers=self._headers({"Idempotency-Key": request.idempotency_key}), json=body,
                    success_codes=SUCCESS, creates=True)
        return created_job_id(data)

    def progress(self, job_id: str) -> JobInfo:
        params = {"jobId": asked_job_id(job_id), "clusterId": self.cluster_id}
        data = call(self.client, "GET", f"{self.base_url}/v1/vector/collections/import/get",
                    headers=self._headers(), params=params,
                    success_codes=SUCCESS)
        if data is None:
            raise TransientError(f"progress of job {job_id}: the reply has no data")
        reply = Reply(data, "data")
        error = reply.text("errorMessage")
        if error:
            state = JobState.FAILED
        elif reply.moment("completeTime"):
            state = JobState.COMPLETED
        else:
            state = JobState.RUNNING
        return JobInfo(job_id=job_id, state=state, collection=reply.name("collectionName"),
                       file_name=reply.name("fileName"), reason=error,
                       progress=reply.percent("readyPercentage"))

    def list_jobs(self) -> Iterator[JobInfo]:
        page = 1
        seen = 0
        ids: set[str] = set()
        while True:
            data = call(self.client, "GET", f"{self.base_url}/v1/vector/collections/import/list",
                        headers=self._headers(),
                        params={"clusterId": self.cluster_id, "pageSize": PAGE_SIZE, "currentPage": page},
                        success_codes=SUCCESS)
            if data is None:
                raise TransientError("the job list reply has no data")
            reply = Reply(data, "data")
            found = reply.objects("tasks") if reply.has("tasks") else reply.objects("records")
            new = [job for job in records(found, _LIST_STATES) if job.job_id not in ids]
            yield from new
            ids.update(job.job_id for job in new)
            seen += len(found)
            count = reply.count("count")
            # a short page is the last; a page of jobs all seen is a server that ignores the page fields
            if len(found) < PAGE_SIZE or not new or (count is not None and seen >= count):
                return
            page += 1


def _section(r: Reader, node: Any, _base_dir: Path) -> TargetConfig:
    t = r.mapping(node, "target", required=("type", "cluster_id", "api_key"),
                  optional=("region", "endpoint", "cluster_endpoint"))
    url = endpoint(r, t)
    region = r.optional_string(t.get("region"), "target.region")
    if url is not None:
        base_url = url
    elif region is not None:
        if not _REGION.fullmatch(region):
            raise r.fail("target.region", "expected a Zilliz Cloud region: its cloud, then the cloud's "
                                          "region (gcp-us-west1, aws-us-east-2, az-eastus, "
                                          f"ali-cn-hangzhou), got {excerpt(region)}")
        base_url = f"https://controller.api.{region}.zillizcloud.com"
    else:
        raise r.fail("target", "set region (e.g. gcp-us-west1) or endpoint")
    return TargetConfig(
        type=SPEC.type,
        capabilities=CAPABILITIES,
        base_url=base_url,
        cluster_id=r.string(t["cluster_id"], "target.cluster_id"),
        api_key=Secret(r.string(t["api_key"], "target.api_key", secret=True)),
        cluster_endpoint=endpoint(r, t, "cluster_endpoint"),
    )


def _build(t: TargetConfig, client: httpx.Client, _read: ObjectReader) -> Target:
    return ZillizV1Target(client, base_url=t.base_url, cluster_id=t.cluster_id, api_key=required_key(t),
                          cluster_endpoint=t.cluster_endpoint)


SPEC = TargetSpec(type="zilliz-v1", parse=_section, capabilities=CAPABILITIES, identity=cluster_identity,
                  build=_build)
