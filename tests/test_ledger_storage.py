"""Broken storage under the ledger: damaged pages, a full disk, an I/O error, a lock held too long, a
read-only folder. One message naming the ledger, exit 1, nothing lost; reading commands still read."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from orchestrator.cli.main import cli
from orchestrator.errors import LedgerError
from orchestrator.ledger.factory import open_ledger
from orchestrator.ledger.sqlite import ledger_error
from tests.conftest import SECRETS
from tests.fakes.base import FakeImportAPI
from tests.test_ledger import item
from tests.test_operator_logs import unstamped


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def clean(result: Any) -> None:
    """The one-message contract: no traceback, no secret."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and not any(s in result.output for s in SECRETS)


def with_ledger(manifest: Path, ledger: Path) -> Path:
    doc = yaml.safe_load(manifest.read_text())
    doc["ledger"] = str(ledger)
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return manifest


def fill(ledger_path: Path, n: int) -> None:
    with open_ledger(ledger_path) as ledger:
        for i in range(n):
            claim = ledger.begin_submission(item(i))
            assert claim is not None
            ledger.record_job(claim.row, f"job-{i}")


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def _unmount(folder: Path) -> None:
    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A folder outside pytest's shared temporary root, which other pytest runs on this machine clean
    up (and would walk into a mount placed there)."""
    folder = Path(tempfile.mkdtemp(prefix="orchestrator-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only for this process: a read-only bind mount as root, else its permissions."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.iterdir()]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    if not _mount("--bind", str(folder), str(folder)):
        pytest.skip("mount is not permitted here: cannot make a read-only folder as root")
    try:
        if not _mount("-o", "remount,ro,bind", str(folder)):
            pytest.skip("remounting read-only is not permitted here")
        yield
    finally:
        _unmount(folder)


def test_damaged_pages_give_one_message(tmp_path: Path, write_manifest: Callable[..., Path]) -> None:
    ledger = tmp_path / "state" / "l.sqlite"
    fill(ledger, 300)
    data = bytearray(ledger.read_bytes())
    data[4096 * 3:] = b"\xa5" * (len(data) - 4096 * 3)  # page 4 on: table and index pages, not the header
    ledger.write_bytes(bytes(data))
    manifest = with_ledger(write_manifest(), ledger)
    for command in ("status", "export", "run", "retry"):
        result = invoke(command, str(manifest))
        clean(result)
        assert result.exit_code == 1, (command, result.output)
        assert f"error: {ledger}: the ledger file is damaged (database disk image is malformed): " \
               "restore it from a backup" in result.stderr, (command, result.stderr)


def test_a_lock_held_too_long_names_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    fill(path, 1)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(LedgerError) as info:
            open_ledger(path, busy_timeout_s=0.05)
        assert str(info.value).startswith(f"{path}: another process has held the ledger locked for too long "
                                          "(database is locked)")
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.mark.parametrize(("code", "text", "expected"), [
    (sqlite3.SQLITE_IOERR_WRITE, "disk I/O error", "the disk failed to read or write (disk I/O error)"),
    (sqlite3.SQLITE_FULL, "database or disk is full", "the disk is full (database or disk is full): free"),
    (sqlite3.SQLITE_CORRUPT, "database disk image is malformed", "the ledger file is damaged"),
    (sqlite3.SQLITE_BUSY, "database is locked", "another process has held the ledger locked"),
    (sqlite3.SQLITE_READONLY, "attempt to write a readonly database", "the ledger cannot be written"),
])
def test_each_sqlite_failure_says_what_happened_and_what_to_do(code: int, text: str, expected: str) -> None:
    exc = sqlite3.OperationalError(text)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    assert str(ledger_error(Path("/x/l.sqlite"), exc)).startswith(f"/x/l.sqlite: {expected}")


def test_a_full_disk_mid_run_leaves_the_ledger_consistent_and_the_next_run_converges(
    private_dir: Path, put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path],
    fake_api: FakeImportAPI,
) -> None:
    disk = private_dir / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", "size=320k", "tmpfs", str(disk)):
        pytest.skip("cannot mount a small tmpfs here (needs root): the full disk is not simulated")
    try:
        urls = put_objects([f"embeddings/{i:02}.parquet" for i in range(40)])
        manifest = with_ledger(write_manifest(settings={"concurrency": 2, "preflight": "off"}),
                               disk / "l.sqlite")
        first = invoke("run", str(manifest))
        clean(first)
        assert first.exit_code == 1, first.output
        assert f"error: {disk / 'l.sqlite'}: the disk is full (database or disk is full)" in first.stderr
        made = len(fake_api.all_jobs())
        assert 0 < made < len(urls)
        assert _mount("-o", "remount,size=64m", str(disk))  # space freed
        with sqlite3.connect(disk / "l.sqlite") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        second = invoke("run", str(manifest))
        clean(second)
        assert second.exit_code == 0, second.output
        live = {j.object_url for j in fake_api.all_jobs()}
        assert len(fake_api.all_jobs()) == len(urls) == len(live)
        with open_ledger(disk / "l.sqlite") as ledger:
            recorded = {r.url: r.job_id for r in ledger.records()}
        assert sorted(recorded) == sorted(urls)
        assert set(recorded.values()) == {j.job_id for j in fake_api.all_jobs()}
    finally:
        _unmount(disk)


def test_reading_commands_read_a_ledger_in_a_read_only_folder(
    private_dir: Path, write_manifest: Callable[..., Path], put_objects: Callable[..., list[str]],
) -> None:
    put_objects(["embeddings/a.parquet"])
    state = private_dir / "state"
    fill(state / "l.sqlite", 3)
    manifest = with_ledger(write_manifest(), state / "l.sqlite")
    with read_only(state):
        for args, expected in ((["status"], "submitted"), (["plan"], "submit"),
                               (["show", "s3://b/k1"], "job-1"), (["export"], "job-2")):
            result = invoke(*args[:1], str(manifest), *args[1:])
            clean(result)
            assert result.exit_code == 0, (args, result.output)
            assert expected in result.stdout, (args, result.stdout)
        result = invoke("run", str(manifest))  # writing is refused with one line
        clean(result)
        assert result.exit_code == 1, result.output
        assert unstamped(result.stderr)[0].startswith(f"error: {state}"), result.output
    assert sorted(p.name for p in state.iterdir()) == ["l.sqlite"]  # nothing was written there


def test_a_reading_command_migrates_an_older_ledger_it_can_write(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    fill(path, 2)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='1' WHERE key='schema'")  # as if written by schema 1
    with open_ledger(path, read_only=True) as ledger:  # needs the migration: opened for writing, once
        assert len(list(ledger.records())) == 2
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() != ("1",)
        db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    with pytest.raises(LedgerError, match="newer orchestrator"):
        open_ledger(path, read_only=True)
