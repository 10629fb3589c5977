"""One run at a time per ledger: an advisory ``flock`` on ``<ledger>.lock``, released by the kernel
when the holder dies, so a killed run never blocks the next one."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import LedgerError, LockHeldError
from ..paths import not_a_file


def is_held(lock_path: str) -> bool:
    """Whether a live process holds the lock file at ``lock_path`` (a missing file is not held)."""
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock this probe took
    return False


@contextlib.contextmanager
def hold(ledger_path: Path, *, wait_s: float = 0.0, clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], object] = time.sleep) -> Iterator[Path]:
    """Hold ``<ledger>.lock`` beside ``ledger_path`` (give the resolved path: a symlink to the ledger
    must meet the same lock); yields the lock file's path."""
    path = ledger_path.with_name(ledger_path.name + ".lock")
    problem = not_a_file(path)
    if problem is not None:  # a FIFO or a device would take the pid written into it, or block
        raise LedgerError(f"{path}: {problem}, not a lock file: remove it (each run makes its own)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LedgerError(f"{path}: cannot create the lock file ({exc.strerror or exc})") from exc
    try:
        deadline = clock() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                    raise LockHeldError(str(path), f"pid {holder}", waited_s=wait_s) from None
                sleep(min(0.2, max(0.0, deadline - clock())))
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
