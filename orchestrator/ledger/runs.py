"""The run's own bookkeeping in the ledger, not object state (committed without fsync: re-derivable):
the record of the one run that holds the ledger, whatever path reached it, the job progress polled,
when each source was last listed whole, and when a run last ended with nothing failed."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

from ..errors import LockHeldError
from .session import Session


def claim_run(s: Session, lock_path: Path | str, *, holder_alive: Callable[[str], bool]) -> None:
    """Record this process as the ledger's one run, in a transaction. Another run's record stands
    while ``holder_alive(its lock file)`` says its holder still holds it (a hard link or a second
    path to the same file, each with its own lock file, still meets here)."""
    me = json.dumps({"pid": os.getpid(), "lock": str(lock_path), "host": socket.gethostname()})
    with s.tx(durable=False) as db:
        row = db.execute("SELECT value FROM meta WHERE key='run'").fetchone()
        if row is not None and row[0] != me:
            other = json.loads(row[0])
            if other.get("lock") != str(lock_path) and holder_alive(str(other.get("lock"))):
                raise LockHeldError(str(other.get("lock")), f"pid {other.get('pid')}")
        db.execute("INSERT INTO meta VALUES ('run', ?) ON CONFLICT (key) DO UPDATE "
                   "SET value = excluded.value", (me,))


def end_run(s: Session) -> None:
    """Remove this process's run record."""
    with s.tx(durable=False) as db:
        db.execute("DELETE FROM meta WHERE key='run' AND value LIKE ?", (f'{{"pid": {os.getpid()},%',))


def note_progress(s: Session, job_id: str, progress: float | None) -> None:
    """Remember a running job's progress as just polled; ``changed_at`` moves only when the value
    changes (or on first sight)."""
    now = s.clock()
    with s.tx(durable=False) as db:
        db.execute(
            "INSERT INTO job_progress (job_id, progress, changed_at, seen_at) VALUES (?,?,?,?) "
            "ON CONFLICT (job_id) DO UPDATE SET seen_at=excluded.seen_at, progress=excluded.progress, "
            "changed_at=CASE WHEN job_progress.progress = excluded.progress OR (job_progress.progress "
            "IS NULL AND excluded.progress IS NULL) THEN job_progress.changed_at "
            "ELSE excluded.changed_at END",
            (job_id, progress, now, now))


def last_listed(s: Session, source: str) -> float | None:
    """When ``source`` (its URL) was last listed whole, as the start of that listing; None: never."""
    with s.tx(durable=False) as db:
        row = db.execute("SELECT listed_at FROM listings WHERE source=?", (source,)).fetchone()
    return None if row is None else float(row[0])


def note_listed(s: Session, source: str, at: float) -> None:
    """``source`` was listed whole by a listing that started at ``at`` (what it may have missed since
    is newer than ``at``)."""
    with s.tx(durable=False) as db:
        db.execute("INSERT INTO listings (source, listed_at) VALUES (?, ?) ON CONFLICT (source) DO UPDATE "
                   "SET listed_at = excluded.listed_at", (source, at))


def note_success(s: Session) -> None:
    """Record that a run ended now with nothing failed."""
    with s.tx(durable=False) as db:
        db.execute("INSERT INTO meta VALUES ('last_success_at', ?) ON CONFLICT (key) DO UPDATE "
                   "SET value = excluded.value", (repr(s.clock()),))
