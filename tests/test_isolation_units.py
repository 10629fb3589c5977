"""A bad file never holds good companions, piece by piece: what a failed job's objects become (pure),
the per-file details of a describe reply as the v2 targets read them (through the fakes, in-process),
grouping by part, and the queue that hands parts back to the submitter within a run."""

from __future__ import annotations

import threading

import httpx
import pytest

from orchestrator.jobs.isolation import failed_job, from_details
from orchestrator.ledger.factory import open_ledger
from orchestrator.models import JobInfo, JobState, LedgerRecord, PlanItem
from orchestrator.run.grouping import batches
from orchestrator.run.resend import Resend
from orchestrator.targets import jobs_v2
from orchestrator.targets.milvus import STATES as MILVUS_STATES
from tests.fakes.milvus import FakeMilvus
from tests.test_grouping_units import item, keys, record
from tests.test_ledger import Where, where  # noqa: F401  (the fixture, over both ledgers)

FAILED, COMPLETED = JobState.FAILED, JobState.COMPLETED


def members(n: int) -> list[LedgerRecord]:
    return [record(i, f"k{i}", batch=1) for i in range(1, n + 1)]


def failed(*, reasons: tuple[str | None, ...] = (), states: tuple[JobState | None, ...] = (),
           n: int = 4) -> JobInfo:
    return JobInfo("j", FAILED, "c", file_names=tuple(f"b/k{i}" for i in range(1, n + 1)),
                   file_states=states, file_reasons=reasons)


def ids(rows: list[LedgerRecord]) -> list[int]:
    return [r.id for r in rows]


def test_an_unknown_cause_sends_the_job_back_in_halves_without_a_failure() -> None:
    for n, halves in ((10, [5, 5]), (5, [3, 2]), (3, [2, 1]), (2, [1, 1])):
        outcome = failed_job("field 'vector' type mis-match", members(n), failed(n=n), grouped=True)
        assert outcome.failed == [] and outcome.proven == []  # nobody spends a failure yet
        assert [len(p) for p in outcome.parts] == halves
        assert sorted(r.id for p in outcome.parts for r in p) == list(range(1, n + 1))


def test_a_file_that_fails_alone_is_proven_and_kept_alone_where_objects_share_jobs() -> None:
    one = members(1)
    assert failed_job("broken", one, failed(n=1), grouped=True) == (one, one, [])
    assert failed_job("broken", one, failed(n=1), grouped=False) == (one, [], [])  # a job each anyway


def test_details_or_a_reason_naming_the_file_prove_it_and_the_rest_go_back_together() -> None:
    rows = members(4)
    told = failed(reasons=("", "", "bad vector", ""))
    assert failed_job("job failed", rows, told, grouped=True) == (
        [rows[2]], [rows[2]], [[rows[0], rows[1], rows[3]]])
    named = failed_job("failed to read b/k2: not parquet", rows, failed(), grouped=True)
    assert ids(named.proven) == [2] and [ids(p) for p in named.parts] == [[1, 3, 4]]


def test_details_tell_only_when_they_single_files_out() -> None:
    rows = members(4)
    assert ids(from_details(rows, failed(reasons=("x", "", "", "y")))) == [1, 4]
    assert from_details(rows, failed(reasons=("same",) * 4)) == []  # every file alike: not told
    assert ids(from_details(rows, failed(states=(COMPLETED, FAILED, COMPLETED, COMPLETED)))) == [2]
    assert from_details(rows, failed(states=(FAILED,) * 4)) == []
    assert from_details(rows, failed()) == []  # no per-file state or reason
    assert from_details(rows, JobInfo("j", FAILED, "c", file_names=("b/k1", "b/k2"),
                                      file_reasons=("bad", ""))) == []  # a file missing: not told


@pytest.mark.parametrize("file_details", ["own", "job"])
def test_the_milvus_describe_reply_gives_each_file_its_own_reason(file_details: str) -> None:
    fake = FakeMilvus(fail_objects={"k2": "field 'vector' type mis-match"}, reason_names_file=False,
                      file_details=file_details, bucket="b")
    auth = {"Authorization": f"Bearer {fake.api_key}"}
    with httpx.Client(transport=fake.transport(), base_url=fake.url, headers=auth) as client:
        made = client.post("/v2/vectordb/jobs/import/create",
                           json={"collectionName": "c", "files": [["k1"], ["k2"], ["k3"]]})
        job = made.json()["data"]["jobId"]
        data = client.post("/v2/vectordb/jobs/import/describe", json={"jobId": job}).json()["data"]
    info = jobs_v2.job_info(job, data, MILVUS_STATES)
    assert info.state is FAILED and info.reason == "field 'vector' type mis-match"  # names no file
    assert info.file_names == ("k1", "k2", "k3") and info.file_states == (FAILED,) * 3
    rows = [record(i, f"k{i}", batch=1)._replace(sent_as=f"k{i}") for i in (1, 2, 3)]
    if file_details == "own":
        assert info.file_reasons == (None, "field 'vector' type mis-match", None)  # "": none
        assert ids(from_details(rows, info)) == [2]
    else:
        assert info.file_reasons == ("field 'vector' type mis-match",) * 3 and from_details(rows, info) == []


def test_a_part_shares_a_job_only_with_the_rest_of_its_part() -> None:
    items = [item("a"), item("h1")._replace(part=7), item("b"), item("h2")._replace(part=7),
             item("g1")._replace(part=8), item("c")]
    assert keys(list(batches(items, most=10))) == [["a", "b", "c"], ["h1", "h2"], ["g1"]]


def test_parts_come_back_to_the_submitter_until_no_job_of_the_run_runs() -> None:
    stop = threading.Event()
    resend = Resend(stop)
    plan: dict[int, PlanItem] = {1: item("k1"), 2: item("k2"), 3: item("k3")}
    resend.sent("j1", plan)
    resend.regrouped("j1", [[1, 2], [3]])
    resend.ended("j1")
    assert [[i.obj.key for i in g] for g in resend.wait()] == [["k1", "k2"], ["k3"]]
    resend.regrouped("j2", [[9]])  # a job that ended before the submitter told of it
    resend.ended("j2")
    resend.sent("j2", {9: item("k9")})
    assert keys(resend.wait()) == [["k9"]]
    assert resend.wait() == []  # nothing runs: nothing more can come back
    resend.sent("j3", {4: item("k4")})
    stop.set()
    assert resend.wait() == []  # a stopped run sends nothing more


def test_the_report_counts_a_failed_jobs_objects_sent_again_as_leaving_it(where: Where) -> None:  # noqa: F811
    with open_ledger(where, clock=lambda: 100.0) as ledger:
        claims = ledger.begin_group([(item(k), 3, k) for k in ("k1", "k2", "k3")])
        rows = [c.row for c in claims if c is not None]
        assert ledger.record_job(rows, "job-7")
        ledger.job_failed(rows, "job-7", "broken", parts=[rows[:2], rows[2:]])  # the cause not known
        reached = {state: (n, jobs, with_job) for _b, state, n, jobs, with_job, _r in
                   ledger.report_timeline(0.0, 1000.0)}
        # the objects left their job (old code: no end at all, three objects in flight for ever)
        assert reached["failed"] == (3, 1, 3) and reached["submitted"] == (3, 1, 3)
        assert [(failed, jobs) for _k, failed, jobs, _s, _m in ledger.report_durations([10.0])] == [(True, 1)]
