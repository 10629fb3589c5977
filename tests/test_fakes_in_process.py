"""The fakes served in-process (``fake.transport()``) answer as they do on a real socket: the same status,
headers and body for the same calls, and a fault that needs a connection is refused, not imitated."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import FAKES, HTTP_TARGETS
from tests.fakes.base import FakeImportAPI, NeedsSocket
from tests.fakes.milvus import FakeMilvus
from tests.fakes.zilliz import FakeZilliz
from tests.fakes.zilliz_v2 import FakeZillizV2


def calls(fake: FakeImportAPI) -> list[tuple[str, str, dict[str, object] | None, dict[str, str]]]:
    """A create, its progress, the list, a refusal, an unknown route and a wrong key, in this API's words."""
    good = {"Authorization": f"Bearer {fake.api_key}", "Idempotency-Key": "k-1"}
    bad = {"Authorization": "Bearer wrong"}
    if isinstance(fake, FakeZilliz):
        create = {"clusterId": fake.cluster_id, "collectionName": "c", "objectUrl": "s3://b/a.parquet",
                  "accessKey": "ak", "secretKey": "sk"}
        return [("POST", fake.CREATE_PATH, create, good),
                ("GET", f"/v1/vector/collections/import/get?jobId=job-{1:020d}&clusterId={fake.cluster_id}",
                 None, good),
                ("GET", f"/v1/vector/collections/import/list?clusterId={fake.cluster_id}", None, good),
                ("POST", fake.CREATE_PATH, {"clusterId": fake.cluster_id}, good),
                ("GET", "/nowhere", None, good), ("POST", fake.CREATE_PATH, create, bad)]
    prefix = fake.CREATE_PATH.rsplit("/", 1)[0]
    if isinstance(fake, FakeMilvus):
        create = {"collectionName": "c", "files": [["a.parquet"]]}
        job: dict[str, object] = {"jobId": "448707763884413001"}
    else:
        assert isinstance(fake, FakeZillizV2)
        create = {"clusterId": fake.cluster_id, "collectionName": "c", "objectUrls": [["s3://b/a.parquet"]],
                  "accessKey": "ak", "secretKey": "sk"}
        job = {"clusterId": fake.cluster_id, "jobId": "448761313698322001"}
    listed = {k: v for k, v in job.items() if k != "jobId"}
    return [("POST", fake.CREATE_PATH, create, good), ("POST", f"{prefix}/describe", job, good),
            ("POST", f"{prefix}/list", listed, good), ("POST", fake.CREATE_PATH, {"x": 1}, good),
            ("POST", "/nowhere", {}, good), ("POST", fake.CREATE_PATH, create, bad)]


def answers(fake: FakeImportAPI, client: httpx.Client) -> list[tuple[int, list[str], bytes]]:
    got = []
    for method, path, body, headers in calls(fake):
        reply = client.request(method, f"{fake.url}{path}", json=body, headers=headers)
        names = sorted(k for k in reply.headers if k not in ("date", "connection", "keep-alive"))
        got.append((reply.status_code, names, reply.content))
    return got


def recorded(fake: FakeImportAPI) -> list[tuple[str, str, dict[str, str], object]]:
    """The requests as the fake recorded them, but the Host header (each fake has its own URL)."""
    return [(r.method, r.path, {k: v for k, v in r.headers.items() if k.lower() != "host"}, r.body)
            for r in fake.received]


@pytest.mark.parametrize("api", HTTP_TARGETS)
def test_in_process_answers_as_the_socket_does(api: str) -> None:
    memory, real = FAKES[api](), FAKES[api]().start()
    try:
        with httpx.Client(transport=memory.transport()) as client:
            in_process = answers(memory, client)
        with httpx.Client() as client:
            over_socket = answers(real, client)
    finally:
        real.stop()
    assert in_process == over_socket
    assert recorded(memory) == recorded(real)


@pytest.mark.parametrize("fault", ["drop", "loris-header", "loris-body", "endless"])
def test_a_fault_that_needs_a_connection_is_refused_in_process(fault: str) -> None:
    fake = FAKES["zilliz-v1"]()
    fake.faults = [fault]
    method, path, body, headers = calls(fake)[0]
    with httpx.Client(transport=fake.transport()) as client, pytest.raises(NeedsSocket):
        client.request(method, f"{fake.url}{path}", json=body, headers=headers)
    assert len(fake.all_jobs()) == 1  # made, as on a socket; only the reply cannot be given
