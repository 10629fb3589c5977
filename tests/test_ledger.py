"""Ledger transitions: named, transactional, and refusing impossible moves; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.api import ledger_location
from orchestrator.config.pgurl import PostgresLedger
from orchestrator.errors import LedgerError
from orchestrator.ledger.factory import open_ledger
from orchestrator.models import Action, ObjectState, PlanItem, Route, StoredObject
from tests.conftest import LEDGERS, fresh_schema

Where = Path | PostgresLedger


@pytest.fixture(params=LEDGERS)
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    """A new ledger: a SQLite file, or a schema of its own on the tests' PostgreSQL server."""
    if request.param == "sqlite":
        return tmp_path / "l.sqlite"
    return ledger_location(fresh_schema(request.getfixturevalue("pg_server")))


def item(n: int = 1, version: str = "e1") -> PlanItem:
    o = StoredObject(url=f"s3://b/k{n}", bucket="b", key=f"k{n}", relative_key=f"k{n}", size=5,
                     version=version, modified=0.0)
    return PlanItem(o, 0, Action.SUBMIT, "new object", Route("c", None))


def test_happy_path_and_history(where: Where) -> None:
    with open_ledger(where, clock=lambda: 100.0) as ledger:
        claim = ledger.begin_submission(item())
        assert claim is not None and claim.failures == 0
        ledger.record_job(claim.row, "job-1")
        ledger.complete(claim.row, "job-1")
        rec = ledger.get("s3://b/k1", "e1")
        assert rec is not None
        assert (rec.state, rec.job_id, rec.attempts) == (ObjectState.COMPLETED, "job-1", 1)
        states = [e[2] for e in ledger.events("s3://b/k1")]
        assert states == ["submitting", "submitted", "completed"]
        assert ledger.counts() == {"completed": 1}
        assert ledger.known_job_ids(["job-1", "job-2"]) == {"job-1"}


def test_impossible_moves_are_refused(where: Where) -> None:
    with open_ledger(where) as ledger:
        with pytest.raises(LedgerError, match="cannot move to submitted from no row"):
            ledger.record_job(1, "job-1")
        claim = ledger.begin_submission(item())
        assert claim is not None
        ledger.record_job(claim.row, "job-1")
        ledger.complete(claim.row, "job-1")
        with pytest.raises(LedgerError, match="cannot move to completed from completed"):
            ledger.complete(claim.row, "job-1")
        # an object that has (or may have) a job is never taken again
        assert ledger.begin_submission(item()) is None


def test_failures_count_and_rearm(where: Where) -> None:
    with open_ledger(where) as ledger:
        for n in (1, 2):
            claim = ledger.begin_submission(item(n))
            assert claim is not None
            ledger.refuse(claim.row, "code 90001: no collection", permanent=True)
        assert ledger.get("s3://b/k1", "e1").failures == 1  # type: ignore[union-attr]
        assert ledger.rearm(match=lambda url: url == "s3://b/k2") == ["s3://b/k2"]
        assert ledger.get("s3://b/k2", "e1").state is ObjectState.PENDING  # type: ignore[union-attr]
        assert ledger.get("s3://b/k1", "e1").state is ObjectState.FAILED  # type: ignore[union-attr]


def test_history_is_batched_and_keeps_every_version(where: Where) -> None:
    with open_ledger(where) as ledger:
        for i in [item(n) for n in range(1200)] + [item(1, version="e2")]:
            ledger.begin_submission(i)
        history = ledger.history([f"s3://b/k{n}" for n in range(1200)])
        assert len(history) == 1200
        assert [r.version for r in history["s3://b/k1"]] == ["e1", "e2"]
        assert sum(1 for _ in ledger.records([ObjectState.SUBMITTING])) == 1201


def test_past_imports_are_the_history_the_planner_reads(where: Where) -> None:
    """Every row for each URL, oldest first, across chunks of 500, with the fields that decide."""
    with open_ledger(where) as ledger:
        for i in [item(n) for n in range(1200)] + [item(1, version="e2"), item(7, version="e0")]:
            ledger.begin_submission(i)
        done = ledger.begin_submission(item(2, version="e2"))
        refused = ledger.begin_submission(item(3, version="e2"))
        assert done is not None and refused is not None
        ledger.record_job(done.row, "job-2")
        ledger.complete(done.row, "job-2")
        ledger.refuse(refused.row, "code 90001: no collection", permanent=True)
        urls = [f"s3://b/k{n}" for n in range(1201)]  # k1200 was never submitted
        past = ledger.past_imports(urls)
        history = ledger.history(urls)
        assert set(past) == set(history) and len(past) == 1200 and "s3://b/k1200" not in past
        fields = ("version", "target", "collection", "partition", "state", "job_id", "failures", "error",
                  "alone", "part")
        for url, records in history.items():
            assert [tuple(getattr(r, f) for f in fields) for r in records] == [tuple(p) for p in past[url]]
        assert [p.version for p in past["s3://b/k7"]] == ["e1", "e0"]  # oldest first, not by version
        assert past["s3://b/k2"][1][4:7] == (ObjectState.COMPLETED, "job-2", 0)
        assert (past["s3://b/k3"][1].error, past["s3://b/k3"][1].failures) == ("code 90001: no collection", 1)


def test_a_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE things (x)")
    with pytest.raises(LedgerError, match="not an orchestrator ledger"):
        open_ledger(path)
    (tmp_path / "junk.sqlite").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(LedgerError, match="not a usable ledger"):
        open_ledger(tmp_path / "junk.sqlite")


def test_failed_objects_can_be_taken_again_and_keep_their_failures(where: Where) -> None:
    with open_ledger(where) as ledger:
        claim = ledger.begin_submission(item())
        assert claim is not None
        ledger.refuse(claim.row, "code 90001", permanent=True)
        again = ledger.begin_submission(item())
        assert again is not None and (again.row, again.failures, again.key_gen) == (claim.row, 1, 1)
        rec = ledger.get("s3://b/k1", "e1")
        assert rec is not None and (rec.state, rec.attempts) == (ObjectState.SUBMITTING, 2)


def test_concurrent_transitions_all_commit_and_an_impossible_one_fails_alone(where: Where) -> None:
    import threading

    errors: list[str] = []
    with open_ledger(where) as ledger:
        def work(worker: int) -> None:
            for n in range(worker * 40, worker * 40 + 40):
                claim = ledger.begin_submission(item(n))
                assert claim is not None
                ledger.record_job(claim.row, f"job-{n}")
                try:  # an impossible move, in the middle of other threads' batches
                    ledger.complete(100_000 + n, "job-x")
                except LedgerError as exc:
                    errors.append(str(exc))

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        records = list(ledger.records())
        assert len(records) == 320 and len(errors) == 320
        assert all(r.state is ObjectState.SUBMITTED and r.job_id == "job-" + r.url[8:] for r in records)
        assert all("cannot move to completed from no row" in e for e in errors)
    with open_ledger(where) as reopened:  # everything reported done is on disk
        assert reopened.counts() == {"submitted": 320}


def test_unfinished_rows_are_those_a_rerun_would_submit_or_retry(where: Where) -> None:
    """Of one source and the owner's target: pending, and failed below the limit; the newest row of a
    URL only; ``since``: those changed since then."""
    now = [100.0]
    with open_ledger(where, clock=lambda: now[0], owner="t", sources=["s3://b/", "s3://other/"]) as ledger:
        def refused(i: PlanItem, times: int = 1, *, permanent: bool = True) -> None:
            for _ in range(times):
                claim = ledger.begin_submission(i)
                assert claim is not None
                ledger.refuse(claim.row, "no", permanent=permanent)

        refused(item(1), permanent=False)  # pending (deferred)
        refused(item(2), 2)  # failed twice: below 3
        refused(item(3), 3)  # failed three times: held
        refused(item(4))  # an older version, then a newer one completed
        newer = ledger.begin_submission(item(4, version="e2"))
        assert newer is not None
        ledger.record_job(newer.row, "job-4")
        ledger.complete(newer.row, "job-4")
        refused(item(5)._replace(source=1))  # another source
        with open_ledger(where, owner="u", sources=["s3://b/"]) as other:  # another target
            claim = other.begin_submission(item(6))
            assert claim is not None
            other.refuse(claim.row, "no", permanent=True)
            assert [r.url for r in other.unfinished("s3://b/", 3)] == ["s3://b/k6"]
        now[0] = 200.0
        refused(item(7))
        assert [r.url for r in ledger.unfinished("s3://b/", 3)] == ["s3://b/k1", "s3://b/k2", "s3://b/k7"]
        assert [r.url for r in ledger.unfinished("s3://b/", 3, since=150.0)] == ["s3://b/k7"]
        assert [r.url for r in ledger.unfinished("s3://other/", 3)] == ["s3://b/k5"]
