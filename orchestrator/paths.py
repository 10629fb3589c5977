"""What a path names on disk, for the files the orchestrator writes or keeps (the metrics file, a SQLite
ledger): the real file behind its symlinks, and what stands there when it is not a regular file, so that
nothing but a regular file (or a new name in an existing folder) is ever replaced or opened as one."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def not_a_file(path: Path) -> str | None:
    """What stands at ``path`` (symlinks followed) when it is not a regular file: ``a folder``, ``a FIFO
    (named pipe)``, ``a character device``, ``a symlink loop``...; None for a regular file or nothing
    (a new name, a symlink to one)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop (it never reaches a file)"
        if exc.errno == errno.ENOTDIR:
            return "under something that is not a folder"
        return f"unreadable ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def real_file(path: Path) -> Path:
    """``path`` with every symlink resolved, where a regular file is or may be made; raises ValueError
    saying what stands there otherwise."""
    problem = not_a_file(path)
    if problem is None:
        try:
            return path.resolve()
        except (RuntimeError, OSError):  # Python 3.11 says "Symlink loop" with a RuntimeError
            problem = "a symlink loop (it never reaches a file)"
    raise ValueError(f"{problem}, not a regular file")
