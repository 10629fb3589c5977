"""The loads of ``settings.visibility: per_run``: a run's jobs, created uncommitted, committed together
or not at all. A load is opened by its run (its rows carry its id, ``objects.load_id``, from their
claim); its decision to commit is written durably before the first commit call, so a run killed at any
point leaves a load the next run can finish: a decided one is committed, an undecided one aborted. A
load ends once none of its rows waits on a job."""

from __future__ import annotations

from typing import NamedTuple

from ..models import LedgerRecord, ObjectState
from .reads import record
from .schema import COLUMNS
from .session import Session

WAITING = (ObjectState.SUBMITTING.value, ObjectState.SUBMITTED.value)  # rows that still wait on a job


class Load(NamedTuple):
    """A load the owner's target has not finished: its id, and whether its run decided to commit."""

    id: int
    decided: bool


def open_load(s: Session) -> int:
    """A new load for the owner's target, committed durably before any of its jobs is created."""
    def body() -> int:
        load_id = int(s.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM loads").fetchone()[0])
        s.db.execute("INSERT INTO loads (id, target, started_at) VALUES (?,?,?)",
                     (load_id, s.owner, s.clock()))
        return load_id

    return s.durably(body)


def decide_load(s: Session, load_id: int) -> None:
    """Record the decision to commit every job of the load, durably: from here on, whoever finds one
    of its jobs uncommitted commits it."""
    s.durably(lambda: s.db.execute("UPDATE loads SET decided_at=? WHERE id=? AND decided_at IS NULL",
                                   (s.clock(), load_id)))


def end_load(s: Session, load_id: int) -> bool:
    """Close the load if none of its rows waits on a job any more; whether it is closed."""
    def body() -> bool:
        waiting = s.db.execute(f"SELECT 1 FROM objects WHERE load_id=? AND state IN ({_marks()}) LIMIT 1",
                               (load_id, *WAITING)).fetchone()
        if waiting is None:
            s.db.execute("UPDATE loads SET ended_at=? WHERE id=? AND ended_at IS NULL", (s.clock(), load_id))
        return waiting is None

    return s.durably(body)


def open_loads(s: Session) -> list[Load]:
    """The owner's loads not yet ended, oldest first."""
    with s.read() as db:
        return [Load(int(i), decided is not None) for i, decided in db.execute(
            "SELECT id, decided_at FROM loads WHERE target=? AND ended_at IS NULL ORDER BY id", (s.owner,))]


def decided_loads(s: Session) -> set[int]:
    """The owner's unfinished loads whose run decided to commit: their uncommitted jobs are committed."""
    return {load.id for load in open_loads(s) if load.decided}


def load_rows(s: Session, load_id: int) -> list[LedgerRecord]:
    """Every row sent in the load, in any state."""
    with s.read() as db:
        return [record(r) for r in db.execute(f"SELECT {COLUMNS} FROM objects WHERE load_id=? ORDER BY id",
                                              (load_id,))]


def _marks() -> str:
    return ",".join("?" * len(WAITING))
