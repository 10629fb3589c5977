"""A bad file never holds good companions (issue 25, part 1), end to end through the command line
against the fakes of the APIs that take several objects per job: one file the server always fails,
with a reason that does not name it, found by halving its job within one ``run --wait`` (or named by
the describe reply's per-file details: one extra job), only it spending failures; a kill -9 midway
converges without importing any object twice."""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakes.base import FakeImportAPI, Job
from tests.test_exactly_once import assert_exactly_once, invoke, rows, spawn
from tests.test_groups import GROUP_TARGETS

pytestmark = pytest.mark.parametrize("fake_api", GROUP_TARGETS, indirect=True)
BAD = "p17.parquet"  # in the second job of ten, and in neither end of its halves
REASON = "field 'vector' type mis-match: expected FloatVector"  # names a field, not a file


def forty_one_bad(put_objects: Callable[..., list[str]], fake: FakeImportAPI, *,
                  details_tell: bool) -> list[str]:
    """Forty objects in the bucket, one the server always fails with a reason that names no file (its
    describe ``details[]`` tell which, or not); the URLs of the 39 good ones."""
    fake.fail_objects = {BAD: REASON}
    fake.reason_names_file = False
    fake.file_details = "own" if details_tell else "job"
    urls = put_objects([f"embeddings/p{i:02}.parquet" for i in range(40)])
    return [u for u in urls if not u.endswith(BAD)]


def settled(manifest: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Each object's state and failures, by file name."""
    found = rows(manifest)
    return ({r.url.rsplit("/", 1)[1]: r.state.value for r in found},
            {r.url.rsplit("/", 1)[1]: r.failures for r in found})


def runs_until_settled(manifest: Path, *options: str, most: int) -> int:
    """Run until every object is completed or failed (at most ``most`` runs); how many it took."""
    for runs in range(1, most + 1):
        invoke("run", str(manifest), *options)
        if set(settled(manifest)[0].values()) == {"completed", "failed"}:
            return runs
    return most + 1


def assert_isolated(manifest: Path) -> None:
    states, failures = settled(manifest)
    assert states.pop(BAD) == "failed" and failures.pop(BAD) == 1  # it alone spends its budget
    assert set(states.values()) == {"completed"} and set(failures.values()) == {0}
    bad = next(r for r in rows(manifest) if r.url.endswith(BAD))
    assert bad.alone  # proven: sent alone from now on


def test_an_unnamed_bad_file_is_found_by_halving_within_one_run_wait(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    good = forty_one_bad(put_objects, fake_api, details_tell=False)
    manifest = write_manifest(settings={"objects_per_job": 10, "max_job_failures": 3, "concurrency": 2})
    result = invoke("run", str(manifest), "--wait", "--poll-interval", "0.05")
    assert result.exit_code == 1, result.output  # the bad file failed
    # old code: all ten objects of the bad file's job failed, each spending a failure
    assert_isolated(manifest)
    assert_exactly_once(fake_api, manifest, good)
    jobs = len(fake_api.creates())
    assert 4 + 2 <= jobs <= 4 + 2 * math.ceil(math.log2(10)), jobs  # two halves a level: 10, 5, 3, 2, 1
    again = invoke("run", str(manifest), "--wait", "--poll-interval", "0.05")
    assert len(fake_api.creates()) == jobs + 1  # the next run retries the bad file alone, nothing else
    assert "failed=1 " in again.stdout or "jobs_failed=1 " in again.stdout


def test_details_that_name_the_bad_file_cost_one_extra_job(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    good = forty_one_bad(put_objects, fake_api, details_tell=True)
    manifest = write_manifest(settings={"objects_per_job": 10, "max_job_failures": 3})
    result = invoke("run", str(manifest), "--wait", "--poll-interval", "0.05")
    assert result.exit_code == 1, result.output
    assert_isolated(manifest)
    assert_exactly_once(fake_api, manifest, good)
    assert len(fake_api.creates()) == 5  # the four jobs, and the nine good ones sent again together


def test_without_wait_the_halves_are_kept_for_the_next_runs(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    good = forty_one_bad(put_objects, fake_api, details_tell=False)
    # one failure allowed: the old code held all ten objects of the bad file's job after one run
    manifest = write_manifest(settings={"objects_per_job": 10, "max_job_failures": 1})
    invoke("run", str(manifest))
    invoke("status", str(manifest), "--refresh")  # the failure learnt: two halves wait in the ledger
    assert [line.split(" -> ")[1] for line in invoke("plan", str(manifest)).stdout.splitlines()
            if line.startswith("job ")] == [f"articles (part {n} of a failed job)" for n in (1, 2)]
    runs = 1 + runs_until_settled(manifest, most=8)  # each run learns the last one's failures, sends halves
    assert runs <= 1 + math.ceil(math.log2(10)) + 1, runs  # a run for each level of halves, one to learn
    assert_isolated(manifest)
    assert_exactly_once(fake_api, manifest, good)
    assert len(fake_api.creates()) <= 4 + 2 * math.ceil(math.log2(10))


def test_kill_9_while_halving_converges_without_importing_twice(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    good = forty_one_bad(put_objects, fake_api, details_tell=False)
    manifest = write_manifest(settings={"objects_per_job": 10, "max_job_failures": 3, "concurrency": 1})
    kills = 0
    for kill_at in (6, 8):  # a create of the halves: the job made, its reply never read
        proc = spawn("run", str(manifest), "--wait", "--poll-interval", "0.05")
        fired = threading.Event()

        def hook(_job: Job, proc: object = proc, at: int = kill_at, fired: threading.Event = fired) -> None:
            if not fired.is_set() and len(fake_api.creates()) >= at:
                fired.set()
                proc.send_signal(signal.SIGKILL)  # type: ignore[attr-defined]

        fake_api.before_reply = hook
        code = proc.wait(60)
        fake_api.before_reply = None
        assert code in (-signal.SIGKILL, 1)
        kills += code == -signal.SIGKILL
    assert kills >= 1
    assert runs_until_settled(manifest, "--wait", "--poll-interval", "0.05", most=3) <= 3
    assert_isolated(manifest)
    assert_exactly_once(fake_api, manifest, good)
