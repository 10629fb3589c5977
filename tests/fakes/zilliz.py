"""A fake Zilliz Cloud import API (REST v1) on a real socket, with injectable faults (see ``base.py``).

It checks the bearer token and the body, answers errors as HTTP 200 + body ``code`` like the real
service, and records every request it received. Jobs complete after ``complete_after`` seconds of its
clock, or fail with a reason when their object URL contains one of ``fail_objects``' keys. The list
puts its jobs under ``tasks`` (the doc example) or ``records`` (the doc schema): ``list_key``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.fakes.base import FAULTS, NO_CLUSTER, Exchange, FakeImportAPI, Handler, Job, Received, check_keys

__all__ = ["FAULTS", "FakeZilliz", "Job", "Received"]

_STATES = {"running": "ImportRunning", "completed": "ImportCompleted", "failed": "ImportFailed"}


@dataclass
class FakeZilliz(FakeImportAPI):
    TYPE = "zilliz-v1"
    CREATE_PATH = "/v1/vector/collections/import"
    BUSY = (40003, "cluster is not in a state to import, please try again later")
    FULL = (47055, "cluster is busy importing")

    cluster_id: str = "inxx-fake0000000001"
    list_key: str = "tasks"  # the doc example says tasks, the doc schema records
    success_code: int = 200

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {("POST", self.CREATE_PATH): self._create,
                ("GET", "/v1/vector/collections/import/get"): self._progress,
                ("GET", "/v1/vector/collections/import/list"): self._list}

    def manifest_target(self) -> dict[str, Any]:
        return {"type": self.TYPE, "endpoint": self.url, "cluster_endpoint": self.url,
                "cluster_id": self.cluster_id,
                "api_key": "${ZILLIZ_API_KEY}"}

    def urls_of(self, body: Any) -> list[str]:
        return [str(body["objectUrl"])]

    def created_reply(self, job_id: str) -> dict[str, Any]:
        return {"code": self.success_code, "data": {"jobId": job_id}}

    def state(self, job: Job) -> str:
        return _STATES[self.phase(job)]

    def _create(self, h: Exchange, body: Any, _query: dict[str, str]) -> None:
        problem = check_keys(body, required=("clusterId", "collectionName", "objectUrl", "accessKey",
                                             "secretKey"))
        if problem:
            return self.reply(h, {"code": 1100, "message": problem})
        if body["clusterId"] != self.cluster_id:
            return self.reply(h, {"code": 80020, "message": NO_CLUSTER})
        return self.new_job(h, object_url=body["objectUrl"], collection=body["collectionName"],
                            access_key=body["accessKey"])

    def _progress(self, h: Exchange, _body: Any, query: dict[str, str]) -> None:
        if self.poll_fault(h):
            return None
        job = self.job(query.get("jobId", ""))
        if job is None or query.get("clusterId") != self.cluster_id:
            return self.reply(h, {"code": 90144, "message": "job not found"})
        done = self.phase(job) != "running"
        key = self.reported_name(job.object_url)
        detail = {"fileName": key, "fileSize": 1000, "readyPercentage": 1 if done else 0.5,
                  "completeTime": "2026-11-29T00:00:00Z" if done else None,
                  "errorMessage": job.fail_reason}
        return self.reply(h, {"code": self.success_code, "data": {
            "collectionName": job.collection, "jobId": job.job_id, **detail, "details": [detail]}})

    def _list(self, h: Exchange, _body: Any, query: dict[str, str]) -> None:
        if not self.list_enabled:
            return self.reply(h, {"code": 1100, "message": "listing import jobs is not enabled"})
        if self.poll_fault(h):
            return None
        size = int(query.get("pageSize", 10))
        page = int(query.get("currentPage", 1))
        chunk, count = self.page(self.listed_jobs(), size, page)
        return self.reply(h, {"code": self.success_code, "data": {
            **count, "currentPage": page, "pageSize": size,
            self.list_key: [{"collectionName": j.collection, "jobId": j.job_id, "state": self.state(j)}
                            for j in chunk]}})


def main() -> None:
    """Serve a fake in its own process (for benchmarks): ``python -m tests.fakes.zilliz KEY LATENCY``."""
    import sys
    import threading

    fake = FakeZilliz(api_key=sys.argv[1], latency_s=float(sys.argv[2])).start()
    print(fake.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
