"""Every run ends, and says how: a slow-loris server cannot hold a call past ``timeout_s``, a first
signal ends a run whose reply is held, ``run --deadline`` stops a run (exit 124) with its summary, and
a Ctrl-C while Python loads the modules is one line and exit 130. Each run is a real CLI subprocess
with a deadline of its own (``tests.conftest.Child``): a hang fails the test, never the suite."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import HTTP_TARGETS, Child, cli_child, run_cli
from tests.fakes.base import FakeImportAPI, Job
from tests.test_exactly_once import assert_exactly_once, rows

DEADLINE_S = 60.0  # for each run here: the old code held these runs for hours


@pytest.fixture
def held(fake_api: FakeImportAPI) -> Iterator[threading.Event]:
    """Set it to let the replies held by :func:`hold_replies` go (done at the end of the test)."""
    release = threading.Event()
    yield release
    release.set()
    fake_api.before_reply = None


def hold_replies(fake: FakeImportAPI, release: threading.Event,
                 then: Callable[[], None] = lambda: None) -> None:
    """Every create call makes its job, and its reply is held until ``release``; ``then`` runs once,
    when the first job is made."""
    first = threading.Event()

    def hook(_job: Job) -> None:
        if not first.is_set():
            first.set()
            then()
        release.wait()

    fake.before_reply = hook


@pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)
@pytest.mark.parametrize("fault", ["loris-header", "loris-body"])
def test_a_slow_loris_reply_is_cut_at_timeout_s_and_its_job_adopted(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    fault: str,
) -> None:
    """The headers (or the body) of the create call's reply come one byte every 50 ms, for hours: each
    read is quick, so a per-read timeout never fires. The whole call is bounded by timeout_s."""
    urls = put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    manifest = write_manifest(settings={"timeout_s": 1, "concurrency": 1})
    fake_api.faults = [fault]
    done = run_cli("run", str(manifest), "-v", deadline_s=DEADLINE_S)
    assert done.returncode == 0, done.stderr
    assert "ReadTimeout (the call took longer than settings.timeout_s (1 s))" in done.stderr
    assert "submitted=1 adopted=1 " in done.stdout  # the cut call's job, found in the list, adopted
    assert_exactly_once(fake_api, manifest, urls)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_first_signal_ends_a_run_whose_reply_is_held(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    held: threading.Event, signum: int, code: int,
) -> None:
    """The server made the job and holds its reply; timeout_s is an hour. One signal ends the run within
    seconds: the held call is cut (its object stays `submitting`), the summary is printed, and the
    next run adopts the job."""
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(4)])
    manifest = write_manifest(settings={"timeout_s": 3600, "concurrency": 1})
    proc = cli_child("run", str(manifest), deadline_s=DEADLINE_S)
    hold_replies(fake_api, held, then=lambda: proc.send_signal(signum))
    done = proc.finish()
    assert done.returncode == code, done.stderr
    assert f"stopped by {signal.Signals(signum).name}" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout.startswith("summary: ") and f"exit={code}" in done.stdout
    assert len(fake_api.jobs) == 1
    assert [r.state.value for r in rows(manifest)] == ["submitting"]  # the cut call: reconciled next run
    held.set()
    fake_api.before_reply = None
    again = run_cli("run", str(manifest), deadline_s=DEADLINE_S)
    assert again.returncode == 0, again.stderr
    assert "submitted=3 " in again.stdout and "adopted=1 " in again.stdout
    assert_exactly_once(fake_api, manifest, urls)


def test_run_deadline_ends_a_run_whose_reply_is_held_with_exit_124(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    held: threading.Event,
) -> None:
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(3)])
    manifest = write_manifest(settings={"timeout_s": 3600, "concurrency": 1})
    made = threading.Event()
    hold_replies(fake_api, held, then=made.set)
    # 3 s: the create call is made well within it (a forked child starts in about 0.05 s), even on a
    # loaded machine; the run then waits on the held reply until the deadline
    done = run_cli("run", str(manifest), "--deadline", "3s", deadline_s=DEADLINE_S)
    assert made.is_set(), f"no create call came before the deadline: {done.stderr}"
    assert done.returncode == 124, done.stderr
    assert "deadline" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout.startswith("summary: ") and "exit=124" in done.stdout
    assert [r.state.value for r in rows(manifest)] == ["submitting"]
    held.set()
    fake_api.before_reply = None
    assert run_cli("run", str(manifest), deadline_s=DEADLINE_S).returncode == 0
    assert_exactly_once(fake_api, manifest, urls)


def test_run_wait_stops_waiting_at_its_deadline_and_leaves_the_jobs_to_the_next_run(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(3)])
    manifest = write_manifest()
    fake_api.complete_after = 3600.0  # the jobs run for an hour
    done = run_cli("run", str(manifest), "--wait", "--poll-interval", "0.2", "--deadline", "3s",
                   deadline_s=DEADLINE_S)  # room for three creates on a loaded machine
    assert done.returncode == 124, done.stderr
    assert "submitted=3 " in done.stdout and "jobs_completed=0 " in done.stdout and "exit=124" in done.stdout
    assert {r.state.value for r in rows(manifest)} == {"submitted"}
    fake_api.complete_after = 0.0
    again = run_cli("run", str(manifest), "--wait", "--poll-interval", "0.2", "--deadline", "1h",
                    deadline_s=DEADLINE_S)
    assert again.returncode == 0, again.stderr
    assert "submitted=0 " in again.stdout and "jobs_completed=3 " in again.stdout
    assert_exactly_once(fake_api, manifest, urls)


@pytest.mark.parametrize("value", ["0", "10w", "soon", "-5m", "1d2x"])
def test_a_deadline_that_is_not_a_duration_is_a_usage_error(
    write_manifest: Callable[..., Path], value: str,
) -> None:
    done = run_cli("run", str(write_manifest()), "--deadline", value)
    assert done.returncode == 2 and "--deadline" in done.stderr and done.stdout == ""


def test_a_ctrl_c_while_the_modules_load_is_one_line_and_exit_130(
    write_manifest: Callable[..., Path],
) -> None:
    """tests/ctrl_c_at_import.py presses Ctrl-C while Python imports click for the command line."""
    done = run_cli("run", str(write_manifest()), module="tests.ctrl_c_at_import")
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
    assert done.stderr == "stopped by Ctrl-C while starting: nothing was done\n"


def test_the_harness_kills_a_command_past_its_deadline_and_fails_with_its_output() -> None:
    child = Child([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(600)"],
                  deadline_s=1)
    with pytest.raises(pytest.fail.Exception, match=r"did not end within its deadline of 1 s(.|\n)*started"):
        child.finish()
    assert child.returncode == -signal.SIGKILL
