"""Every run ends and tells the truth: lost replies that hold the job window, jobs the server forgets
while a run waits, the first claims of a run, `uncertain` looked at again, `retry --uncertain`, and
two-phase orphans. Runs that could hang go through the CLI in a subprocess with a deadline."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator import api
from orchestrator.models import Action, ObjectState, PlanItem
from orchestrator.run.wiring import make_target, manifest_ledger, object_url
from tests.conftest import HTTP_TARGETS, cli_child
from tests.fakes.base import FakeImportAPI
from tests.fakes.milvus import FakeMilvus
from tests.test_exactly_once import invoke, rows

DEADLINE_S = 90  # a run that takes longer hangs: the test fails, the suite goes on


def cli(*args: str) -> tuple[int, str, str]:
    """The CLI in a subprocess, failed (and killed) past :data:`DEADLINE_S` (a hang)."""
    done = cli_child(*args, deadline_s=DEADLINE_S).finish()
    return done.returncode, done.stdout, done.stderr


def states(manifest: Path) -> dict[str, str]:
    return {r.url: r.state.value for r in rows(manifest)}


def claim(manifest: Path, *, server_at: float | None, only: Callable[[PlanItem], bool] = lambda i: True,
          uncertain: str | None = None, job_id: str | None = None) -> list[PlanItem]:
    """Leave the ledger as a run killed during its create calls would (``submitting``, at
    ``server_at`` on the server's clock, None: unknown); ``uncertain`` marks the rows so, as an older
    release did (after recording ``job_id``: a job the server forgot since)."""
    m = api.validate(manifest)
    items: list[PlanItem] = []
    api.plan(m, on_item=items.append)
    items = [i for i in items if i.action is Action.SUBMIT and only(i)]
    with httpx.Client() as client, manifest_ledger(m) as ledger:
        target = make_target(m, client)
        for item in items:
            made = ledger.begin_submission(item, sent_as=target.object_ref(item.obj, object_url(item, m)),
                                           server_at=server_at)
            assert made is not None
            if job_id is not None:
                assert ledger.record_job(made.row, job_id)
            if uncertain is not None:
                ledger.mark_uncertain(made.row, uncertain)
    return items


def server_now(fake: FakeImportAPI) -> float:
    """The fake's clock as its Date header says it (whole seconds)."""
    date = httpx.get(fake.url + "/nowhere").headers["date"]
    import email.utils
    return email.utils.parsedate_to_datetime(date).timestamp()


# -- 1. lost replies that hold the job window ---------------------------------------------------

@pytest.mark.parametrize("fake_api", ["zilliz-v1", "milvus"], indirect=True)
@pytest.mark.parametrize("narrowed", [False, True], ids=["max-jobs-in-flight", "full-reply"])
def test_lost_replies_that_hold_the_window_are_settled_while_the_run_goes_on(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    narrowed: bool,
) -> None:
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(5)])
    # the first two create replies are lost (their jobs exist, listed only after a lag); a third call
    # finds the window full: two slots of max_jobs_in_flight, or a server that answers "full"
    fake_api.list_lag_s = 0.5
    fake_api.faults = ["drop", "drop", "full"] if narrowed else ["drop", "drop"]
    settings: dict[str, Any] = {"concurrency": 1, "job_list_lag_s": 0.2}
    if not narrowed:
        settings["max_jobs_in_flight"] = 2
    manifest = write_manifest(settings=settings)
    code, out, err = cli("run", str(manifest), "--wait", "--poll-interval", "0.05")
    assert code == 0, err
    assert "adopted=2" in out and "submitted=3" in out and "jobs_completed=5" in out, out
    assert all(len(fake_api.jobs_for(u)) == 1 for u in urls)
    assert set(states(manifest).values()) == {"completed"}


# -- 2. a job the server forgets while the run waits --------------------------------------------

@pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)
def test_a_job_the_server_forgets_while_a_run_waits_ends_the_wait(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(2)])
    fake_api.job_memory_s = 0.0  # a job is forgotten the moment it ends: describe says "not found"
    manifest = write_manifest(settings={"concurrency": 1, "max_jobs_in_flight": 1})
    code, out, err = cli("run", str(manifest), "--wait", "--poll-interval", "0.05")
    assert code == 1, err
    assert "submitted=2" in out and "unsure=2" in out, out
    assert set(states(manifest).values()) == {"uncertain"}
    assert all(len(fake_api.jobs_for(u)) == 1 for u in urls)


# -- 3. the first claims of a run wait for the server's clock ------------------------------------

@pytest.mark.parametrize("fake_api", ["zilliz-v1"], indirect=True)
def test_claims_made_while_the_first_list_call_is_in_flight_get_a_server_time(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(8)])
    fake_api.fault_rate = {"drop": 1.0}  # every create reply is lost (each job exists)
    fake_api.list_lag_s = 0.5  # and shows in the list only after a while
    others = threading.Event()
    held = threading.Event()

    def hold_the_probe() -> None:  # the run's first list call answers once other threads claimed
        if not held.is_set():
            held.set()
            others.wait(5)  # on fixed code nobody claims before it answers: it goes on after 5 s

    def claimed(_: Any) -> None:
        others.set()

    fake_api.before_list, fake_api.before_reply = hold_the_probe, claimed
    # no pre-flight check: its reply would tell the server's clock before any claim
    manifest = write_manifest(settings={"concurrency": 4, "job_list_lag_s": 0.2, "max_attempts": 1,
                                        "preflight": "off"})
    code, out, err = cli("run", str(manifest))
    assert code == 0 and "adopted=8" in out, (out, err)  # each job found once the list shows it
    assert "uncertain" not in states(manifest).values(), (out, err)
    fake_api.fault_rate, fake_api.before_list, fake_api.before_reply = {}, None, None
    for _ in range(2):
        cli("run", str(manifest))
    assert set(states(manifest).values()) == {"completed"}, states(manifest)
    assert all(len(fake_api.jobs_for(u)) == 1 for u in urls)


# -- 4. `uncertain` is looked at again -----------------------------------------------------------

@pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)
def test_later_runs_settle_uncertain_objects_once_the_evidence_arrives(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    made, lost, forgotten = put_objects(["embeddings/made.parquet", "embeddings/lost.parquet",
                                         "embeddings/forgotten.parquet"])
    manifest = write_manifest()
    # held by an older release: a claim with no server time whose job exists; a claim whose call
    # never reached the server, 10 s ago by the server's clock; a job the server forgot
    claim(manifest, server_at=None, only=lambda i: i.obj.url == made, uncertain="a race happened")
    claim(manifest, server_at=server_now(fake_api) - 10, only=lambda i: i.obj.url == lost,
          uncertain="the job list lagged")
    claim(manifest, server_at=server_now(fake_api) - 10, only=lambda i: i.obj.url == forgotten,
          job_id="4242", uncertain="the server no longer knows job 4242")
    job = fake_api.add_job(made, "articles")
    first = invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    assert first.exit_code == 1 and "adopted=1" in first.stdout and "submitted=1" in first.stdout, \
        first.output
    assert "held=1" in first.stdout and "unsure=0" in first.stdout, first.output
    by_url = {r.url: r for r in rows(manifest)}
    assert by_url[made].job_id == job.job_id and by_url[made].state is ObjectState.COMPLETED
    assert by_url[lost].state is ObjectState.COMPLETED and len(fake_api.jobs_for(lost)) == 1
    assert by_url[forgotten].state is ObjectState.UNCERTAIN  # its job may have imported it
    assert [len(fake_api.jobs_for(u)) for u in (made, lost, forgotten)] == [1, 1, 0]


# -- 5. `retry --uncertain` looks at the job list first ------------------------------------------

@pytest.mark.parametrize("fake_api", ["zilliz-v1", "milvus"], indirect=True)
def test_retry_uncertain_adopts_a_proven_job_and_refuses_one_that_may_exist(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    made, doubtful = put_objects(["embeddings/made.parquet", "embeddings/doubtful.parquet"])
    manifest = write_manifest()
    claim(manifest, server_at=None, uncertain="check the collection")
    job = fake_api.add_job(made, "articles")
    other = fake_api.add_job(doubtful, "articles")  # two jobs name it: which one it made is unknown
    fake_api.add_job(doubtful, "articles")
    result = invoke("retry", str(manifest), "--uncertain")
    assert result.exit_code == 1, result.output
    assert f"adopted job {job.job_id}" in result.output and other.job_id in result.output
    assert "--force" in result.output
    assert states(manifest) == {made: "submitted", doubtful: "uncertain"}
    invoke("run", str(manifest))
    assert [len(fake_api.jobs_for(u)) for u in (made, doubtful)] == [1, 2]  # nothing imported twice
    forced = invoke("retry", str(manifest), "--uncertain", "--force")
    assert forced.exit_code == 0 and f"re-armed {doubtful}" in forced.output, forced.output
    assert states(manifest)[doubtful] == "pending"


def test_the_hold_message_no_longer_sends_people_straight_to_retry(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest()
    claim(manifest, server_at=None, uncertain="check the collection")
    out = invoke("plan", str(manifest), "-v").output
    assert "retry --uncertain" in out and "looks at the job list" in out, out


# -- 6. two-phase double orphans ------------------------------------------------------------------

@pytest.mark.parametrize("fake_api", ["milvus"], indirect=True)
def test_two_uncommitted_jobs_of_one_interrupted_claim_are_aborted_and_the_object_released(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
) -> None:
    urls = put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    fake_api.two_phase_manifest = True
    manifest = write_manifest()
    claim(manifest, server_at=server_now(fake_api) - 10)  # two lost replies each, then a kill
    orphans = [fake_api.add_job(u, "articles") for u in urls for _ in range(2)]
    for job in orphans:
        job.auto_commit = False
    for _ in range(3):  # abort and release; submit; commit
        cli("run", str(manifest))
    assert set(states(manifest).values()) == {"completed"}, states(manifest)
    assert all(j.failed_at is not None and j.committed_at is None for j in orphans)
    assert [fake_api.visible_rows(u) for u in urls] == [3, 3]


# -- 7. the summary counts the jobs the run finished, whatever the path -----------------------------

@pytest.mark.parametrize("fake_api", ["milvus"], indirect=True)
def test_a_wait_that_commits_earlier_two_phase_jobs_counts_them_completed(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
) -> None:
    put_objects([f"embeddings/{i}.parquet" for i in range(4)])
    fake_api.two_phase_manifest = True
    fake_api.commit_after = 0.3  # committing takes a while: the run sees the jobs end while it waits
    manifest = write_manifest()
    assert invoke("run", str(manifest)).exit_code == 0  # four jobs, uncommitted
    put_objects(["embeddings/new.parquet"])  # the run waits for its own job, committed after the four
    code, out, err = cli("run", str(manifest), "--wait", "--poll-interval", "0.05")
    assert code == 0 and "submitted=1" in out and "jobs_completed=5" in out, (out, err)
    assert set(states(manifest).values()) == {"completed"}


# -- 8. the culprit of a failed group is named by its whole file name ------------------------------

@pytest.mark.parametrize("fake_api", ["milvus"], indirect=True)
def test_a_reason_naming_a_longer_file_blames_only_the_file_it_names(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    bad, good = put_objects(["embeddings/bad.parquet", "embeddings/good.parquet"])
    fake_api.fail_objects = {"good.parquet": "a column of embeddings/bad.parquet.bak was copied here"}
    manifest = write_manifest(settings={"objects_per_job": 2})
    invoke("run", str(manifest))
    invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    alone = {r.url: r.alone for r in rows(manifest)}
    assert alone == {bad: False, good: True}


# -- 9. plan says what is true of a version whose import is unresolved ----------------------------

def test_plan_does_not_call_an_unresolved_import_imported(
    s3: Any, bucket: str, put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path],
    fake_api: FakeImportAPI,
) -> None:
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest(settings={"on_change": "skip"})
    claim(manifest, server_at=None)
    s3.put_object(Bucket=bucket, Key="embeddings/a.parquet", Body=b"another version")
    out = invoke("plan", str(manifest), "-v").output
    assert "since it was imported" not in out and "still `submitting`" in out, out


# -- 10. a lost reply resent once two-phase is proven, then a kill ---------------------------------

@pytest.mark.parametrize("fake_api", ["milvus"], indirect=True)
def test_a_kill_after_a_resent_two_phase_call_leaves_nothing_uncertain(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
) -> None:
    """What ended test_kill_9_with_two_phase_makes_each_objects_rows_visible_once[milvus-4] with 4
    objects `uncertain`: a run commits an earlier job (two-phase is proven), a create reply is lost
    and the call sent again (its orphan waits uncommitted), and the run is killed before the second
    reply is recorded: two uncommitted jobs name the claim's files."""
    first, second = put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    fake_api.two_phase_manifest = True
    manifest = write_manifest(settings={"objects_per_job": 4})
    api.run(api.validate(manifest), api.RunOptions(max_submissions=1))  # a's job, uncommitted
    fake_api.faults = ["drop"]
    proc = cli_child("run", str(manifest), deadline_s=DEADLINE_S)

    def kill(job: Any) -> None:  # the resent call's job exists; its id never reaches the ledger
        if len(fake_api.jobs_for(second)) == 2:
            proc.send_signal(signal.SIGKILL)

    fake_api.before_reply = kill
    proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == -signal.SIGKILL and len(fake_api.jobs_for(second)) == 2
    fake_api.before_reply = None
    for _ in range(3):
        cli("run", str(manifest))
    status = json.loads(invoke("status", str(manifest), "--refresh", "--json").stdout)
    assert status["counts"] == {"completed": 2}, status["counts"]
    assert [fake_api.visible_rows(u) for u in (first, second)] == [3, 3]
