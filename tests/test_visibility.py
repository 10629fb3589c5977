"""A load that appears all at once (``settings.visibility: per_run``), through the command line against
the Milvus fake on a real socket: every job of a run waits uncommitted until all have imported, then all
are committed; a failure or a stop commits none; a run killed at any step is finished by the next one
from the ledger, each object's rows visible exactly once.

The fake runs on a clock the test moves (``Clock``): a job imports ``complete_after`` seconds of it
after its create, so which jobs have imported when a commit arrives is set by the test, not by timing.
"""

from __future__ import annotations

import os
import select
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator import api
from orchestrator.ledger.factory import open_ledger
from orchestrator.ledger.loads import Load
from orchestrator.models import ObjectState
from orchestrator.run.wiring import manifest_ledger
from tests.conftest import Child, Clock, cli_child, run_cli
from tests.fakes.base import Job
from tests.fakes.milvus import FakeMilvus
from tests.test_ledger import Where, item, where  # noqa: F401  (the fixture, over both ledgers)

MILVUS = pytest.mark.parametrize("fake_api", ["milvus"], indirect=True)
N = 6  # objects, one job each
IMPORT_S = 10.0  # seconds of the fake's clock a job imports for


def _keys(n: int = N) -> list[str]:
    return [f"embeddings/p{i}.parquet" for i in range(n)]


def _staggered(fake: FakeMilvus, clock: Clock, n: int = N) -> None:
    """Jobs import one after another: each create moves the fake's clock on by :data:`IMPORT_S` (the
    jobs made before have imported), except the last, which has imported only once a poll after every
    create listed the jobs twice: a run that commits a job as soon as it has imported does so while
    the last one is still importing."""
    fake.clock = clock
    fake.complete_after = IMPORT_S
    lists = [0]

    def created(_job: Job) -> None:
        if len(fake.jobs) < n:
            clock.now += IMPORT_S

    def listing() -> None:
        if len(fake.jobs) >= n:
            lists[0] += 1
            if lists[0] == 2:
                clock.now += IMPORT_S

    fake.before_reply = created
    fake.before_list = listing


@pytest.fixture
def urls(put_objects: Callable[..., list[str]], fake_api: FakeMilvus) -> list[str]:
    """The objects of a load, and a manifest target that asks for two-phase import."""
    fake_api.two_phase_manifest = True
    return put_objects(_keys())


def _run(manifest: Path, *args: str, code: int | None = 0) -> Any:
    done = run_cli("run", str(manifest), "--poll-interval", "0.02", *args)
    assert code is None or done.returncode == code, done.stdout + done.stderr
    return done


def _rows(manifest: Path) -> list[Any]:
    with manifest_ledger(api.validate(manifest)) as ledger:
        return list(ledger.records())


def _commits(fake: FakeMilvus) -> list[str]:
    return [str(r.body["jobId"]) for r in fake.received if r.path.endswith("/commit")]


def _visible_once(fake: FakeMilvus, urls: list[str]) -> None:
    """Each object's rows are visible exactly once, and every job that was not committed stays so."""
    assert [fake.visible_rows(u) for u in urls] == [3] * len(urls)
    for url in urls:
        assert len([j for j in fake.jobs_for(url) if j.committed_at is not None]) == 1, url


@MILVUS
@pytest.mark.parametrize("visibility", ["per_run", "per_job"])
def test_no_job_is_committed_before_the_last_one_imported(
    urls: list[str], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
    clock: Clock, visibility: str,
) -> None:
    _staggered(fake_api, clock)
    importing_at_commit: list[int] = []

    def committing(_job: Job) -> None:
        imported = sum(fake_api.phase(j) != "running" for j in fake_api.all_jobs())
        importing_at_commit.append(N - imported)  # jobs still importing, or not yet made
        clock.now += IMPORT_S  # per_job: the last job imports (per_run: it has already)

    fake_api.before_commit = committing
    manifest = write_manifest(settings={"concurrency": 1, "visibility": visibility})
    _run(manifest, *(["--wait"] if visibility == "per_job" else []))  # per_run waits without it
    assert len(importing_at_commit) == N
    if visibility == "per_job":  # what per_run changes: a job appears as soon as it has imported
        assert importing_at_commit[0] >= 1
        return
    assert importing_at_commit == [0] * N  # the first commit came after the last job had imported
    _visible_once(fake_api, urls)
    assert {r.state for r in _rows(manifest)} == {ObjectState.COMPLETED}
    assert all(r.load_id == 1 for r in _rows(manifest))


@MILVUS
def test_a_job_that_fails_leaves_nothing_visible_and_the_rest_pending(
    urls: list[str], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
) -> None:
    fake_api.honour_idempotency = True  # a key sent again would answer its aborted job
    fake_api.fail_objects = {"p3": "field vector: dimension mismatch"}
    manifest = write_manifest(settings={"concurrency": 1, "visibility": "per_run"})
    done = _run(manifest, code=1)
    assert "jobs_failed=1" in done.stdout
    assert _commits(fake_api) == [] and [fake_api.visible_rows(u) for u in urls] == [0] * N
    for job in fake_api.all_jobs():  # the failed one failed; every other was aborted uncommitted
        assert job.fail_reason == ("field vector: dimension mismatch" if "p3" in job.object_url
                                   else "aborted"), job
    states = {r.url: (r.state, r.failures) for r in _rows(manifest)}
    assert states.pop(urls[3]) == (ObjectState.FAILED, 1)  # it spent a failure; the others did not
    assert set(states.values()) <= {(ObjectState.PENDING, 0)}  # withdrawn, or never sent
    with manifest_ledger(api.validate(manifest)) as ledger:
        assert ledger.open_loads() == []
    fake_api.fail_objects = {}
    _run(manifest)  # the next run sends them all again, with new keys, and commits the load
    _visible_once(fake_api, urls)
    assert {r.state for r in _rows(manifest)} == {ObjectState.COMPLETED}


def _kill_then_rerun(manifest: Path, fake: FakeMilvus,
                     arm: Callable[[Callable[[], None]], None]) -> list[Any]:
    """A run killed (SIGKILL) where ``arm`` places the kill (it gets the function that kills and waits
    for the end), the loads it left in the ledger, then a run to the end."""
    child: list[Child] = []
    fired = threading.Event()

    def kill() -> None:  # in the fake's thread: waits for the end without reading the child's streams
        if not fired.is_set():
            fired.set()
            ended = os.pidfd_open(child[0].pid)
            try:
                child[0].send_signal(signal.SIGKILL)
                assert select.select([ended], [], [], 30)[0], "the run outlived kill -9"
            finally:
                os.close(ended)

    arm(kill)
    child.append(cli_child("run", str(manifest), "--poll-interval", "0.02"))
    assert child[0].wait(60) == -signal.SIGKILL and fired.is_set()
    fake.before_reply = fake.before_list = fake.before_commit = None
    with manifest_ledger(api.validate(manifest)) as ledger:
        left = ledger.open_loads()
    _run(manifest)
    with manifest_ledger(api.validate(manifest)) as ledger:
        assert ledger.open_loads() == []
    return left


def _all_imported(fake: FakeMilvus) -> bool:
    jobs = fake.all_jobs()
    return len(jobs) == N and all(fake.phase(j) == "uncommitted" for j in jobs)


@MILVUS
@pytest.mark.parametrize("step", ["a create's reply", "all imported", "the first commit", "3 of 6 commits"])
def test_a_run_killed_at_any_step_is_finished_by_the_next(
    urls: list[str], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
    step: str,
) -> None:
    fake_api.honour_idempotency = True
    manifest = write_manifest(settings={"concurrency": 1, "visibility": "per_run"})
    commits = [0]

    def arm(kill: Callable[[], None]) -> None:
        def at_create(_job: Job) -> None:
            if len(fake_api.jobs) == N:
                kill()  # the last job is made, its id never reaches the ledger

        def at_list() -> None:
            if _all_imported(fake_api):
                kill()  # every job imported, the run polling: no decision yet

        def at_commit(_job: Job) -> bool:
            commits[0] += 1
            if commits[0] <= (3 if step.startswith("3") else 0):
                return True
            kill()  # the decision is on disk; this commit never reaches the server
            return False

        if step == "a create's reply":
            fake_api.before_reply = at_create
        elif step == "all imported":
            fake_api.before_list = at_list
        else:
            fake_api.before_commit = at_commit

    left = _kill_then_rerun(manifest, fake_api, arm)
    decided = "commit" in step
    assert [load.decided for load in left] == [decided]
    first = sorted(fake_api.all_jobs(), key=lambda j: int(j.job_id))[:N]
    if decided:  # committed by the next run, none sent again
        assert len(fake_api.creates()) == N and all(j.committed_at is not None for j in first)
    else:  # aborted, never committed, and sent again
        assert all(j.fail_reason == "aborted" and j.committed_at is None for j in first)
        assert len(fake_api.creates()) == 2 * N
    _visible_once(fake_api, urls)
    assert {r.state for r in _rows(manifest)} == {ObjectState.COMPLETED}


@MILVUS
def test_a_stopped_run_commits_nothing_and_releases_everything(
    urls: list[str], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
) -> None:
    manifest = write_manifest(settings={"concurrency": 1, "visibility": "per_run"})
    child: list[Child] = []
    fired = threading.Event()

    def at_list() -> None:
        if _all_imported(fake_api) and not fired.is_set():
            fired.set()
            child[0].send_signal(signal.SIGTERM)

    fake_api.before_list = at_list
    child.append(cli_child("run", str(manifest), "--poll-interval", "0.02"))
    done = child[0].finish()
    assert done.returncode == 128 + signal.SIGTERM and fired.is_set(), done.stdout + done.stderr
    assert _commits(fake_api) == [] and all(j.fail_reason == "aborted" for j in fake_api.all_jobs())
    assert {(r.state, r.failures) for r in _rows(manifest)} == {(ObjectState.PENDING, 0)}
    assert [fake_api.visible_rows(u) for u in urls] == [0] * N


@MILVUS
@pytest.mark.parametrize("per_job", [1, 3])
def test_a_lost_commit_reply_is_committed_once(
    urls: list[str], write_manifest: Callable[..., Path], fake_api: FakeMilvus, per_job: int,
) -> None:
    fake_api.drop_commit_replies = 2  # committed, and the reply lost
    _run(write_manifest(settings={"visibility": "per_run", "objects_per_job": per_job}))
    _visible_once(fake_api, urls)
    assert len(fake_api.all_jobs()) == N // per_job


@MILVUS
def test_a_committing_job_the_server_times_out_is_reported_failed(
    urls: list[str], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
    clock: Clock,
) -> None:
    fake_api.clock = clock
    fake_api.commit_after = 10.0
    fake_api.committing_times_out = True  # milvus-io/milvus 53315: a timeout rolled back a Committing job

    def at_commit(_job: Job) -> None:
        if len(_commits(fake_api)) == N:  # the last job is committed past its timeout
            clock.now += 61

    fake_api.before_commit = at_commit
    manifest = write_manifest(settings={"concurrency": 1, "visibility": "per_run", "job_timeout_s": 60})
    done = _run(manifest, code=1)
    assert "jobs_failed=1" in done.stdout and "import timeout" in done.stderr
    rows = {r.url: r for r in _rows(manifest)}
    last = max(fake_api.all_jobs(), key=lambda j: int(j.job_id)).object_url
    assert rows[last].state is ObjectState.FAILED and "import timeout" in (rows[last].error or "")
    assert {r.state for u, r in rows.items() if u != last} == {ObjectState.COMPLETED}
    assert [fake_api.visible_rows(u) for u in urls].count(3) == N - 1


@MILVUS
def test_objects_max_submissions_leaves_are_not_part_of_the_load(
    urls: list[str], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
) -> None:
    manifest = write_manifest(settings={"visibility": "per_run"})
    done = _run(manifest, "--max-submissions", "4")
    assert "left=2" in done.stdout
    assert sorted(fake_api.visible_rows(u) for u in urls) == [0, 0, 3, 3, 3, 3]
    assert len(_commits(fake_api)) == 4


@pytest.mark.parametrize(("fake_api", "target", "why"), [
    ("zilliz-v2", {}, "which a zilliz-v2 target cannot do"),
    ("milvus", {"two_phase": False}, "which target.two_phase: false turns off"),
], indirect=["fake_api"])
def test_validate_refuses_per_run_without_two_phase_import(
    write_manifest: Callable[..., Path], target: dict[str, Any], why: str,
) -> None:
    done = run_cli("validate", str(write_manifest(settings={"visibility": "per_run"}, target=target)))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "settings.visibility: per_run needs two-phase import" in line and why in line, line


@MILVUS
def test_a_server_that_refuses_two_phase_import_stops_the_load(
    urls: list[str], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
) -> None:
    fake_api.refuse_two_phase = True  # one plain create follows the refusal: that job commits itself
    done = _run(write_manifest(settings={"concurrency": 1, "visibility": "per_run"}), code=1)
    assert "the server refused two-phase import" in done.stderr
    assert "queued=5" in done.stdout  # nothing was sent after the refusal
    assert len(fake_api.all_jobs()) == 1 and sorted(fake_api.visible_rows(u) for u in urls) == [0] * 5 + [3]


@MILVUS
def test_a_fatal_error_while_committing_aborts_nothing_and_the_next_run_commits_the_rest(
    urls: list[str], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
) -> None:
    key = fake_api.api_key

    def at_commit(_job: Job) -> bool | None:
        if len(_commits(fake_api)) < 3:
            return None
        fake_api.api_key = "revoked"  # every call from here is refused: the run stops, decided
        return False

    fake_api.before_commit = at_commit
    manifest = write_manifest(settings={"concurrency": 1, "visibility": "per_run"})
    _run(manifest, code=1)
    assert not [r for r in fake_api.received if r.path.endswith("/abort")]  # a decided load is not abandoned
    fake_api.api_key, fake_api.before_commit = key, None
    _run(manifest)
    _visible_once(fake_api, urls)
    assert len(fake_api.creates()) == N


def test_a_load_in_the_ledger_from_its_opening_to_its_end(where: Where) -> None:  # noqa: F811
    with open_ledger(where, owner="milvus http://m") as ledger:
        load_id = ledger.open_load()
        claims = ledger.begin_group([(item(n), None, f"k{n}") for n in (1, 2)], load_id=load_id)
        rows = [c.row for c in claims if c is not None]
        ledger.record_job(rows, "job-1")
        assert ledger.open_loads() == [Load(load_id, False)] and ledger.decided_loads() == set()
        assert not ledger.end_load(load_id)  # its rows wait on a job
        ledger.decide_load(load_id)
        assert ledger.open_loads() == [Load(load_id, True)] and ledger.decided_loads() == {load_id}
        ledger.withdraw(rows[:1], "job-1", "aborted")
        ledger.complete_job("job-1", {rows[1]: 3})
        assert [(r.state, r.key_gen, r.failures) for r in ledger.load_rows(load_id)] == [
            (ObjectState.PENDING, 1, 0), (ObjectState.COMPLETED, 0, 0)]  # a fresh key, no failure
        assert ledger.end_load(load_id) and ledger.open_loads() == []
        again = ledger.begin_group([(item(1), None, "k1")])  # sent again outside any load
        assert again[0] is not None and ledger.row(again[0].row).load_id is None  # type: ignore[union-attr]
        assert ledger.open_load() == load_id + 1


@MILVUS
def test_a_bad_file_in_a_job_of_several_holds_the_load_only_until_it_is_held(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
) -> None:
    """per_run with several objects per job: a job failed by one bad file aborts the whole load (all or
    nothing), the bad file alone spends its failures (halving finds it), and once it is held the next
    load commits every good object, each visible exactly once."""
    fake_api.two_phase_manifest = True
    fake_api.fail_objects = {"p5.parquet": "field 'vector' type mis-match"}
    fake_api.reason_names_file = False
    fake_api.file_details = "job"  # nothing names it: found by halving
    urls = put_objects(_keys(8))
    good = [u for u in urls if not u.endswith("p5.parquet")]
    manifest = write_manifest(settings={"visibility": "per_run", "objects_per_job": 4,
                                        "max_job_failures": 2})
    runs, states = 0, {}
    while runs < 8 and not all(states.get(u) is ObjectState.COMPLETED for u in good):
        _run(manifest, code=None)
        runs += 1
        states = {r.url: r.state for r in _rows(manifest)}
    assert runs <= 1 + 2 + 2, runs  # a halving a run (4, 2, 1), then its failures (measured: 3 runs)
    bad = next(r for r in _rows(manifest) if r.url.endswith("p5.parquet"))
    assert (bad.state, bad.failures) == (ObjectState.FAILED, 2)
    assert all(states.get(u) is ObjectState.COMPLETED for u in good), states
    assert {r.failures for r in _rows(manifest) if r.url in good} == {0}
    _visible_once(fake_api, good)
