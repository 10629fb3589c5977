"""Real server limits: a bounded number of jobs, "full" replies, a backlog drained in one run, job
states learned from the job list, a fatal error while refreshing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator import api
from orchestrator.cli.main import cli
from orchestrator.config.manifest import Settings
from orchestrator.errors import MAX_RETRY_AFTER_S
from orchestrator.jobs.policy import SubmitPolicy
from orchestrator.jobs.refresh import refresh
from orchestrator.jobs.window import Window
from orchestrator.models import Action, ObjectState, PlanItem, Route, StoredObject
from orchestrator.redact import Redactor
from orchestrator.run.wiring import manifest_ledger
from tests.conftest import HTTP_TARGETS
from tests.fakes.base import FakeImportAPI

every_api = pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)
PAGED = pytest.mark.parametrize("fake_api", ["zilliz-v1", "zilliz-v2"], indirect=True)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def full_replies(fake: FakeImportAPI) -> int:
    """Create calls the fake refused as full (its replies are not recorded: count what it made)."""
    return len(fake.creates()) - len(fake.jobs)


@every_api
def test_wait_drains_a_backlog_through_a_server_that_holds_three_jobs(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects([f"embeddings/{i:02}.parquet" for i in range(12)])
    fake_api.max_jobs, fake_api.complete_after = 3, 0.3
    manifest = write_manifest(settings={"concurrency": 4})
    result = invoke("run", str(manifest), "--wait", "--poll-interval", "0.05")
    assert result.exit_code == 0, result.output
    assert "submitted=12" in result.stdout and "jobs_completed=12" in result.stdout
    assert all(len(fake_api.jobs_for(u)) == 1 for u in urls)
    # the first full reply narrows the window to what the server holds; after that, about one probe
    # per turn of the window: far fewer refused calls than objects
    assert full_replies(fake_api) <= 5, full_replies(fake_api)


@every_api
def test_without_wait_a_full_server_costs_a_call_or_so_and_the_rest_is_queued(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put_objects([f"embeddings/{i:02}.parquet" for i in range(10)])
    fake_api.max_jobs, fake_api.complete_after = 2, 3600
    manifest = write_manifest(settings={"concurrency": 1})
    result = invoke("run", str(manifest))
    assert result.exit_code == 0, result.output  # queued is not a failure: the next run goes on
    assert "submitted=2" in result.stdout and "queued=8" in result.stdout and "failed=0" in result.stdout
    assert len(fake_api.creates()) == 3  # two jobs, one "full" reply, then nothing more
    states = sorted(r.state.value for r in api_rows(manifest))
    assert states == ["pending", "submitted", "submitted"]  # the refused one waits, not failed
    again = invoke("run", str(manifest))  # the server is still full: one call finds out
    assert "queued=8" in again.stdout and len(fake_api.creates()) == 4


def test_a_window_setting_bounds_the_jobs_in_flight(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put_objects([f"embeddings/{i:02}.parquet" for i in range(6)])
    fake_api.complete_after = 3600
    manifest = write_manifest(settings={"max_jobs_in_flight": 4})
    first = invoke("run", str(manifest))
    assert "submitted=4" in first.stdout and "queued=2" in first.stdout and len(fake_api.creates()) == 4
    assert "submitted=0" in invoke("run", str(manifest)).stdout  # four still run: no room, no calls
    assert len(fake_api.creates()) == 4


def test_the_window_narrows_on_full_and_widens_after_a_full_turn() -> None:
    stop = threading.Event()
    window = Window(10, running=5, stop=stop)
    assert window.acquire(wait=False) and window.acquire(wait=False)  # two calls in flight
    window.full()  # refused: the server holds the five jobs of ours that run
    window.release(finished=False)
    window.release(finished=False)
    assert window.limit == 5 and not window.acquire(wait=False)

    def turn() -> None:  # each running job ends, and another takes its slot
        for _ in range(5):
            window.release(finished=True)
            assert window.acquire(wait=False)
            window.started()

    turn()
    assert window.limit == 6  # a turn without a full reply: one more
    window.full()  # the widening was refused: back to what runs, and two turns before the next try
    assert window.limit == 5
    turn()
    assert window.limit == 5
    turn()
    assert window.limit == 6
    window.close()
    assert not window.acquire(wait=False)


def api_rows(manifest: Path) -> list[Any]:
    with manifest_ledger(api.validate(manifest)) as ledger:
        return list(ledger.records())


def submitted_jobs(manifest: Path, fake: FakeImportAPI, n: int) -> list[str]:
    """``n`` objects recorded as submitted, each with a job on the fake."""
    m = api.validate(manifest)
    ids = []
    with manifest_ledger(m) as ledger:
        for i in range(n):
            url = f"s3://lake/emb/{i:03}.parquet"
            obj = StoredObject(url, "lake", f"emb/{i:03}.parquet", f"{i:03}.parquet", 1, "e", 0.0)
            claim = ledger.begin_submission(PlanItem(obj, 0, Action.SUBMIT, "new", Route("articles", None)))
            assert claim is not None
            job = fake.add_job(url, "articles")
            ledger.record_job(claim.row, job.job_id)
            ids.append(job.job_id)
    return ids


def progress_calls(fake: FakeImportAPI) -> int:
    return sum(1 for r in fake.received if "/get" in r.path or (r.path.endswith(
        ("/describe", "/get_progress", "/getProgress")) and "collections" not in r.path))


def list_calls(fake: FakeImportAPI) -> int:
    return sum(1 for r in fake.received if r.path.endswith("/list"))


@every_api
def test_refresh_learns_many_running_jobs_from_the_list(
    write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    fake_api.complete_after = 3600
    manifest = write_manifest()
    submitted_jobs(manifest, fake_api, 150)
    before = len(fake_api.received)
    status = invoke("status", str(manifest), "--refresh", "--json")
    assert status.exit_code == 0, status.output
    calls = len(fake_api.received) - before
    assert progress_calls(fake_api) == 0 and calls == list_calls(fake_api)
    assert calls <= 2  # 150 running jobs: two pages of 100 (Milvus: one unpaged list)
    with manifest_ledger(api.validate(manifest)) as ledger:
        assert len(ledger.job_progress([r.job_id or "" for r in ledger.records()])) == 150


@PAGED
def test_a_job_list_that_shifts_between_pages_misses_nobody(
    write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    fake_api.complete_after = 3600
    manifest = write_manifest()
    foreign = [fake_api.add_job(f"s3://other/{n}.parquet", "elsewhere") for n in range(5)]
    submitted_jobs(manifest, fake_api, 150)

    def forget_one() -> None:  # the server forgets an old job between two pages: the rest shift up
        if foreign:
            del fake_api.jobs[foreign.pop(0).job_id]

    fake_api.before_list = forget_one
    assert invoke("status", str(manifest), "--refresh").exit_code == 0
    assert progress_calls(fake_api) >= 1  # the job the shift hid was asked about on its own
    with manifest_ledger(api.validate(manifest)) as ledger:
        assert len(ledger.job_progress([r.job_id or "" for r in ledger.records()])) == 150


@every_api
def test_a_fatal_error_while_refreshing_stops_at_once(
    write_manifest: Callable[..., Path], fake_api: FakeImportAPI, monkeypatch: Any,
) -> None:
    manifest = write_manifest(settings={"concurrency": 4})
    submitted_jobs(manifest, fake_api, 3)  # below the list threshold: one progress call each
    for variable in ("ZILLIZ_API_KEY", "MILVUS_TOKEN"):
        monkeypatch.setenv(variable, "wrong-key-value-123")
    m = api.validate(manifest)
    before = len(fake_api.received)
    report = api.run(m)
    assert report.fatal is not None and report.exit_code() == 1
    assert len(fake_api.received) - before <= 4  # not every queued poll: at most those in flight


def test_refresh_by_list_is_one_call_for_many_jobs_with_no_server(tmp_path: Path) -> None:
    """The pure path: a target whose list shows every job running costs one list walk."""
    from orchestrator.ledger.factory import open_ledger
    from orchestrator.models import JobInfo, JobState

    calls: list[str] = []

    class Listing:
        two_phase = False
        list_page_size = 100

        def list_jobs(self) -> Any:
            calls.append("list")
            return iter(JobInfo(f"j{i}", JobState.RUNNING, progress=10.0) for i in range(40))

        def progress(self, job_id: str) -> JobInfo:
            calls.append(job_id)
            return JobInfo(job_id, JobState.RUNNING)

    with open_ledger(tmp_path / "l.sqlite") as ledger:
        for i in range(40):
            obj = StoredObject(f"s3://b/{i}", "b", str(i), str(i), 1, "e", 0.0)
            claim = ledger.begin_submission(PlanItem(obj, 0, Action.SUBMIT, "new", Route("c", None)))
            assert claim is not None
            ledger.record_job(claim.row, f"j{i}")
        counts = refresh(Listing(), ledger, ledger.records([ObjectState.SUBMITTED]),  # type: ignore[arg-type]
                         SubmitPolicy(settings=Settings(concurrency=4, max_attempts=1,
                                                       max_retry_after_s=MAX_RETRY_AFTER_S),
                                      list_lag_s=0.0, job_memory_s=float("inf")),
                         stop=threading.Event(), redact=Redactor([]))
    assert calls == ["list"] and counts["running"] == 40
