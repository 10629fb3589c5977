"""Several objects per job, piece by piece: which objects share a job (pure), how a job of several is
judged against interrupted calls (pure), and the ledger's group claims and transitions (SQLite and
PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from orchestrator.errors import ManifestError
from orchestrator.jobs.evidence import culprit, judge
from orchestrator.ledger.factory import open_ledger
from orchestrator.models import (
    Action,
    JobInfo,
    JobState,
    LedgerRecord,
    ObjectState,
    PlanItem,
    Route,
    StoredObject,
)
from orchestrator.run.grouping import batches
from orchestrator.run.wiring import load_manifest
from tests.test_ledger import Where, where  # noqa: F401  (the fixture, over both ledgers)


def item(key: str, *, size: int = 10, collection: str = "c", partition: str | None = None, source: int = 0,
         bucket: str = "b", alone: bool = False) -> PlanItem:
    o = StoredObject(url=f"s3://{bucket}/{key}", bucket=bucket, key=key, relative_key=key, size=size,
                     version="e1", modified=0.0)
    return PlanItem(o, source, Action.SUBMIT, "new object", Route(collection, partition), alone)


def keys(groups: list[list[PlanItem]]) -> list[list[str]]:
    return [[i.obj.key for i in g] for g in groups]


# -- which objects share a job -------------------------------------------------------------------

def test_groups_fill_in_listing_order_per_destination() -> None:
    items = [item("a1"), item("b1", collection="d"), item("a2"), item("a3"), item("b2", collection="d"),
             item("p1", partition="x"), item("a4"), item("s1", source=1)]
    # a full group goes at once; the rest when the listing ends, in the order of their first objects
    assert keys(list(batches(items, most=3))) == [["a1", "a2", "a3"], ["b1", "b2"], ["p1"], ["a4"], ["s1"]]
    assert keys(list(batches(items, most=1))) == [[i.obj.key] for i in items]


def test_a_group_closes_at_the_size_bound_and_a_huge_object_goes_alone() -> None:
    items = [item("a", size=40), item("b", size=40), item("c", size=40), item("huge", size=500),
             item("d", size=10)]
    assert keys(list(batches(items, most=10, max_bytes=100))) == [["a", "b"], ["c"], ["huge"], ["d"]]


def test_look_alikes_and_culprits_never_share_a_job() -> None:
    items = [item("a b.parquet"), item("a%20b.parquet"), item("c"), item("a b.parquet", bucket="other"),
             item("bad", alone=True), item("d")]
    groups = keys(list(batches(items, most=10)))
    assert ["bad"] in groups
    for group in groups:
        assert len([k for k in group if k in ("a b.parquet", "a%20b.parquet")]) <= 1
    assert sorted(k for g in groups for k in g) == sorted(i.obj.key for i in items)


def test_objects_per_job_is_refused_where_the_target_takes_one_file(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("version: 1\ntarget: {type: zilliz-v1, cluster_id: in01-x, api_key: '${K}', region: "
                    "gcp-us-west1}\ncredentials: {access_key: '${A}', secret_key: '${S}'}\nsources: "
                    "[{url: 's3://b/p/', collection: c}]\nsettings: {objects_per_job: 5}\n")
    with pytest.raises(ManifestError, match=r"settings\.objects_per_job: 5: a zilliz-v1 import job takes "
                                            r"at most 1 file"):
        load_manifest(path, environ={"K": "k", "A": "a", "S": "s"})


# -- judging a job of several --------------------------------------------------------------------

def record(n: int, key: str, *, batch: int | None) -> LedgerRecord:
    return LedgerRecord(f"s3://b/{key}", "e1", "s3://b/", "c", None, ObjectState.SUBMITTING, None, 1, 0, None,
                        10, 0.0, sent_as=f"s3://b/{key}", server_at=100.0, id=n, batch=batch)


def job(job_id: str, *files: str) -> JobInfo:
    return JobInfo(job_id, JobState.RUNNING, "c", file_names=tuple(f"b/{f}" for f in files))


def verdicts(rows: list[LedgerRecord], jobs: list[JobInfo], others: Sequence[LedgerRecord] = ()) -> list[str]:
    return [j.verdict.value for j in judge(rows, others, jobs, server_now=200.0, lag_s=0.0,
                                           memory_s=10_000.0)]


def test_a_job_is_adopted_only_for_exactly_its_call_s_files() -> None:
    call = [record(1, "k1", batch=1), record(2, "k2", batch=1), record(3, "k3", batch=1)]
    assert verdicts(call, [job("j", "k3", "k1", "k2")]) == ["adopt"] * 3
    judged = judge(call, [], [job("j", "k1", "k2", "k3")], server_now=200.0, lag_s=0, memory_s=1e4)
    assert {j.job.job_id for j in judged if j.job} == {"j"}
    assert verdicts(call, [job("j", "k1", "k2")]) == ["uncertain"] * 3  # part of the call
    assert verdicts(call, [job("j", "k1", "k2", "k3", "k4")]) == ["uncertain"] * 3  # more than the call
    assert verdicts(call, [job("j", "k1", "k1", "k2")]) == ["uncertain"] * 3  # a file twice, one missing
    assert verdicts(call, [job("x", "k9")]) == ["release"] * 3  # nothing names any of them: proven absent
    # one row asked about: its call's other rows (among ``others``) are weighed with it
    assert verdicts(call[:1], [job("j", "k1", "k2", "k3")], others=call[1:]) == ["adopt"]


def test_two_calls_a_job_could_belong_to_are_both_uncertain() -> None:
    one = [record(1, "k1", batch=1), record(2, "k2", batch=1)]
    alone = [record(3, "k1", batch=None)._replace(url="s3://c/k1", sent_as="s3://c/k1")]
    listed = JobInfo("j", JobState.RUNNING, "c", file_names=("k1", "k2"))  # named without their bucket
    assert verdicts(one + alone, [listed]) == ["uncertain"] * 3


def test_the_culprit_is_the_one_file_a_reason_names() -> None:
    rows = [record(1, "k1", batch=1), record(2, "k12", batch=1), record(3, "x/k3", batch=1)]
    assert culprit("failed to read b/x/k3: not parquet", rows) == rows[2]
    assert culprit("the collection was dropped", rows) is None
    assert culprit("b/k1 and b/x/k3 are broken", rows) is None  # two named: nobody is blamed
    assert culprit("failed to read b/x/k3", rows[2:]) is None  # a job of one has no culprit to isolate


# -- the ledger ----------------------------------------------------------------------------------

def test_a_group_is_claimed_recorded_and_settled_together(where: Where) -> None:  # noqa: F811
    with open_ledger(where, clock=lambda: 100.0) as ledger:
        taken = ledger.begin_submission(item("k2"))
        assert taken is not None
        claims = ledger.begin_group([(item(k), 3, k) for k in ("k1", "k2", "k3")], server_at=50.0)
        assert claims[1] is None and claims[0] is not None and claims[2] is not None
        first, third = ledger.row(claims[0].row), ledger.row(claims[2].row)
        assert first is not None and third is not None
        assert first.batch == third.batch == 1 and first.state is ObjectState.SUBMITTING
        assert [r.url for r in ledger.companions(first)] == ["s3://b/k3"]
        assert ledger.jobs_held() == 2  # the lone claim and the call of two
        assert ledger.record_job([first.id, third.id], "job-7")
        assert ledger.jobs_held() == 2 and ledger.job_sizes(["job-7"]) == {"job-7": 2}
        # the same id answered to another call: not recorded, that call becomes uncertain
        assert not ledger.record_job(taken.row, "job-7")
        assert ledger.row(taken.row).state is ObjectState.UNCERTAIN  # type: ignore[union-attr]
        ledger.job_failed([first.id, third.id], "job-7", "b/k3 is broken", culprit=third.id)
        after = [ledger.row(first.id), ledger.row(third.id)]
        assert [(r.state, r.failures, r.alone) for r in after if r] == [
            (ObjectState.FAILED, 1, False), (ObjectState.FAILED, 1, True)]
        assert after[0] is not None
        assert [r.url for r in ledger.companions(after[0])] == ["s3://b/k3"]  # by job id, once failed
        again = ledger.begin_group([(item("k1"), None, "k1")])
        assert again[0] is not None and ledger.row(again[0].row).batch is None  # type: ignore[union-attr]
        ledger.refuse(again[0].row, "busy", permanent=False)
        regrouped = ledger.begin_group([(item(k), None, k) for k in ("k1", "k9")])
        assert {ledger.row(c.row).batch for c in regrouped if c} == {2}  # type: ignore[union-attr]
        assert ledger.row(third.id).batch == 1  # type: ignore[union-attr]  # the old call's, never reused


def test_a_ledger_of_schema_3_gains_the_group_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "l.sqlite"
    with open_ledger(path) as ledger:
        claim = ledger.begin_submission(item("k1"))
        assert claim is not None
    db = sqlite3.connect(path)
    db.execute("DROP INDEX objects_batch")
    db.execute("ALTER TABLE objects DROP COLUMN batch")
    db.execute("ALTER TABLE objects DROP COLUMN alone")
    db.execute("UPDATE meta SET value='3' WHERE key='schema'")
    db.commit()
    db.close()
    with open_ledger(path) as ledger:
        rec = ledger.row(claim.row)
        assert rec is not None and rec.batch is None and rec.alone is False
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("5",)
    db.close()
