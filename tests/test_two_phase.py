"""Milvus two-phase import (reference section 9): MilvusTarget against FakeMilvus served in-process (its
own logic through ``fake.transport()``), then whole runs against it on a real socket.

A job created with ``auto_commit: "false"`` stops in Uncommitted with its rows invisible; commit makes
them visible once, abort drops them; a server without the feature (or refusing it) is detected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.errors import (
    FatalTargetError,
    JobNotFoundError,
    JobTerminalError,
    PermanentError,
    TransientError,
)
from orchestrator.models import ImportRequest, JobState, Secret
from orchestrator.run.wiring import make_target, manifest_ledger
from orchestrator.targets.milvus import MilvusTarget
from orchestrator.targets.zilliz_v1 import ZillizV1Target
from orchestrator.targets.zilliz_v2 import ZillizV2Target
from tests.conftest import Clock
from tests.fakes.milvus import FakeMilvus

KEY = "emb/a.parquet"


@pytest.fixture
def fake(clock: Clock) -> FakeMilvus:
    return FakeMilvus(clock=clock, complete_after=10.0)


@pytest.fixture
def target(fake: FakeMilvus) -> Iterator[MilvusTarget]:
    with httpx.Client(timeout=10, transport=fake.transport()) as client:
        yield MilvusTarget(client, base_url=fake.url, token=Secret(fake.api_key), db_name="default",
                           two_phase=True)


def create(target: MilvusTarget, key: str = KEY) -> str:
    return target.create(ImportRequest(object_url=key, collection="c", partition=None, credentials=None,
                                       idempotency_key=f"k-{key}"))


def url(fake: FakeMilvus, key: str = KEY) -> str:
    return f"s3://{fake.bucket}/{key}"


def test_rows_stay_invisible_until_commit_then_appear_once(fake: FakeMilvus, target: MilvusTarget,
                                                           clock: Clock) -> None:
    job_id = create(target)
    assert fake.creates()[0].body["options"] == {"auto_commit": "false"}  # a string, as Milvus wants
    assert target.progress(job_id).state is JobState.RUNNING and not target.two_phase_proven
    clock.now += 10.0
    info = target.progress(job_id)
    assert info.state is JobState.UNCOMMITTED and target.two_phase_proven
    assert [(j.job_id, j.state) for j in target.list_jobs()] == [(job_id, JobState.UNCOMMITTED)]
    clock.now += 3600.0
    assert fake.visible_rows(url(fake)) == 0  # imported, not visible: it waits for the commit
    target.commit(job_id)
    assert target.progress(job_id).state is JobState.COMPLETED
    assert fake.visible_rows(url(fake)) == 3
    sent = next(r for r in fake.received if r.path.endswith("/commit"))
    assert sent.body == {"jobId": job_id, "dbName": "default"}
    assert sent.headers["DB-Name"] == "default"


def test_commit_is_idempotent_while_committing_and_after(fake: FakeMilvus, target: MilvusTarget,
                                                         clock: Clock) -> None:
    fake.commit_after = 5.0
    job_id = create(target)
    clock.now += 10.0
    target.commit(job_id)
    assert target.progress(job_id).state is JobState.RUNNING  # Committing
    target.commit(job_id)  # the server refuses a second commit: done from here
    clock.now += 5.0
    target.commit(job_id)
    assert target.progress(job_id).state is JobState.COMPLETED
    assert fake.visible_rows(url(fake)) == 3
    assert len([r for r in fake.received if r.path.endswith("/commit")]) == 3


def test_abort_drops_the_rows_and_is_idempotent(fake: FakeMilvus, target: MilvusTarget, clock: Clock) -> None:
    job_id = create(target)
    clock.now += 10.0
    target.abort(job_id)
    info = target.progress(job_id)
    assert (info.state, info.reason) == (JobState.FAILED, "aborted")
    target.abort(job_id)  # already failed: done
    with pytest.raises(JobTerminalError) as failed:
        target.commit(job_id)
    assert failed.value.committed is False
    clock.now += 3600.0
    assert fake.visible_rows(url(fake)) == 0


def test_a_running_job_can_be_aborted(fake: FakeMilvus, target: MilvusTarget, clock: Clock) -> None:
    job_id = create(target)
    target.abort(job_id)
    clock.now += 10.0
    assert target.progress(job_id).state is JobState.FAILED and fake.visible_rows(url(fake)) == 0


def test_aborting_a_committed_job_is_refused_as_terminal(fake: FakeMilvus, target: MilvusTarget,
                                                         clock: Clock) -> None:
    job_id = create(target)
    clock.now += 10.0
    target.commit(job_id)
    with pytest.raises(JobTerminalError, match="Completed") as info:
        target.abort(job_id)
    assert info.value.committed is True and fake.visible_rows(url(fake)) == 3


def test_commit_too_early_is_transient_and_unknown_jobs_are_not_found(target: MilvusTarget) -> None:
    job_id = create(target)
    with pytest.raises(TransientError, match="still importing"):
        target.commit(job_id)
    with pytest.raises(JobNotFoundError):
        target.commit("448707763884499999")
    with pytest.raises(JobNotFoundError):
        target.abort("448707763884499999")
    with pytest.raises(PermanentError, match="no import API made it"):
        target.commit("bad id")


def test_a_server_without_two_phase_ignores_the_option(fake: FakeMilvus, target: MilvusTarget,
                                                       clock: Clock) -> None:
    fake.two_phase_supported = False
    job_id = create(target)
    clock.now += 10.0
    assert target.progress(job_id).state is JobState.COMPLETED  # committed by itself
    assert fake.visible_rows(url(fake)) == 3
    assert target.two_phase and not target.two_phase_proven  # the caller's cue: no Uncommitted was seen
    with pytest.raises(FatalTargetError, match="404"):
        target.commit(job_id)


def test_a_refused_option_falls_back_to_a_plain_create_once(fake: FakeMilvus, target: MilvusTarget,
                                                            clock: Clock) -> None:
    fake.refuse_two_phase = True
    first = create(target)
    assert not target.two_phase
    second = create(target, "emb/b.parquet")
    assert ["options" in r.body for r in fake.creates()] == [True, False, False]
    assert len(fake.all_jobs()) == 2 and first != second
    clock.now += 10.0
    assert target.progress(first).state is JobState.COMPLETED


def test_other_refusals_are_not_mistaken_for_the_option(fake: FakeMilvus, target: MilvusTarget) -> None:
    fake.refuse_objects = {"a.parquet": (100, "collection not found[collection=c]")}
    with pytest.raises(PermanentError, match="collection not found"):
        create(target)
    assert target.two_phase and len(fake.creates()) == 1


def test_the_fake_refuses_a_boolean_option_like_milvus(fake: FakeMilvus) -> None:
    with httpx.Client(transport=fake.transport()) as client:
        reply = client.post(f"{fake.url}/v2/vectordb/jobs/import/create", headers={
            "Authorization": f"Bearer {fake.api_key}"}, json={
            "collectionName": "c", "files": [[KEY]], "options": {"auto_commit": False}}).json()
    assert reply["code"] == 1100 and fake.all_jobs() == []


def test_without_two_phase_milvus_sends_no_options(fake: FakeMilvus) -> None:
    with httpx.Client(transport=fake.transport()) as client:
        plain = MilvusTarget(client, base_url=fake.url, token=Secret(fake.api_key))
        create(plain)
    assert "options" not in fake.creates()[0].body and not plain.two_phase


def test_targets_without_two_phase_say_so() -> None:
    with httpx.Client() as client:
        creds = {"base_url": "http://127.0.0.1:9", "cluster_id": "c", "api_key": Secret("k")}
        for target in (ZillizV1Target(client, **creds), ZillizV2Target(client, **creds)):
            assert target.two_phase is False
            with pytest.raises(PermanentError, match="no two-phase import"):
                target.commit("1")
            with pytest.raises(PermanentError, match="no two-phase import"):
                target.abort("1")


# -- whole runs: commit only what the ledger owns, abort the orphans of lost replies ----------------

def _run(manifest: object) -> object:
    from click.testing import CliRunner

    from orchestrator.cli.main import cli
    return CliRunner().invoke(cli, ["run", str(manifest)], catch_exceptions=False)


@pytest.mark.parametrize("fake_api", ["milvus"], indirect=True)
def test_runs_commit_a_job_only_once_the_ledger_holds_its_id(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
) -> None:
    urls = put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    fake_api.two_phase_manifest = True
    fake_api.faults = ["drop"]  # the first create's reply is lost: its job is adopted, then committed
    manifest = write_manifest()
    first = _run(manifest)
    assert first.exit_code == 0 and "adopted=1" in first.stdout, first.output  # type: ignore[attr-defined]
    assert all(j.committed_at is None for j in fake_api.jobs.values())  # nothing visible yet
    second = _run(manifest)  # refresh: both wait uncommitted, the ledger owns them: commit
    assert second.exit_code == 0, second.output  # type: ignore[attr-defined]
    assert all(j.committed_at is not None for j in fake_api.jobs.values())
    _run(manifest)
    assert [fake_api.visible_rows(u) for u in urls] == [3, 3]
    assert {r.state.value for r in _rows(manifest)} == {"completed"}


@pytest.mark.parametrize("fake_api", ["milvus"], indirect=True)
def test_once_two_phase_is_proven_a_lost_reply_is_resent_and_its_orphan_aborted(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
) -> None:
    from orchestrator import api

    urls = put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    fake_api.two_phase_manifest = True
    fake_api.faults = ["drop"]  # a's reply is lost, its job made
    fake_api.list_enabled = False  # and no list could tell: only two-phase makes sending again safe
    manifest = write_manifest(settings={"concurrency": 1})
    report = api.run(api.validate(manifest), target_factory=_proven)
    assert report.exit_code() == 0 and report.outcomes["submitted"] == 2
    assert len(fake_api.jobs_for(urls[0])) == 2  # the orphan waits uncommitted, never committed
    fake_api.list_enabled = True
    for _ in range(3):  # refresh commits what the ledger owns; the orphan is aborted
        assert _run(manifest).exit_code == 0  # type: ignore[attr-defined]
    orphan, owned = fake_api.jobs_for(urls[0])
    assert orphan.failed_at is not None and orphan.committed_at is None
    assert owned.committed_at is not None
    assert [fake_api.visible_rows(u) for u in urls] == [3, 3]


@pytest.mark.parametrize("fake_api", ["milvus"], indirect=True)
def test_the_orphan_of_a_lost_job_of_several_is_aborted_whole(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
) -> None:
    from orchestrator import api

    urls = put_objects([f"embeddings/p{i}.parquet" for i in range(5)])
    fake_api.two_phase_manifest = True
    fake_api.faults = ["drop"]  # the first job's reply is lost, the job of three made
    fake_api.list_enabled = False
    manifest = write_manifest(settings={"concurrency": 1, "objects_per_job": 3})
    report = api.run(api.validate(manifest), target_factory=_proven)
    assert report.exit_code() == 0 and report.outcomes["submitted"] == 5
    assert len(fake_api.creates()) == 3 and len(fake_api.jobs_for(urls[0])) == 2
    fake_api.list_enabled = True
    for _ in range(3):
        assert _run(manifest).exit_code == 0  # type: ignore[attr-defined]
    orphan, owned = fake_api.jobs_for(urls[0])
    assert orphan.object_urls == owned.object_urls and len(orphan.object_urls) == 3
    assert orphan.failed_at is not None and orphan.committed_at is None
    assert owned.committed_at is not None
    assert [fake_api.visible_rows(u) for u in urls] == [3] * 5


def _proven(manifest: Any, client: httpx.Client, read: Any) -> Any:
    """The target, as after a commit earlier in this process: two-phase import is proven."""
    target = make_target(manifest, client, read)
    target.two_phase_proven = True
    return target


def _rows(manifest: Path) -> list[Any]:
    from orchestrator import api
    with manifest_ledger(api.validate(manifest)) as ledger:
        return list(ledger.records())


@pytest.mark.parametrize("per_job", [1, 4])
@pytest.mark.parametrize("fake_api", ["milvus"], indirect=True)
def test_kill_9_with_two_phase_makes_each_objects_rows_visible_once(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
    per_job: int,
) -> None:
    import json
    import signal
    import threading

    from tests.test_exactly_once import invoke, spawn

    urls = put_objects([f"embeddings/p{i:02}.parquet" for i in range(20)])
    fake_api.two_phase_manifest = True
    fake_api.fault_rate = {"drop": 0.15}  # lost replies too: adopted, or resent once two-phase is proven
    manifest = write_manifest(settings={"concurrency": 2, "objects_per_job": per_job})
    fake_api.latency_s = 0.05
    for n, mode in enumerate(["in-window", "after-reply", "in-window"]):
        proc = spawn("run", str(manifest))
        fired = threading.Event()

        def hook(job: Any, proc: Any = proc, mode: str = mode, fired: threading.Event = fired) -> None:
            if fired.is_set():
                return
            fired.set()
            if mode == "in-window":
                proc.send_signal(signal.SIGKILL)  # the job exists; its id never reaches the ledger
            else:
                threading.Timer(0.01, proc.send_signal, (signal.SIGKILL,)).start()

        fake_api.before_reply = hook
        assert proc.wait(60) == -signal.SIGKILL, n
    fake_api.before_reply = None
    fake_api.fault_rate = {}
    for _ in range(4):  # commit what the ledger owns, abort the orphans
        final = spawn("run", str(manifest))
        final.communicate(timeout=60)
    status = json.loads(invoke("status", str(manifest), "--refresh", "--json").stdout)
    assert status["counts"] == {"completed": 20}, status["counts"]
    assert [fake_api.visible_rows(u) for u in urls] == [3] * 20
