"""The ledger in a SQLite file (the one module that imports ``sqlite3``): WAL mode, transactions
``BEGIN IMMEDIATE``, durable ones ``synchronous=FULL``; a read-only open for the reading commands; the
one-run lock as an ``flock`` beside the file (``lock.py``); and what each SQLite failure means for the
user, said in one place (:func:`ledger_error`)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..config.document import ledger_file_problem
from ..errors import LedgerError
from . import lock, schema
from .backend import Held, Rows
from .migrations import SCHEMA

# What each SQLite failure means for the user, by primary result code: what happened, what to do.
_SQLITE_PROBLEMS = {
    sqlite3.SQLITE_CORRUPT: "the ledger file is damaged ({error}): restore it from a backup; "
                            "`orchestrator export` may still read what is left",
    sqlite3.SQLITE_NOTADB: "not a usable ledger: the file is not a SQLite database ({error}): check the "
                           "manifest's ledger path",
    sqlite3.SQLITE_FULL: "the disk is full ({error}): free some space and run again; the last change was "
                         "not recorded and the next run takes up where this one stopped",
    sqlite3.SQLITE_IOERR: "the disk failed to read or write ({error}): check the disk and the file system, "
                          "then run again",
    sqlite3.SQLITE_BUSY: "another process has held the ledger locked for too long ({error}): find it "
                         "(fuser on the file) and let it finish, then run again",
    sqlite3.SQLITE_LOCKED: "the ledger is locked ({error}): let the other process finish, then run again",
    sqlite3.SQLITE_READONLY: "the ledger cannot be written ({error}): run this command where the ledger's "
                             "folder is writable (status, plan, show and export only read it)",
    sqlite3.SQLITE_CANTOPEN: "the ledger cannot be opened ({error}): check that its folder exists and "
                             "is readable",
    sqlite3.SQLITE_PERM: "the ledger cannot be opened ({error}): check the file's permissions",
}


def ledger_error(path: Path | str, exc: sqlite3.Error) -> LedgerError:
    """One message for a SQLite failure: the ledger, what happened and what to do."""
    code = getattr(exc, "sqlite_errorcode", None)
    problem = _SQLITE_PROBLEMS.get(code & 0xFF if isinstance(code, int) else -1,
                                   "the ledger cannot be used ({error})")
    return LedgerError(f"{path}: {problem.format(error=exc)}")


class Sqlite:
    """A SQLite file in WAL mode; transactions ``BEGIN IMMEDIATE``; durable ones ``synchronous=FULL``.
    ``read_only`` opens it for reading alone: nothing is written, not even a WAL checkpoint."""

    kind = "SQLite file"
    for_update = ""

    def __init__(self, path: Path, *, read_only: bool = False, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self.name = str(path)
        self.read_only = read_only
        try:
            if read_only:
                self._db = _open_read_only(path, busy_timeout_s)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                problem = ledger_file_problem(path)
                if problem is not None:
                    raise LedgerError(problem)
                if path.exists() and (links := os.stat(path).st_nlink) > 1:
                    raise LedgerError(f"{path}: the ledger file has {links} hard links; SQLite keeps one "
                                      "file consistent only under one name (its -wal and -shm files go by "
                                      "the name): remove the extra links (a symlink is fine)")
                self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                           timeout=busy_timeout_s)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
            self._identity = _file_identity(path)
        except (sqlite3.DatabaseError, OSError) as exc:
            if hasattr(self, "_db"):
                self._db.close()  # a half-opened ledger leaves no file open
            if isinstance(exc, sqlite3.DatabaseError):
                raise ledger_error(path, exc) from exc
            raise LedgerError(f"{path}: cannot open the ledger ({exc.strerror or exc})") from exc

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise ledger_error(self.name, exc) from exc

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Rows:
        return self._db.execute(sql, params)

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column IN (?, ?, ...)`` and its parameters."""
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    def executemany(self, sql: str, rows: Iterator[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    def begin(self, *, durable: bool, exclusive: bool = False) -> None:
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.execute("BEGIN IMMEDIATE")  # one writer at a time: exclusive already

    def in_transaction(self) -> bool:
        return self._db.in_transaction

    def tables(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def columns(self, table: str) -> set[str]:
        return {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}

    def ddl(self, statement: str) -> str:
        return statement

    def floor(self, expression: str) -> str:
        """``expression`` (never negative) rounded down: SQLite's CAST truncates."""
        return f"CAST({expression} AS INTEGER)"

    def after_copy(self) -> None:
        """Nothing: an INTEGER PRIMARY KEY goes on from the largest id."""

    def schema_objects(self) -> set[tuple[str, str]]:
        """Every table, index, view and trigger, by kind and name (SQLite's own ``sqlite_*`` aside)."""
        return {(str(kind), str(name)) for kind, name in self._db.execute(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")}

    def check_same(self) -> None:
        try:
            now = _file_identity(self.path)
        except OSError:
            now = None
        if now != self._identity:
            raise LedgerError(f"{self.path}: the ledger file was deleted or replaced while this run used it; "
                              "stopped submitting (restore it, then run again)")

    def close(self) -> None:
        self._db.close()


def open_backend(path: Path, *, read_only: bool, busy_timeout_s: float) -> Sqlite:
    """The ledger file at ``path``. A read-only open of an older ledger is a writing one, so that it is
    migrated first (when its folder can be written)."""
    db = Sqlite(path, read_only=read_only, busy_timeout_s=busy_timeout_s)
    try:
        with db.errors():
            if read_only and _needs_upgrade(db):
                db.close()
                db = Sqlite(path, read_only=False, busy_timeout_s=busy_timeout_s)
    except BaseException:
        db.close()
        raise
    return db


def _needs_upgrade(db: Sqlite) -> bool:
    """Is the ledger ours, and of an older schema (which only a writing open can migrate)? A newer one
    is refused; an older one in a folder that cannot be written too."""
    schema.check_app(db)
    version = schema.stored_version(db, {"meta"})
    if version > SCHEMA:
        raise LedgerError(f"{db.name}: written by a newer orchestrator (ledger schema {version}; this "
                          f"one reads up to {SCHEMA}): upgrade orchestrator")
    if version < SCHEMA and not os.access(db.path.parent, os.W_OK):
        raise LedgerError(f"{db.name}: written by an older orchestrator (ledger schema {version}), "
                          "and its folder cannot be written to migrate it: run orchestrator once where "
                          "it can")
    return version < SCHEMA


@contextlib.contextmanager
def hold(path: Path, *, wait_s: float) -> Iterator[Held]:
    """``<ledger>.lock`` beside the file's real path (symlinks resolved: every path to it meets the
    same lock); a run record names its lock file, which :func:`lock.is_held` probes."""
    with lock.hold(path.resolve(), wait_s=wait_s) as lock_path:
        yield str(lock_path), lock.is_held


def display(path: Path) -> str:
    return str(path)


def missing(path: Path) -> bool:
    return not path.exists()


def same(path: Path, other: Path) -> bool:
    return path.resolve() == other.resolve()


def _file_identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _open_read_only(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """A connection that never writes. A WAL ledger needs its ``-shm`` file, which a read-only folder
    cannot hold: there, the file is opened as immutable (nobody can be writing it)."""
    problem = ledger_file_problem(path)
    if problem is not None:
        raise LedgerError(problem)
    if not path.is_file():
        raise LedgerError(f"{path}: no ledger here (a run creates it when it first submits)")
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                             timeout=busy_timeout_s)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return db
    except sqlite3.OperationalError:
        db = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None, check_same_thread=False)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return db
