"""SIGHUP (the terminal closed) stops a run like SIGTERM; Milvus Lite's own tracebacks (a database locked
by another process, a Ctrl-C while it shuts down) never reach the terminal: our one line does."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.targets.milvus_lite import quiet_milvus_lite
from tests.conftest import Child, cli_child, run_cli
from tests.fakes.base import FakeImportAPI, Job
from tests.test_exactly_once import assert_exactly_once, invoke, rows
from tests.test_milvus_lite import ROUTED, lite_manifest, table, write
from tests.test_operator_logs import unstamped

ROOT = Path(__file__).resolve().parent.parent


def spawn(*args: str, ignore_hup: bool = False) -> Child:
    """The CLI with SIGHUP as a terminal gives it, or ignored as `nohup` starts it (never as this
    process inherited it: a suite run under `nohup` tests the same)."""
    return cli_child(*args, ignore_hup=ignore_hup)


def hang_up_after_first_job(proc: Child) -> Callable[[Job], None]:
    sent = threading.Event()

    def hook(_job: Job) -> None:
        if not sent.is_set():
            sent.set()
            proc.send_signal(signal.SIGHUP)

    return hook


def test_sighup_stops_like_sigterm_with_a_summary_and_exit_129(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects([f"embeddings/{i:02}.parquet" for i in range(12)])
    manifest = write_manifest(settings={"concurrency": 2})
    proc = spawn("run", str(manifest))
    fake_api.before_reply = hang_up_after_first_job(proc)
    out, err = proc.communicate()
    assert proc.returncode == 129, err
    assert "SIGHUP: finishing the calls in flight" in err and "stopped by SIGHUP" in err
    assert "summary:" in out and "exit=129" in out and "Traceback" not in err
    assert "submitting" not in {r.state.value for r in rows(manifest)}  # calls in flight were recorded
    assert len(fake_api.jobs) < len(urls)
    fake_api.before_reply = None
    assert invoke("run", str(manifest)).exit_code == 0
    assert_exactly_once(fake_api, manifest, urls)


def test_a_sighup_ignored_at_start_stays_ignored(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(4)])
    manifest = write_manifest(settings={"concurrency": 1})
    proc = spawn("run", str(manifest), ignore_hup=True)
    fake_api.before_reply = hang_up_after_first_job(proc)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "submitted=4" in out
    assert_exactly_once(fake_api, manifest, urls)


@pytest.fixture
def lite_db(tmp_path: Path) -> Iterator[Path]:
    write(tmp_path / "lake" / "articles" / "a.parquet", table(range(50)))
    yield tmp_path / "lake.db"


def test_a_lite_database_locked_by_another_process_is_one_line(tmp_path: Path, lite_db: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pymilvus import MilvusClient; "
                               "c = MilvusClient(sys.argv[1]); print('held', flush=True); sys.stdin.read()",
         str(lite_db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        manifest = lite_manifest(tmp_path, lite_db, ROUTED, create_collection=True)
        done = run_cli("run", str(manifest))
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1
    assert unstamped(done.stderr) == [
        f"error: {lite_db}: cannot open the Milvus Lite database (another process holds the lock on "
        f"'{lite_db}': [Errno 11] Resource temporarily unavailable)"]


def test_a_ctrl_c_while_milvus_lite_shuts_down_prints_no_traceback(tmp_path: Path, lite_db: Path) -> None:
    manifest = lite_manifest(tmp_path, lite_db, ROUTED, create_collection=True)
    done = run_cli("run", str(manifest), module="tests.interrupt_lite")
    assert "summary: submitted=1" in done.stdout
    assert done.returncode == -signal.SIGINT, done.stderr  # ended at once by the second Ctrl-C
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr


def test_milvus_lite_errors_logged_with_tracebacks_stay_off_the_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    quiet_milvus_lite()
    try:
        raise RuntimeError("Insert failed inside the server")
    except RuntimeError:
        logging.getLogger("milvus_lite.adapter.grpc.servicer").exception("Insert failed: %s", "boom")
    assert capsys.readouterr().err == ""
