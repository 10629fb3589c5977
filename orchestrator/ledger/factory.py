"""Opening a ledger: the one place a location's type picks its backend (a path: a SQLite file; a
:class:`~orchestrator.config.pgurl.PostgresLedger`: a PostgreSQL schema), creates or migrates its
schema, and checks it can be read. A new backend is a module meeting :class:`~.backend.Kind` and one
line in :func:`kind`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..config.pgurl import PostgresLedger
from . import migrations, schema, sqlite
from .backend import Held, Kind
from .store import Ledger

Location = Path | PostgresLedger


def kind(where: Location) -> Kind:
    """The backend module for ``where``."""
    if isinstance(where, PostgresLedger):
        from . import postgres  # psycopg is loaded only for a PostgreSQL ledger
        return postgres
    return sqlite


def open_ledger(where: Location, *, clock: Callable[[], float] = time.time, owner: str = "",
                sources: Sequence[str] = (), read_only: bool = False, busy_timeout_s: float = 30.0,
                upgrade: bool = True) -> Ledger:
    """The ledger at ``where``, created or migrated to this orchestrator's schema.

    ``owner`` is the identity of the target this process imports into: new rows are recorded under
    it, and rows written before destinations were recorded (schema 1) are taken to be its own when
    the ledger is migrated (``upgrade=False`` refuses an old ledger instead). ``sources`` names each
    source number of the manifest by its stable URL.

    ``read_only`` opens a SQLite file for reading alone (``status``, ``plan``, ``show``, ``export``):
    nothing is written, not even a WAL checkpoint or a migration, so a ledger in a read-only folder
    can still be read (a PostgreSQL ledger is opened as usual, its schema neither made nor migrated).
    Every failure of the database surfaces as a :class:`~orchestrator.errors.LedgerError` naming it.
    """
    db = kind(where).open_backend(where, read_only=read_only, busy_timeout_s=busy_timeout_s)
    try:
        with db.errors():
            if not db.read_only:
                migrations.upgrade(db, migrations.Opener(owner, tuple(sources)), allowed=upgrade)
            schema.check(db)
    except BaseException:
        db.close()  # a half-opened ledger leaves no file open
        raise
    return Ledger(db, clock=clock, owner=owner, sources=sources)


@contextlib.contextmanager
def hold_ledger(where: Location, *, wait_s: float = 0.0) -> Iterator[Held]:
    """The one-run lock of a ledger: ``<ledger>.lock`` beside a SQLite file's real path (symlinks
    resolved), or PostgreSQL's advisory lock. Yields the lock's name and how to tell whether the run
    a run record names still holds its lock (under an advisory lock, no other run can)."""
    with kind(where).hold(where, wait_s=wait_s) as held:
        yield held


def display(where: Location) -> str:
    """How messages name the ledger at ``where``: its path, or its URL without the password."""
    return kind(where).display(where)
