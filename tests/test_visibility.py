"""A load that appears all at once (``settings.visibility: per_run``), through the command line against
the Milvus fake on a real socket: every job of a run waits uncommitted until all have imported, then all
are committed; a failure or a stop commits none; a run killed at any step is finished by the next one
from the ledger, each object's rows visible exactly once.

The fake runs on a clock the test moves (``Clock``): a job imports ``complete_after`` seconds of it
after its create, so which jobs have imported when a commit arrives is set by the test, not by timing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator import api
from orchestrator.models import ObjectState
from orchestrator.run.wiring import manifest_ledger
from tests.conftest import Clock, run_cli
from tests.fakes.base import Job
from tests.fakes.milvus import FakeMilvus

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
    fake.two_phase_manifest = True
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
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
    clock: Clock, visibility: str,
) -> None:
    urls = put_objects(_keys())
    _staggered(fake_api, clock)
    importing_at_commit: list[int] = []

    def committing(_job: Job) -> None:
        importing_at_commit.append(sum(fake_api.phase(j) == "running" for j in fake_api.all_jobs()))
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
