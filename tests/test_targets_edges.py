"""Replies that may have made a job, job ids, and servers as they are: every HTTP target against its fake,
served in-process (``fake.transport()``: the fake's own logic, no socket) or over loopback where only a
connection can show it (a read timeout); ``httpx.MockTransport`` by hand only for reply shapes no fake
gives."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import httpx
import pytest

from orchestrator.errors import AmbiguousError, JobNotFoundError, PermanentError, TransientError
from orchestrator.models import UNREADABLE_JOB_ID, Credentials, ImportRequest, JobState, Secret
from orchestrator.targets.base import Target
from orchestrator.targets.http import MAX_JOB_ID, created_job_id, job_id_problem
from orchestrator.targets.milvus import MilvusTarget
from orchestrator.targets.zilliz_v1 import ZillizV1Target
from orchestrator.targets.zilliz_v2 import ZillizV2Target
from tests.conftest import Clock
from tests.fakes.base import FakeImportAPI, Job
from tests.fakes.milvus import FakeMilvus
from tests.fakes.zilliz import FakeZilliz
from tests.fakes.zilliz_v2 import FakeZillizV2

APIS = ("zilliz-v1", "zilliz-v2", "milvus")
CREDS = Credentials(access_key=Secret("ak"), secret_key=Secret("sk"))


@pytest.fixture(params=APIS)
def fake(request: pytest.FixtureRequest, clock: Clock) -> Iterator[FakeImportAPI]:
    """The fake, in-process until a test starts its socket."""
    kind: type[FakeImportAPI] = {"zilliz-v1": FakeZilliz, "zilliz-v2": FakeZillizV2,
                                 "milvus": FakeMilvus}[request.param]
    server = kind(clock=clock)
    yield server
    server.stop()


@pytest.fixture
def http(fake: FakeImportAPI) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, transport=fake.transport()) as client:
        yield client


def target_of(fake: FakeImportAPI, client: httpx.Client) -> Target:
    key = Secret(fake.api_key)
    if isinstance(fake, FakeZilliz):
        return ZillizV1Target(client, base_url=fake.url, cluster_id=fake.cluster_id, api_key=key)
    if isinstance(fake, FakeZillizV2):
        return ZillizV2Target(client, base_url=fake.url, cluster_id=fake.cluster_id, api_key=key)
    assert isinstance(fake, FakeMilvus)
    return MilvusTarget(client, base_url=fake.url, token=Secret(fake.api_key))


def url_of(fake: FakeImportAPI, key: str) -> str:
    return f"s3://{fake.bucket if isinstance(fake, FakeMilvus) else 'lake'}/{key}"


def create(target: Target, fake: FakeImportAPI, key: str, *, url: str | None = None) -> str:
    """One create call for the object ``key`` (or ``url``), named as this API names objects."""
    url = url or url_of(fake, key)
    ref = key if isinstance(fake, FakeMilvus) else url
    return target.create(ImportRequest(object_url=ref, collection="c", partition=None,
                                       credentials=None if isinstance(fake, FakeMilvus) else CREDS,
                                       idempotency_key=f"key-{key}"))


# -- replies that may have made a job -------------------------------------------------------------

def test_success_without_a_job_id_is_ambiguous(fake: FakeImportAPI, http: httpx.Client) -> None:
    fake.faults = ["no-id"]
    with pytest.raises(AmbiguousError, match="without a job id"):
        create(target_of(fake, http), fake, "emb/a.parquet")
    assert len(fake.jobs_for(url_of(fake, "emb/a.parquet"))) == 1  # the job exists: never retry blindly


@pytest.mark.parametrize("fault", ["502", "503-after", "504"])
def test_a_5xx_on_a_create_is_ambiguous(fake: FakeImportAPI, http: httpx.Client, fault: str) -> None:
    fake.faults = [fault]
    with pytest.raises(AmbiguousError, match=f"HTTP {fault[:3]}"):
        create(target_of(fake, http), fake, "emb/a.parquet")
    assert len(fake.jobs_for(url_of(fake, "emb/a.parquet"))) == 1


@pytest.mark.parametrize("fault", ["429", "busy"])
def test_replies_that_prove_no_job_stay_plain_transient(fake: FakeImportAPI, http: httpx.Client,
                                                        fault: str) -> None:
    fake.faults = [fault]
    with pytest.raises(TransientError) as info:
        create(target_of(fake, http), fake, "emb/a.parquet")
    assert type(info.value) is TransientError and fake.all_jobs() == []


def test_a_read_timeout_on_a_create_is_ambiguous(fake: FakeImportAPI) -> None:
    fake.start()  # a read timeout needs a real connection
    gave_up, made = threading.Event(), threading.Event()

    def hold(_job: Job) -> None:  # the job is made; its reply is held until the client gave up
        made.set()
        gave_up.wait(10)

    fake.before_reply = hold
    try:
        with httpx.Client(timeout=httpx.Timeout(10, read=0.05)) as client, pytest.raises(AmbiguousError):
            create(target_of(fake, client), fake, "emb/a.parquet")
    finally:
        gave_up.set()
    # the client may give up before a loaded server even made the job: the call is ambiguous either way
    assert made.wait(10) and len(fake.all_jobs()) == 1


def test_polls_keep_503_plain_transient() -> None:
    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "2"})

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        target = ZillizV2Target(client, base_url="http://api", cluster_id="c", api_key=Secret("k"))
        with pytest.raises(TransientError) as info:
            target.progress("1")
    assert type(info.value) is TransientError and info.value.retry_after == 2.0


# -- job ids ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad_id", [None, "job-1\n", "job 1", "jöb-1", "x" * (MAX_JOB_ID + 1)],
                         ids=["10MB", "newline", "space", "non-ascii", "257-chars"])
def test_a_bad_job_id_in_a_create_reply_is_refused(fake: FakeImportAPI, http: httpx.Client,
                                                   bad_id: str | None) -> None:
    fake.faults, fake.bad_id = ["bad-id"], bad_id
    # refused as a bad id, or (10 MB) as a reply past the body bound before it is even parsed
    with pytest.raises(AmbiguousError, match=r"refused|longer than") as info:
        create(target_of(fake, http), fake, "emb/a.parquet")
    assert len(str(info.value)) < 200 and "\n" not in str(info.value)
    assert len(fake.jobs_for(url_of(fake, "emb/a.parquet"))) == 1  # made, so: look before retrying


def test_job_ids_are_bounded() -> None:
    assert job_id_problem("448707763884413158") is None and job_id_problem("job-" + "a" * 252) is None
    assert job_id_problem("0b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d") is None
    assert job_id_problem("a" * 257) == "is 257 characters long (at most 256)"
    assert job_id_problem("") == "is empty" and job_id_problem("a\tb") is not None
    assert created_job_id({"jobID": 448707763884413158}) == "448707763884413158"
    for odd in ([1], {"id": 1}, True, 1.5):
        assert job_id_problem(odd) is not None
        with pytest.raises(AmbiguousError, match="not a string"):
            created_job_id({"jobId": odd})


@pytest.mark.parametrize("api", APIS)
def test_list_records_with_bad_ids_are_listed_unreadable_with_a_warning(api: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    records = [{"jobId": "ok-1", "state": "Completed", "collectionName": "c"},
               {"state": "Completed"}, {"jobId": None}, {"jobId": "y" * 10_000, "state": "Failed"},
               {"jobId": "bad\x00id", "state": "Failed"}, {"jobID": 7, "state": "Failed"}]
    key = "tasks" if api == "zilliz-v1" else "records"

    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"code": 200 if api == "zilliz-v1" else 0,
                                         "data": {"count": len(records), key: records}})

    with httpx.Client(transport=httpx.MockTransport(answer)) as client, caplog.at_level(logging.WARNING):
        target: Target = {"zilliz-v1": lambda: ZillizV1Target(client, base_url="http://a", cluster_id="c",
                                                              api_key=Secret("k")),
                          "zilliz-v2": lambda: ZillizV2Target(client, base_url="http://a", cluster_id="c",
                                                              api_key=Secret("k")),
                          "milvus": lambda: MilvusTarget(client, base_url="http://a")}[api]()
        # the four unreadable ones are one job that cannot be described (UNREADABLE_JOB_ID): never asked
        # about, never stored, and it keeps any object of its collection from being taken for absent
        listed = [j.job_id for j in target.list_jobs()]
    assert [j for j in listed if j != UNREADABLE_JOB_ID] == ["ok-1", "7"] and UNREADABLE_JOB_ID in listed
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4 and all("cannot be described" in w and len(w) < 250 for w in warnings)


def test_progress_refuses_a_bad_id_without_asking(fake: FakeImportAPI, http: httpx.Client) -> None:
    with pytest.raises(PermanentError, match="no import API made it"):
        target_of(fake, http).progress("z" * 10_000)
    assert fake.received == []


def test_dup_id_answers_with_another_objects_job_and_makes_nothing(fake: FakeImportAPI,
                                                                   http: httpx.Client) -> None:
    target = target_of(fake, http)
    first = create(target, fake, "emb/a.parquet")
    fake.faults = ["dup-id"]
    assert create(target, fake, "emb/b.parquet") == first  # a protocol violation the ledger must catch
    assert [j.object_url for j in fake.all_jobs()] == [url_of(fake, "emb/a.parquet")]


# -- servers as they are ----------------------------------------------------------------------------

def test_the_list_lags_but_progress_knows_the_job_at_once(fake: FakeImportAPI, http: httpx.Client,
                                                         clock: Clock) -> None:
    fake.list_lag_s = 3.0
    target = target_of(fake, http)
    job_id = create(target, fake, "emb/a.parquet")
    assert list(target.list_jobs()) == []
    assert target.progress(job_id).job_id == job_id
    clock.now += 3.0
    assert [j.job_id for j in target.list_jobs()] == [job_id]


def test_finished_jobs_are_forgotten_after_job_memory(fake: FakeImportAPI, http: httpx.Client,
                                                     clock: Clock) -> None:
    fake.job_memory_s, fake.complete_after = 60.0, 10.0
    target = target_of(fake, http)
    job_id = create(target, fake, "emb/a.parquet")
    clock.now += 65.0  # finished 55 s ago: still known
    assert target.progress(job_id).state is JobState.COMPLETED
    assert [j.job_id for j in target.list_jobs()] == [job_id]
    clock.now += 10.0
    with pytest.raises(JobNotFoundError):
        target.progress(job_id)
    assert list(target.list_jobs()) == []


@pytest.mark.parametrize("url, reported", [
    ("s3://lake/emb/a b.parquet", "emb/a b.parquet"),
    ("https://lake.s3.us-east-1.amazonaws.com/emb/a%20b.parquet", "emb/a%20b.parquet"),
    ("https://s3.us-east-1.amazonaws.com/lake/emb/x%2By.parquet", "lake/emb/x%2By.parquet"),
    ("https://storage.googleapis.com/lake/emb/%C3%A9.parquet", "lake/emb/%C3%A9.parquet"),
])
def test_zilliz_fakes_report_the_path_after_the_host_as_given(clock: Clock, url: str, reported: str) -> None:
    for kind in (FakeZilliz, FakeZillizV2):
        fake = kind(clock=clock)
        with httpx.Client(transport=fake.transport()) as http:
            target = target_of(fake, http)
            assert fake.reported_name(url) == reported
            assert target.progress(create(target, fake, "k", url=url)).file_name == reported


def test_milvus_reports_the_key_in_its_bucket(clock: Clock) -> None:
    fake = FakeMilvus(clock=clock)
    with httpx.Client(transport=fake.transport()) as http:
        target = target_of(fake, http)
        assert target.progress(create(target, fake, "emb/a b.parquet")).file_name == "emb/a b.parquet"


def test_visible_rows_count_each_completed_job(fake: FakeImportAPI, http: httpx.Client, clock: Clock) -> None:
    fake.complete_after = 5.0
    target = target_of(fake, http)
    create(target, fake, "emb/a.parquet")
    assert fake.visible_rows(url_of(fake, "emb/a.parquet")) == 0
    clock.now += 5.0
    assert fake.visible_rows(url_of(fake, "emb/a.parquet")) == 3
