"""Request and response mapping of the zilliz-v2 and milvus targets, odd replies included
(``httpx.MockTransport``: no server, no patching of the client)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from orchestrator.errors import (
    AmbiguousError,
    FatalTargetError,
    JobNotFoundError,
    PermanentError,
    TransientError,
)
from orchestrator.models import UNREADABLE_JOB_ID, Credentials, ImportRequest, JobState, Secret, StoredObject
from orchestrator.targets.milvus import MilvusTarget
from orchestrator.targets.zilliz_v2 import ZillizV2Target

OBJ = StoredObject(url="s3://lake/emb/a b.parquet", bucket="lake", key="emb/a b.parquet",
                   relative_key="a b.parquet", size=10, version="e1", modified=0.0)


def client(answer: Callable[[httpx.Request], httpx.Response], seen: list[httpx.Request]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    return httpx.Client(transport=httpx.MockTransport(handler))


def ok(data: Any, code: int = 0) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _r: httpx.Response(200, json={"code": code, "data": data})


def request(obj_ref: str, *, partition: str | None = None, creds: Credentials | None = None) -> ImportRequest:
    return ImportRequest(object_url=obj_ref, collection="articles", partition=partition, credentials=creds,
                         idempotency_key="orch-key", obj=OBJ)


def v2(answer: Callable[[httpx.Request], httpx.Response], seen: list[httpx.Request],
       db_name: str | None = None) -> ZillizV2Target:
    return ZillizV2Target(client(answer, seen), base_url="https://api.example/", cluster_id="inxx-1",
                          api_key=Secret("zk"), db_name=db_name)


def milvus(answer: Callable[[httpx.Request], httpx.Response], seen: list[httpx.Request],
           token: str | None = "root:Milvus", db_name: str | None = None) -> MilvusTarget:
    return MilvusTarget(client(answer, seen), base_url="http://milvus:19530",
                        token=Secret(token) if token else None, db_name=db_name)


# -- zilliz-v2 ----------------------------------------------------------------------------------

def test_v2_create_body_headers_and_both_job_id_spellings() -> None:
    seen: list[httpx.Request] = []
    creds = Credentials(access_key=Secret("ak"), secret_key=Secret("sk"), token=Secret("sts"))
    target = v2(ok({"jobID": 448761313698322011}), seen, db_name="analytics")
    assert target.object_ref(OBJ, OBJ.url) == OBJ.url
    assert target.create(request(OBJ.url, partition="p1", creds=creds)) == "448761313698322011"
    sent = seen[0]
    assert sent.method == "POST" and sent.url == "https://api.example/v2/vectordb/jobs/import/create"
    assert sent.headers["Authorization"] == "Bearer zk" and sent.headers["Idempotency-Key"] == "orch-key"
    assert json.loads(sent.content) == {
        "clusterId": "inxx-1", "collectionName": "articles", "objectUrls": [[OBJ.url]], "partitionName": "p1",
        "dbName": "analytics", "accessKey": "ak", "secretKey": "sk", "token": "sts"}
    assert v2(ok({"jobId": "job-1"}), seen).create(request(OBJ.url)) == "job-1"


@pytest.mark.parametrize("reply, error", [
    (httpx.Response(200, json={"code": 0, "data": {}}), AmbiguousError),  # success, but which job?
    (httpx.Response(200, json={"code": 200, "data": {"jobId": "x"}}), PermanentError),  # 200 is not v2's 0
    (httpx.Response(200, json={"code": 47055, "message": "busy"}), TransientError),
    (httpx.Response(200, json={"code": 80001, "message": "bad key"}), FatalTargetError),
    (httpx.Response(200, text="<html>bad gateway</html>"), AmbiguousError),
    (httpx.Response(502), AmbiguousError),
])
def test_v2_create_errors(reply: httpx.Response, error: type[Exception]) -> None:
    with pytest.raises(error):
        v2(lambda _r: reply, []).create(request(OBJ.url))


def test_v2_progress_falls_back_on_404_and_remembers() -> None:
    seen: list[httpx.Request] = []

    def answer(r: httpx.Request) -> httpx.Response:
        if not r.url.path.endswith("getProgress"):
            return httpx.Response(404, text="404 page not found")
        return httpx.Response(200, json={"code": 0, "data": {
            "jobId": "9", "collectionName": "articles", "fileName": "emb/a.parquet", "state": "InProgress",
            "progress": 40, "reason": "", "totalRows": 100}})

    target = v2(answer, seen)
    info = target.progress("9")
    assert (info.state, info.file_name, info.progress, info.reason) == (JobState.RUNNING, "emb/a.parquet",
                                                                        40.0, None)
    assert [r.url.path.rsplit("/", 1)[1] for r in seen] == ["describe", "get_progress", "getProgress"]
    assert json.loads(seen[0].content) == {"clusterId": "inxx-1", "jobId": "9"}
    target.progress("9")
    assert [r.url.path.rsplit("/", 1)[1] for r in seen[3:]] == ["getProgress"]


def test_v2_progress_404_everywhere_is_fatal() -> None:
    with pytest.raises(FatalTargetError, match="404"):
        v2(lambda _r: httpx.Response(404), []).progress("9")


@pytest.mark.parametrize("state, expected", [("Pending", JobState.RUNNING), ("Importing", JobState.RUNNING),
                                             ("Completed", JobState.COMPLETED), ("Failed", JobState.FAILED),
                                             ("SomethingNew", JobState.RUNNING)])
def test_v2_states(state: str, expected: JobState) -> None:
    data = {"state": state, "reason": "bad row" if state == "Failed" else "",
            "details": [{"fileName": "emb/a.parquet", "state": state}]}
    info = v2(ok(data), []).progress("1")
    assert info.state is expected and info.file_name == "emb/a.parquet"
    assert info.reason == ("bad row" if state == "Failed" else None)


def test_v2_job_not_found_and_odd_progress_data() -> None:
    with pytest.raises(JobNotFoundError):
        v2(lambda _r: httpx.Response(200, json={"code": 96026, "message": "job not found"}), []).progress("1")
    with pytest.raises(TransientError, match="no data"):
        v2(ok(None), []).progress("1")


def test_v2_list_pages_until_count() -> None:
    seen: list[httpx.Request] = []

    def answer(r: httpx.Request) -> httpx.Response:
        page = json.loads(r.content)["currentPage"]
        size = 100 if page == 1 else 50
        records = [{"jobId": f"{page}-{i}", "collectionName": "c", "state": "Completed"} for i in range(size)]
        return httpx.Response(200, json={"code": 0, "data": {"count": 150, "records": records}})

    jobs = list(v2(answer, seen).list_jobs())
    assert len(jobs) == 150 and jobs[0].state is JobState.COMPLETED
    assert [json.loads(r.content) for r in seen] == [
        {"clusterId": "inxx-1", "pageSize": 100, "currentPage": 1},
        {"clusterId": "inxx-1", "pageSize": 100, "currentPage": 2}]


# -- milvus -------------------------------------------------------------------------------------

def test_milvus_create_names_the_key_in_its_bucket() -> None:
    seen: list[httpx.Request] = []
    target = milvus(ok({"jobId": "448707763884413158"}), seen, db_name="analytics")
    assert target.object_ref(OBJ, OBJ.url) == "emb/a b.parquet"
    assert target.create(request(target.object_ref(OBJ, OBJ.url), partition="p1")) == "448707763884413158"
    sent = seen[0]
    assert sent.url == "http://milvus:19530/v2/vectordb/jobs/import/create"
    assert sent.headers["Authorization"] == "Bearer root:Milvus"
    assert sent.headers["DB-Name"] == "analytics" and sent.headers["Idempotency-Key"] == "orch-key"
    assert json.loads(sent.content) == {"collectionName": "articles", "files": [["emb/a b.parquet"]],
                                        "partitionName": "p1", "dbName": "analytics"}


def test_milvus_without_auth_sends_no_authorization() -> None:
    seen: list[httpx.Request] = []
    milvus(ok({"jobId": "1"}), seen, token=None).create(request("k"))
    assert "Authorization" not in seen[0].headers and "DB-Name" not in seen[0].headers


@pytest.mark.parametrize("reply, error", [
    (httpx.Response(200, json={"code": 200, "message": "partition not found[partition=p1]"}), PermanentError),
    (httpx.Response(200, json={"code": 100, "message": "collection not found"}), PermanentError),
    (httpx.Response(200, json={"code": 8, "message": "rate limit exceeded"}), TransientError),
    (httpx.Response(401, json={"code": 1800, "message": "user hasn't authenticated"}), FatalTargetError),
    (httpx.Response(200, json={"code": 0, "data": {"jobId": ""}}), AmbiguousError),
])
def test_milvus_create_errors(reply: httpx.Response, error: type[Exception]) -> None:
    with pytest.raises(error):
        milvus(lambda _r: reply, []).create(request("k"))


@pytest.mark.parametrize("state, expected", [
    ("Pending", JobState.RUNNING), ("PreImporting", JobState.RUNNING), ("Importing", JobState.RUNNING),
    ("Sorting", JobState.RUNNING), ("IndexBuilding", JobState.RUNNING), ("None", JobState.RUNNING),
    ("Completed", JobState.COMPLETED), ("Failed", JobState.FAILED)])
def test_milvus_states(state: str, expected: JobState) -> None:
    seen: list[httpx.Request] = []
    data = {"jobId": "7", "collectionName": "c", "state": state, "progress": 50, "importedRows": 10,
            "reason": "field 'x' type mis-match" if state == "Failed" else "",
            "details": [{"fileName": "emb/a.parquet"}]}
    info = milvus(ok(data), seen).progress("7")
    assert info.state is expected and info.file_name == "emb/a.parquet" and info.imported_rows == 10
    assert json.loads(seen[0].content) == {"jobId": "7"}


def test_milvus_forgotten_job_is_job_not_found() -> None:
    reply = httpx.Response(200, json={"code": 2100, "message": "import job does not exist, jobID=7"})
    with pytest.raises(JobNotFoundError, match="3 hours"):
        milvus(lambda _r: reply, []).progress("7")


def test_milvus_list_has_no_pagination() -> None:
    seen: list[httpx.Request] = []
    records = [{"jobId": "1", "collectionName": "c", "state": "Sorting", "progress": 70},
               {"jobID": "2", "collectionName": "c", "state": "Completed"}, {"state": "Failed"}]
    jobs = list(milvus(ok({"records": records}), seen, db_name="d").list_jobs())
    # the record without an id is listed as one that cannot be described
    assert [(j.job_id, j.state) for j in jobs] == [("1", JobState.RUNNING), ("2", JobState.COMPLETED),
                                                   (UNREADABLE_JOB_ID, JobState.FAILED)]
    assert len(seen) == 1 and json.loads(seen[0].content) == {"dbName": "d"}
