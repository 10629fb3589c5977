"""A fake Zilliz Cloud REST v2 import API (reference section 2) on a real socket (see ``base.py``).

Every call is a POST with a JSON body checked against the documented keys; success is code 0. The doc
inconsistencies are switches: ``job_id_key`` (``jobId`` or ``jobID``), ``running_state``
(``Importing`` or ``InProgress``), and ``progress_paths`` (which of describe / get_progress /
getProgress this server answers; the others are 404). Its list pages (``pageSize`` 1..100,
``currentPage``, ``count``; reference section 2). It takes ``options`` but acts on none: which options
Zilliz Cloud honours (``timeout``, ``auto_commit``) is not established (reference section 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.fakes.base import NO_CLUSTER, ROWS, Exchange, FakeImportAPI, Handler, Job, check_keys

PREFIX = "/v2/vectordb/jobs/import"
MAX_FILES = 1000  # files one import job may name (Zilliz Cloud v2)


@dataclass
class FakeZillizV2(FakeImportAPI):
    TYPE = "zilliz-v2"
    CREATE_PATH = f"{PREFIX}/create"
    BUSY = (40003, "cluster is not in a state to import, please try again later")
    FULL = (47055, "cluster is busy importing")

    cluster_id: str = "inxx-fake0000000002"
    job_id_key: str = "jobId"  # one doc example spells jobID
    running_state: str = "Importing"  # the docs also say InProgress
    progress_paths: tuple[str, ...] = ("describe", "get_progress", "getProgress")
    file_details: str = "job"  # Zilliz Cloud's describe is not documented to say which file failed a job

    def routes(self) -> dict[tuple[str, str], Handler]:
        routes: dict[tuple[str, str], Handler] = {("POST", self.CREATE_PATH): self._create,
                                                  ("POST", f"{PREFIX}/list"): self._list}
        for name in self.progress_paths:
            routes[("POST", f"{PREFIX}/{name}")] = self._progress
        return routes

    def manifest_target(self) -> dict[str, Any]:
        return {"type": self.TYPE, "endpoint": self.url, "cluster_endpoint": self.url,
                "cluster_id": self.cluster_id,
                "api_key": "${ZILLIZ_API_KEY}"}

    def urls_of(self, body: Any) -> list[str]:
        return [str(inner[0]) for inner in body["objectUrls"]]

    def new_job_id(self, n: int) -> str:
        return f"{448761313698322000 + n}"

    def created_reply(self, job_id: str) -> dict[str, Any]:
        return {"code": 0, "data": {self.job_id_key: job_id}}

    def state(self, job: Job) -> str:
        phase = self.phase(job)
        return {"running": self.running_state, "completed": "Completed", "failed": "Failed"}[phase]

    def _create(self, h: Exchange, body: Any, _query: dict[str, str]) -> None:
        problem = check_keys(body, required=("clusterId", "collectionName", "objectUrls", "accessKey",
                                             "secretKey"),
                             optional=("partitionName", "dbName", "token", "options"))
        urls = body.get("objectUrls") if isinstance(body, dict) else None
        if not problem and not (isinstance(urls, list) and 1 <= len(urls) <= MAX_FILES and all(
                isinstance(inner, list) and len(inner) == 1 and isinstance(inner[0], str) for inner in urls)):
            problem = (f"invalid parameter: objectUrls must be a list of 1 to {MAX_FILES} lists of one URL "
                       "each (one parquet file per inner list)")
        if problem:
            return self.reply(h, {"code": 1100, "message": problem})
        if body["clusterId"] != self.cluster_id:
            return self.reply(h, {"code": 80020, "message": NO_CLUSTER})
        return self.new_job(h, object_url=urls[0][0], collection=body["collectionName"],
                            access_key=body["accessKey"], partition=body.get("partitionName"),
                            db_name=body.get("dbName"), more=tuple(inner[0] for inner in urls[1:]))

    def _progress(self, h: Exchange, body: Any, _query: dict[str, str]) -> None:
        if self.poll_fault(h):
            return None
        problem = check_keys(body, required=("clusterId", "jobId"))
        if problem:
            return self.reply(h, {"code": 1100, "message": problem})
        job = self.job(body["jobId"])
        if job is None or body["clusterId"] != self.cluster_id:
            return self.reply(h, {"code": 96026, "message": "job not found"})
        phase = self.phase(job)
        done = phase != "running"
        details = [{"fileName": self.reported_name(url), "fileSize": 1000,
                    "state": self.state(job), "progress": 100 if done else 50,
                    "completeTime": "2026-11-29T00:00:00Z" if done else None,
                    "reason": self.file_reason(job, url), "importedRows": ROWS if phase == "completed" else 0}
                   for url in job.object_urls]
        top = {**details[0], "reason": job.fail_reason or "",
               "importedRows": sum(d["importedRows"] for d in details), "totalRows": ROWS * len(details)}
        if len(details) > 1:
            del top["fileName"]  # a job of several files names them in ``details`` only
        return self.reply(h, {"code": 0, "data": {
            "jobId": job.job_id, "collectionName": job.collection, **top, "details": details}})

    def _list(self, h: Exchange, body: Any, _query: dict[str, str]) -> None:
        if not self.list_enabled:
            return self.reply(h, {"code": 1100, "message": "listing import jobs is not enabled"})
        if self.poll_fault(h):
            return None
        problem = check_keys(body, required=("clusterId",), optional=("pageSize", "currentPage"))
        if problem:
            return self.reply(h, {"code": 1100, "message": problem})
        size = int(body.get("pageSize", 10))
        page = int(body.get("currentPage", 1))
        if not 1 <= size <= 100:
            return self.reply(h, {"code": 1100, "message": "invalid parameter: pageSize must be 1..100"})
        chunk, count = self.page(self.listed_jobs(), size, page)
        return self.reply(h, {"code": 0, "data": {
            **count, "currentPage": page, "pageSize": size,
            "records": [{"collectionName": j.collection, "jobId": j.job_id, "state": self.state(j)}
                        for j in chunk]}})
