"""The on-disk record: one SQLite row per import (object version *into a destination*) and its history.

An import is identified by the object (its native URL and version) and where it goes: the target
(``owner``: the API, the cluster or endpoint, the database; :func:`orchestrator.api.target_identity`),
the collection and the partition. A ledger opened for one target claims, polls and judges only that
target's rows: another cluster's jobs are never touched.

State changes only through the named transitions below, each one transaction committed durably
(SQLite: ``synchronous=FULL``; PostgreSQL: ``synchronous_commit=on``) before the call it protects: a
crash leaves either the old state or the new one, never half of each.

    (new), pending, failed --begin_submission--> submitting --record_job--> submitted --complete--> completed
                                      |   \\--refuse(permanent)--> failed <--job_failed--/
                                      |    \\--refuse(transient), release--> pending
                                      \\--mark_uncertain--> uncertain --rearm, release--> pending
                                                             uncertain --record_job--> submitted
    failed --rearm--> pending (with a fresh failure budget)

A row is first written when its object is first submitted: objects the ledger has never seen are
simply new, so planning a million of them writes nothing.

The transitions are written once, in SQL that SQLite and PostgreSQL both speak (``?`` and ``:name``
placeholders, ``RETURNING``, ``ON CONFLICT``); a :class:`Backend` holds what differs: the
connection, how a transaction begins, the column types, the catalog, and whether the file can be
replaced under the run (``ledger_pg.py`` is the PostgreSQL one).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import json
import os
import re
import socket
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, NamedTuple, ParamSpec, Protocol, TypeVar

from ..config.document import ledger_file_problem
from ..config.pgurl import PostgresLedger
from ..config.urls import canonical_file_url
from ..errors import LedgerError, LockHeldError
from ..models import JobProgress, LedgerRecord, ObjectState, PastImport, PlanItem
from ..terminal import clip, listing, printable

T = TypeVar("T")
P = ParamSpec("P")
_APP = "orchestrator-ledger"
_SCHEMA = 4
_CHUNK = 500
_COLUMNS = ("url, version, source, collection, partition, state, job_id, attempts, failures, error, size, "
            "updated_at, rows, imported_rows, target, sent_as, server_at, key_gen, id, batch, alone")
# What the planner reads of a row (:class:`PastImport`), after the URL.
_PAST_COLUMNS = "url, version, target, collection, partition, state, job_id, failures, error, alone"

_OBJECTS = """
CREATE TABLE IF NOT EXISTS objects (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    version TEXT NOT NULL,
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    collection TEXT NOT NULL,
    partition TEXT,
    size INTEGER NOT NULL,
    state TEXT NOT NULL,
    job_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    rows INTEGER,
    imported_rows INTEGER,
    sent_as TEXT,
    server_at REAL,
    key_gen INTEGER NOT NULL DEFAULT 0,
    batch INTEGER,
    alone INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
)"""
_DDL = _OBJECTS + """;
CREATE UNIQUE INDEX IF NOT EXISTS objects_import
    ON objects (url, version, target, collection, COALESCE(partition, ''));
CREATE INDEX IF NOT EXISTS objects_state ON objects (state);
CREATE INDEX IF NOT EXISTS objects_job ON objects (job_id);
CREATE INDEX IF NOT EXISTS objects_batch ON objects (batch);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    object_id INTEGER NOT NULL REFERENCES objects (id),
    at REAL NOT NULL,
    state TEXT NOT NULL,
    job_id TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS events_object ON events (object_id);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id);
CREATE TABLE IF NOT EXISTS job_progress (
    job_id TEXT PRIMARY KEY,
    progress REAL,
    changed_at REAL NOT NULL,
    seen_at REAL NOT NULL
);
"""
# Every table and its columns, in the order ``ledger copy`` moves them (parents first).
TABLES = {
    "meta": ("key", "value"),
    "objects": ("id", "url", "version", "target", "source", "collection", "partition", "size", "state",
                "job_id", "attempts", "failures", "error", "rows", "imported_rows", "sent_as", "server_at",
                "key_gen", "batch", "alone", "created_at", "updated_at"),
    "events": ("id", "object_id", "at", "state", "job_id", "detail"),
    "job_progress": ("job_id", "progress", "changed_at", "seen_at"),
}
_KEYS = {"meta": "key", "objects": "id", "events": "id", "job_progress": "job_id"}
# What the schema holds that this orchestrator made (a backend adds its own: keys, sequences)
OWN = {*(("table", t) for t in TABLES),
       *(("index", name) for name in re.findall(r"CREATE (?:UNIQUE )?INDEX IF NOT EXISTS (\w+)", _DDL))}


class Rows(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Backend(Protocol):
    """What differs between databases. SQL reaches :meth:`execute` with ``?`` and ``:name``
    placeholders and SQLite's column types; a backend translates what it must."""

    name: str  # how messages name the ledger (a path, or a URL without its password)
    kind: str  # "SQLite file", "PostgreSQL schema"
    for_update: str  # appended to a SELECT whose rows the transaction then writes

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Rows: ...
    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]: ...
    def executemany(self, sql: str, rows: Iterator[Sequence[Any]]) -> None: ...
    def begin(self, *, durable: bool, exclusive: bool = False) -> None: ...
    def in_transaction(self) -> bool: ...
    def tables(self) -> set[str]: ...
    def columns(self, table: str) -> set[str]: ...
    def ddl(self, statement: str) -> str: ...
    def after_copy(self) -> None: ...
    def schema_objects(self) -> set[tuple[str, str]]: ...
    def check_same(self) -> None: ...
    def close(self) -> None: ...


_STATES = {s.value: s for s in ObjectState}


def _record(row: tuple[Any, ...]) -> LedgerRecord:
    (url, version, source, collection, partition, state, job_id, attempts, failures, error, size, at, rows,
     imported, target, sent_as, server_at, key_gen, row_id, batch, alone) = row
    return LedgerRecord(url, version, source, collection, partition, _STATES[state], job_id, attempts,
                        failures, error, size, at, rows, imported, target, sent_as, server_at, key_gen,
                        row_id, batch, bool(alone))


class Claim(NamedTuple):
    """A row taken for a create call: its id, the failures so far, and the idempotency generation."""

    row: int
    failures: int
    key_gen: int


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


@contextlib.contextmanager
def _translated(path: Path | str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise ledger_error(path, exc) from exc


def _translating(method: Callable[P, T]) -> Callable[P, T]:
    """``method`` with every ``sqlite3`` error turned into a :class:`LedgerError` (generators too)."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generator(*args: P.args, **kwargs: P.kwargs) -> Any:
            with _translated(args[0].name):  # type: ignore[attr-defined]
                yield from method(*args, **kwargs)
        return generator

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        with _translated(args[0].name):  # type: ignore[attr-defined]
            return method(*args, **kwargs)
    return call


class Ledger:
    """Thread-safe: every method takes the connection lock for one short transaction.

    ``where`` is a SQLite file or a PostgreSQL schema. ``owner`` is the identity of the target this
    process imports into: new rows are recorded under it, and rows written before destinations were
    recorded (schema 1) are taken to be its own when the ledger is migrated (``upgrade=False``
    refuses an old ledger instead). ``sources`` names each source number of the manifest by its
    stable URL.

    ``read_only`` opens a SQLite file for reading alone (``status``, ``plan``, ``show``, ``export``):
    nothing is written, not even a WAL checkpoint or a migration, so a ledger in a read-only folder can
    still be read (a PostgreSQL ledger is opened as usual). Every SQLite failure surfaces as a
    :class:`LedgerError` naming the file (see :func:`ledger_error`).
    """

    def __init__(self, where: Path | PostgresLedger, *, clock: Callable[[], float] = time.time,
                 owner: str = "", sources: Sequence[str] = (), read_only: bool = False,
                 busy_timeout_s: float = 30.0, upgrade: bool = True) -> None:
        self.owner = owner
        self.sources = tuple(sources)
        self._clock = clock
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Op[Any]] = []
        if isinstance(where, Path):
            self._db: Backend = _Sqlite(where, read_only=read_only, busy_timeout_s=busy_timeout_s)
        else:
            from .postgres import Postgres  # psycopg is loaded only for a PostgreSQL ledger
            self._db = Postgres(where)
        self.name = self._db.name
        try:
            if isinstance(where, Path) and read_only and self._needs_migration(where):
                self._db.close()  # an older ledger: migrated by a normal open, if it can be
                self._db = _Sqlite(where, read_only=False, busy_timeout_s=busy_timeout_s)
                read_only = False
            if not read_only:
                self._init_schema(upgrade=upgrade)
            self._check_foreign()
            self._check_states()
        except sqlite3.DatabaseError as exc:
            self._db.close()  # a half-opened ledger leaves no file open
            raise ledger_error(self.name, exc) from exc
        except BaseException:
            self._db.close()
            raise

    def _init_schema(self, *, upgrade: bool) -> None:
        with self._lock:
            self._db.begin(durable=True, exclusive=True)
            try:
                existing = self._db.tables()
                if existing and "meta" not in existing:
                    raise LedgerError(f"{self.name}: this {self._db.kind} is not an orchestrator ledger")
                version = self._stored_version(existing)
                if version > _SCHEMA:
                    raise LedgerError(
                        f"{self.name}: written by a newer orchestrator (ledger schema {version}; this one "
                        f"reads up to {_SCHEMA}): upgrade orchestrator, or point `ledger:` elsewhere")
                if 0 < version < _SCHEMA and not upgrade:
                    raise LedgerError(f"{self.name}: ledger schema {version}: run orchestrator on it "
                                      "once (it migrates the ledger), then try again")
                if 0 < version < 2:
                    self._migrate_v1()
                if 0 < version < 3:
                    self._migrate_v2()
                if 0 < version < 4:
                    self._migrate_v3()
                for statement in _DDL.split(";"):
                    if statement.strip():
                        self._db.execute(self._db.ddl(statement))
                self._db.execute("INSERT INTO meta VALUES ('app', ?) ON CONFLICT (key) DO NOTHING", (_APP,))
                self._db.execute("INSERT INTO meta VALUES ('schema', ?) ON CONFLICT (key) DO UPDATE "
                                 "SET value = excluded.value", (str(_SCHEMA),))
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        self._check_app()

    def _check_app(self) -> None:
        with self._lock:
            app = self._db.execute("SELECT value FROM meta WHERE key='app'").fetchone() \
                if "meta" in self._db.tables() else None
        if app is None or app[0] != _APP:
            raise LedgerError(f"{self.name}: this {self._db.kind} is not an orchestrator ledger")

    def _needs_migration(self, path: Path) -> bool:
        """For a read-only open: is the ledger ours, and of an older schema (which only a writing open can
        migrate)? A newer one is refused; an older one in a folder that cannot be written too."""
        self._check_app()
        with self._lock:
            version = self._stored_version({"meta"})
        if version > _SCHEMA:
            raise LedgerError(f"{self.name}: written by a newer orchestrator (ledger schema {version}; this "
                              f"one reads up to {_SCHEMA}): upgrade orchestrator")
        if version < _SCHEMA and not os.access(path.parent, os.W_OK):
            raise LedgerError(f"{self.name}: written by an older orchestrator (ledger schema {version}), "
                              "and its folder cannot be written to migrate it: run orchestrator once where "
                              "it can")
        return version < _SCHEMA

    def _check_foreign(self) -> None:
        """Refuse a ledger whose schema holds what this orchestrator did not make: a trigger that deletes
        rows, a view, a rule or a policy changes what a query sees, and exactly once rests on what the
        ledger says."""
        with self._lock:
            found = sorted(self._db.schema_objects() - OWN)
        if found:
            shown = printable(listing([f"{kind} {name}" for kind, name in found], sep=", ", most=5))
            raise LedgerError(f"{self.name}: this {self._db.kind} holds what orchestrator did not make "
                              f"({shown}), which could change what the ledger says: refused; drop them "
                              "(keep reports and their triggers elsewhere)")

    def _check_states(self) -> None:
        """Refuse a ledger holding a row whose state this orchestrator does not know: every command would
        read it differently (one leaves it out, another stops halfway). Each gap between the known
        states is one index range, so this costs a few index seeks at any ledger size."""
        known = sorted(_STATES)
        gaps = ["state < ?", *(["state > ? AND state < ?"] * (len(known) - 1)), "state > ?"]
        params = [known[0], *(v for pair in itertools.pairwise(known) for v in pair), known[-1]]
        with self._lock:
            if "objects" not in self._db.tables():
                return
            row = self._db.execute(f"SELECT state, COUNT(*) FROM objects WHERE state IN (SELECT state FROM "
                                   f"objects WHERE {' OR '.join(gaps)} LIMIT 1) GROUP BY state",
                                   params).fetchone()
        if row is not None:
            raise LedgerError(
                f"{self.name}: {row[1]} row(s) in state {printable(clip(str(row[0]), 64))!r}, which this "
                f"orchestrator does not know ({', '.join(s.value for s in ObjectState)}): refused, so that "
                "no command reads them wrongly; a newer orchestrator wrote them (upgrade), or someone edited "
                "the ledger (set those rows' state to 'uncertain', check them on the cluster, then `retry "
                "--uncertain`)")

    def _rollback(self) -> None:
        """Undo the open transaction, if the database has not already (SQLite does on a full disk or an
        I/O error): the error that caused it is the one to report."""
        if self._db.in_transaction():
            self._db.execute("ROLLBACK")

    def _stored_version(self, tables: set[str]) -> int:
        if "meta" not in tables:
            return 0
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        try:
            return int(row[0]) if row is not None else 0
        except ValueError:
            raise LedgerError(f"{self.name}: the ledger's schema version {row[0]!r} is not a number"
                              ) from None

    def _migrate_v1(self) -> None:
        """Schema 1 -> 2, in the caller's transaction: rows gain their destination (the owner: the only
        target they can have been written for, as far as this ledger can tell), their source by URL
        instead of position, and the columns added since (rows, imported rows) where they are missing."""
        columns = self._db.columns("objects")
        rows = "rows" if "rows" in columns else "NULL"
        imported = "imported_rows" if "imported_rows" in columns else "NULL"
        cases = " ".join(f"WHEN {i} THEN ?" for i in range(len(self.sources)))
        source = f"CASE source {cases} ELSE 'sources[' || source || ']' END" if cases else \
            "'sources[' || source || ']'"
        self._db.execute("DROP INDEX IF EXISTS objects_state")
        self._db.execute("DROP INDEX IF EXISTS objects_job")
        self._db.execute(_OBJECTS.replace("objects (", "objects_v2 (", 1))
        self._db.execute(
            "INSERT INTO objects_v2 (id, url, version, target, source, collection, partition, size, state, "
            "job_id, attempts, failures, error, rows, imported_rows, created_at, updated_at) "
            f"SELECT id, url, version, ?, {source}, collection, partition, size, state, job_id, attempts, "
            f"failures, error, {rows}, {imported}, created_at, updated_at FROM objects",
            (self.owner, *self.sources))
        self._db.execute("DROP TABLE objects")
        self._db.execute("ALTER TABLE objects_v2 RENAME TO objects")

    # -- one run per ledger, whatever path reached it ----------------------------------------

    def claim_run(self, lock_path: Path | str, *, holder_alive: Callable[[str], bool]) -> None:
        """Record this process as the ledger's one run, in a transaction. Another run's record stands
        while ``holder_alive(its lock file)`` says its holder still holds it (a hard link or a second
        path to the same file, each with its own lock file, still meets here)."""
        me = json.dumps({"pid": os.getpid(), "lock": str(lock_path), "host": socket.gethostname()})
        with self._tx(durable=False):
            row = self._db.execute("SELECT value FROM meta WHERE key='run'").fetchone()
            if row is not None and row[0] != me:
                other = json.loads(row[0])
                if other.get("lock") != str(lock_path) and holder_alive(str(other.get("lock"))):
                    raise LockHeldError(str(other.get("lock")), f"pid {other.get('pid')}")
            self._db.execute("INSERT INTO meta VALUES ('run', ?) ON CONFLICT (key) DO UPDATE "
                             "SET value = excluded.value", (me,))

    def end_run(self) -> None:
        with self._tx(durable=False):
            self._db.execute("DELETE FROM meta WHERE key='run' AND value LIKE ?",
                             (f'{{"pid": {os.getpid()},%',))

    def check_same_file(self) -> None:
        """Raise :class:`LedgerError` when the ledger file was deleted or replaced since it was opened
        (SQLite; a PostgreSQL ledger has no file to replace: nothing to check)."""
        self._db.check_same()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------

    def history(self, urls: Sequence[str]) -> dict[str, list[LedgerRecord]]:
        """Every row for each URL (all versions, oldest first), one indexed query per chunk of URLs:
        the listing streams through in batches, the ledger is never loaded whole."""
        out: dict[str, list[LedgerRecord]] = {}
        with self._lock:
            for start in range(0, len(urls), _CHUNK):
                where, params = self._db.any_of("url", urls[start:start + _CHUNK])
                for row in self._db.execute(f"SELECT {_COLUMNS} FROM objects WHERE {where} ORDER BY id",
                                            params):
                    rec = _record(row)
                    out.setdefault(rec.url, []).append(rec)
        return out

    def past_imports(self, urls: Sequence[str]) -> dict[str, list[PastImport]]:
        """:meth:`history` as the planner reads it: every row for each URL (all versions, oldest first),
        only the fields that decide an action. Half the columns: a 1M no-op rerun looks up every
        listed object, and reading a column costs about as much as finding the row."""
        out: dict[str, list[PastImport]] = {}
        make, states = tuple.__new__, _STATES
        with self._lock:
            for start in range(0, len(urls), _CHUNK):
                where, params = self._db.any_of("url", urls[start:start + _CHUNK])
                found = self._db.execute(f"SELECT {_PAST_COLUMNS} FROM objects WHERE {where} ORDER BY id",
                                         params)
                for url, version, target, collection, partition, state, job_id, failures, error, alone \
                        in found:
                    past = make(PastImport, (version, target, collection, partition, states[state], job_id,
                                             failures, error, alone == 1))
                    if (rows := out.get(url)) is None:
                        out[url] = [past]
                    else:
                        rows.append(past)
        return out

    def records(self, states: Sequence[ObjectState] = (), *, own: bool = False) -> Iterator[LedgerRecord]:
        """Rows in insertion order, optionally only those in ``states`` and (``own``) only the owner's;
        fetched in pages."""
        where = f"AND state IN ({','.join('?' * len(states))})" if states else ""
        params: list[Any] = [s.value for s in states]
        if own:
            where += " AND target = ?"
            params.append(self.owner)
        last = 0
        while True:
            with self._lock:
                rows = self._db.execute(
                    f"SELECT id, {_COLUMNS} FROM objects WHERE id > ? {where} ORDER BY id LIMIT ?",
                    (last, *params, _CHUNK),
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _record(row[1:])
            last = rows[-1][0]

    def known_job_ids(self, job_ids: Sequence[str]) -> set[str]:
        """Which of ``job_ids`` this ledger has ever recorded for the owner's target (job ids are unique
        per server, not across them), replaced (failed) ones included."""
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(job_ids), _CHUNK):
                where, params = self._db.any_of("e.job_id", job_ids[start:start + _CHUNK])
                found.update(str(r[0]) for r in self._db.execute(
                    "SELECT DISTINCT e.job_id FROM events e JOIN objects o ON o.id = e.object_id "
                    f"WHERE {where} AND o.target = ?", (*params, self.owner)))
        return found

    def get(self, url: str, version: str) -> LedgerRecord | None:
        """The owner's row for this object version (the most recent destination, if several)."""
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM objects WHERE url=? AND version=? "
                                   "ORDER BY target = ? DESC, id DESC", (url, version, self.owner)).fetchone()
        return None if row is None else _record(row)

    def row(self, row_id: int) -> LedgerRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM objects WHERE id=?", (row_id,)).fetchone()
        return None if row is None else _record(row)

    def rows(self, row_ids: Sequence[int]) -> list[LedgerRecord]:
        """The rows of ``row_ids`` (those that exist), in id order: one query for a create call's rows."""
        where, params = self._db.any_of("id", row_ids)
        with self._lock:
            found = self._db.execute(f"SELECT {_COLUMNS} FROM objects WHERE {where} ORDER BY id",
                                     params).fetchall()
        return [_record(r) for r in found]

    def by_reported_name(self, name: str, collection: str | None) -> list[LedgerRecord]:
        """The owner's rows whose object was sent exactly as ``name`` (how a server that takes keys,
        like Milvus, reports it), in ``collection`` when given."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM objects WHERE target = ? AND sent_as = ? "
                                    "ORDER BY id", (self.owner, name)).fetchall()
        return [r for r in map(_record, rows) if collection in (None, r.collection)]

    def count(self, state: ObjectState, *, own: bool = False) -> int:
        """Rows in ``state`` (``own``: of the owner's target only)."""
        where = " AND target = ?" if own else ""
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM objects WHERE state = ?{where}",
                                        (state.value, *([self.owner] if own else []))).fetchone()[0])

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM objects GROUP BY state").fetchall()
        return {str(state): int(n) for state, n in rows}

    def events(self, url: str) -> list[tuple[float, str, str, str | None, str | None]]:
        """(time, version, state, job id, detail) for every transition of ``url``, oldest first."""
        with self._lock:
            return [
                (float(at), str(version), str(state), job, detail)
                for at, version, state, job, detail in self._db.execute(
                    "SELECT e.at, o.version, e.state, e.job_id, e.detail FROM events e "
                    "JOIN objects o ON o.id = e.object_id WHERE o.url=? ORDER BY e.id", (url,))
            ]

    # -- operator views: aggregated in SQL, never the whole ledger in memory ------------------

    def group_counts(self) -> list[tuple[str, str, str, int]]:
        """(source, collection, state, count) for every group that has rows."""
        with self._lock:
            return [(str(src), str(coll), str(state), int(n)) for src, coll, state, n in self._db.execute(
                "SELECT source, collection, state, COUNT(*) FROM objects "
                "GROUP BY source, collection, state ORDER BY source, collection, state")]

    def _migrate_v2(self) -> None:
        """Schema 2 -> 3, in the caller's transaction: local files' URLs (and local sources') encode only
        what a URI must, so ``day=01`` is stored as typed instead of ``day%3D01``. ``sent_as`` keeps
        what was sent, which is what a job list reports."""
        for column in ("url", "source"):
            rows = self._db.execute(  # the pattern as a parameter: psycopg reads % in the text itself
                f"SELECT id, {column} FROM objects WHERE {column} LIKE ?", ("file://%",)).fetchall()
            self._db.executemany(f"UPDATE objects SET {column}=? WHERE id=?",
                                 iter([(canonical_file_url(value), row_id) for row_id, value in rows
                                       if canonical_file_url(value) != value]))

    def _migrate_v3(self) -> None:
        """Schema 3 -> 4, in the caller's transaction: rows gain ``batch`` (the claim that sent several
        objects in one job) and ``alone`` (an object to send in a job of its own)."""
        columns = self._db.columns("objects")
        if "batch" not in columns:
            self._db.execute("ALTER TABLE objects ADD COLUMN batch INTEGER")
        if "alone" not in columns:
            self._db.execute("ALTER TABLE objects ADD COLUMN alone INTEGER NOT NULL DEFAULT 0")

    def oldest_submitted(self) -> dict[tuple[str, str], LedgerRecord]:
        """Per (source, collection), the ``submitted`` row that has been running longest."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY source, collection "
                "ORDER BY updated_at, id) AS n FROM objects WHERE state='submitted') AS o WHERE n = 1"
            ).fetchall()
        return {(rec.source, rec.collection): rec for rec in map(_record, rows)}

    def aggregate(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read-only aggregate query (the HTML report's: GROUP BY in the database, so
        that the rows returned stay few at any ledger size)."""
        with self._lock:
            return [tuple(row) for row in self._db.execute(sql, params).fetchall()]

    def floor(self, expression: str) -> str:
        """SQL for ``expression`` (never negative) rounded down to an integer in this database (SQLite's
        CAST truncates, PostgreSQL's rounds: there, FLOOR)."""
        if self._db.kind.startswith("PostgreSQL"):
            return f"CAST(FLOOR({expression}) AS BIGINT)"
        return f"CAST({expression} AS INTEGER)"

    def submitted_before(self, at: float) -> int:
        """How many ``submitted`` rows got their job before ``at``."""
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM objects WHERE state='submitted' AND updated_at < ?",
                                   (at,)).fetchone()
        return int(row[0])

    def failing(self, limit: int) -> tuple[int, list[LedgerRecord]]:
        """How many rows are failed, invalid, uncertain, or pending after an error, and the ``limit``
        most recent of them (each with its last error, an invalid one's with its problems)."""
        where = "state IN ('failed', 'invalid', 'uncertain') OR (state='pending' AND error IS NOT NULL)"
        with self._lock:
            total = int(self._db.execute(f"SELECT COUNT(*) FROM objects WHERE {where}").fetchone()[0])
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM objects WHERE {where} "
                                    "ORDER BY updated_at DESC, id DESC LIMIT ?", (limit,)).fetchall()
        return total, [_record(row) for row in rows]

    def row_totals(self) -> dict[tuple[str, str], tuple[int | None, int | None]]:
        """Expected (pre-flight footer) and imported (server) rows per (source, collection)."""
        with self._lock:
            return {(str(src), str(coll)): (None if rows is None else int(rows),
                                            None if done is None else int(done))
                    for src, coll, rows, done in self._db.execute(
                        "SELECT source, collection, SUM(rows), SUM(imported_rows) FROM objects "
                        "GROUP BY source, collection")}

    def stalled(self, after_s: float) -> list[tuple[LedgerRecord, JobProgress]]:
        """``submitted`` rows whose job the polls have seen at the same progress for ``after_s`` seconds
        or more, longest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS}, p_job, p_progress, p_changed, p_seen FROM objects JOIN ("
                "SELECT job_id AS p_job, progress AS p_progress, changed_at AS p_changed, "
                "seen_at AS p_seen FROM job_progress) AS p ON p_job = job_id "
                "WHERE state='submitted' AND p_seen - p_changed >= ? ORDER BY p_changed, id",
                (after_s,)).fetchall()
        return [(_record(row[:-4]), JobProgress(str(row[-4]), row[-3], float(row[-2]), float(row[-1])))
                for row in rows]

    def job_progress(self, job_ids: Sequence[str]) -> dict[str, JobProgress]:
        """The last progress polled for each of ``job_ids`` that was ever seen running."""
        where, params = self._db.any_of("job_id", job_ids)
        with self._lock:
            return {str(job): JobProgress(str(job), value, float(changed), float(seen))
                    for job, value, changed, seen in self._db.execute(
                        f"SELECT job_id, progress, changed_at, seen_at FROM job_progress WHERE {where}",
                        params)}

    def last_success(self) -> float | None:
        """When a run last ended with nothing failed (see :meth:`note_success`), if ever."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='last_success_at'").fetchone()
        return None if row is None else float(row[0])

    # -- run bookkeeping (not object state: commits without fsync) ---------------------------

    def note_progress(self, job_id: str, progress: float | None) -> None:
        """Remember a running job's progress as just polled; ``changed_at`` moves only when the value
        changes (or on first sight)."""
        now = self._clock()
        with self._tx(durable=False):
            self._db.execute(
                "INSERT INTO job_progress (job_id, progress, changed_at, seen_at) VALUES (?,?,?,?) "
                "ON CONFLICT (job_id) DO UPDATE SET seen_at=excluded.seen_at, progress=excluded.progress, "
                "changed_at=CASE WHEN job_progress.progress = excluded.progress OR (job_progress.progress "
                "IS NULL AND excluded.progress IS NULL) THEN job_progress.changed_at "
                "ELSE excluded.changed_at END",
                (job_id, progress, now, now))

    def note_success(self) -> None:
        """Record that a run ended now with nothing failed."""
        with self._tx(durable=False):
            self._db.execute("INSERT INTO meta VALUES ('last_success_at', ?) ON CONFLICT (key) DO UPDATE "
                             "SET value = excluded.value", (repr(self._clock()),))

    # -- transitions -------------------------------------------------------------------------

    def begin_submission(self, item: PlanItem, *, rows: int | None = None, sent_as: str | None = None,
                         server_at: float | None = None) -> Claim | None:
        """(new) / pending / failed -> submitting, committed before the create call.

        ``sent_as`` is the object exactly as the create call names it (how the server will report it),
        ``server_at`` the server's clock at the claim, as far as it is known: the evidence a later
        reconciliation weighs. Returns the claim, or None when the import is already taken (it has,
        or may have, a job): the caller must then not call the API.
        """
        return self.begin_group([(item, rows, sent_as)], server_at=server_at)[0]

    def begin_group(self, members: Sequence[tuple[PlanItem, int | None, str | None]], *,
                    server_at: float | None = None) -> list[Claim | None]:
        """:meth:`begin_submission` for every object of one create call, ``(item, rows, sent_as)``
        each, in one transaction: all are ``submitting`` before the call, or none. When several are
        claimed, each records the call as its ``batch`` (a number new to the ledger), which is how a
        later reconciliation knows they were sent together. A member already taken gets None."""
        self.check_same_file()
        now = self._clock()

        def body() -> list[Claim | None]:
            claims = [self._take(item, ObjectState.SUBMITTING, rows=rows, error=None, detail=item.reason,
                                 attempt=True, sent_as=sent_as, server_at=server_at, now=now)
                      for item, rows, sent_as in members]
            taken = [c.row for c in claims if c is not None]
            if len(taken) > 1:  # a number no row ever had: stale batches never mix with this one
                batch = self._db.execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM objects").fetchone()[0]
                where, params = self._db.any_of("id", taken)
                self._db.execute(f"UPDATE objects SET batch=? WHERE {where}", (batch, *params))
            return claims

        return self._durably(body)

    def mark_invalid(self, item: PlanItem, problems: list[str], *, rows: int | None) -> bool:
        """(new) / pending / failed -> invalid: the pre-flight check found ``problems``; every one is
        kept. False when the object is already taken."""
        text = "; ".join(problems)
        self.check_same_file()
        now = self._clock()
        return self._durably(lambda: self._take(
            item, ObjectState.INVALID, rows=rows, error=text, detail=text, attempt=False, sent_as=None,
            server_at=None, now=now)) is not None

    def source_url(self, index: int) -> str:
        return self.sources[index] if 0 <= index < len(self.sources) else f"sources[{index}]"

    def _take(self, item: PlanItem, state: ObjectState, *, rows: int | None, error: str | None,
              detail: str, attempt: bool, sent_as: str | None, server_at: float | None,
              now: float) -> Claim | None:
        """The body of a claim, inside the caller's transaction: the row moves to ``state`` (and out of
        any earlier batch), or None when it is taken."""
        obj, route = item.obj, item.route
        assert route is not None
        source = self.source_url(item.source)
        row = self._db.execute(
            "SELECT id, state, failures, key_gen FROM objects WHERE url=? AND version=? AND target=? "
            f"AND collection=? AND COALESCE(partition, '')=?{self._db.for_update}",
            (obj.url, obj.version, self.owner, route.collection, route.partition or "")).fetchone()
        if row is None:
            object_id = self._db.execute(
                "INSERT INTO objects (url, version, target, source, collection, partition, size, state, "
                "attempts, rows, error, sent_as, server_at, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
                (obj.url, obj.version, self.owner, source, route.collection, route.partition, obj.size,
                 state.value, int(attempt), rows, error, sent_as, server_at, now, now)).fetchone()[0]
            failures, key_gen = 0, 0
        elif row[1] in (ObjectState.PENDING.value, ObjectState.FAILED.value):
            object_id, failures, key_gen = row[0], row[2], row[3]
            self._db.execute(
                "UPDATE objects SET state=?, attempts=attempts+?, source=?, rows=COALESCE(?, rows), "
                "error=COALESCE(?, error), sent_as=COALESCE(?, sent_as), server_at=?, batch=NULL, "
                "updated_at=? WHERE id=?",
                (state.value, int(attempt), source, rows, error, sent_as, server_at, now, object_id))
        else:
            return None
        self._event(object_id, now, state, None, detail)
        return Claim(int(object_id), int(failures), int(key_gen))

    def record_job(self, rows: int | Sequence[int], job_id: str, detail: str = "job created") -> bool:
        """submitting (or uncertain) -> submitted, the moment the job id is known: every row of the
        create call (``rows``) records it, in one transaction.

        A job belongs to one create call: when a row outside ``rows`` of the same target already
        recorded ``job_id`` (a server that answers one id for two calls breaks the protocol), nothing
        is recorded, the rows become ``uncertain`` and False is returned."""
        ids = _ids(rows)

        def body() -> bool:
            where, params = self._db.any_of("e.object_id", ids)
            other = self._db.execute(
                "SELECT e.object_id FROM events e JOIN objects o ON o.id = e.object_id WHERE e.job_id=? "
                f"AND NOT ({where}) AND o.target=(SELECT target FROM objects WHERE id=?) LIMIT 1",
                (job_id, *params, ids[0])).fetchone()
            if other is not None:
                why = (f"the server answered job id {job_id}, which already belongs to another object: "
                       "not recorded; check the cluster")
                for row in ids:
                    self._move(row, (ObjectState.SUBMITTING, ObjectState.SUBMITTED), ObjectState.UNCERTAIN,
                               "error = :error", error=why, detail=why)
                return False
            for row in ids:
                self._move(row, (ObjectState.SUBMITTING, ObjectState.UNCERTAIN), ObjectState.SUBMITTED,
                           "job_id = :job, error = NULL", job_id=job_id, detail=detail)
            return True

        return self._durably(body)

    def refuse(self, rows: int | Sequence[int], error: str, *, permanent: bool,
               culprit: int | None = None) -> None:
        """submitting -> failed (the server refused the call) or -> pending (retries ran out), for
        every row of the call. ``culprit``, a row the refusal names, is sent alone from then on."""
        if permanent:
            self._transitions(rows, (ObjectState.SUBMITTING,), ObjectState.FAILED,
                              "failures = failures + 1, key_gen = key_gen + 1, error = :error",
                              culprit=culprit, error=error, detail=error)
        else:
            self._transitions(rows, (ObjectState.SUBMITTING,), ObjectState.PENDING,
                              "error = :error", error=error, detail=error)

    def mark_uncertain(self, rows: int | Sequence[int], why: str) -> None:
        """submitting -> uncertain (the job list cannot prove either way), or submitted -> uncertain
        (the server no longer knows the job)."""
        self._transitions(rows, (ObjectState.SUBMITTING, ObjectState.SUBMITTED), ObjectState.UNCERTAIN,
                          "error = :error", error=why, detail=why)

    def release(self, rows: int | Sequence[int], why: str) -> None:
        """submitting (or uncertain) -> pending: proven that no job exists for the create call."""
        self._transitions(rows, (ObjectState.SUBMITTING, ObjectState.UNCERTAIN), ObjectState.PENDING,
                          "error = :error", error=why, detail=why)

    def complete(self, row: int, job_id: str, *, imported_rows: int | None = None) -> None:
        self.complete_job(job_id, {row: imported_rows})

    def complete_job(self, job_id: str, imported: dict[int, int | None]) -> None:
        """submitted -> completed for every row of one job, with the rows the server imported of each
        (None: not said), in one transaction."""
        def body() -> None:
            for row, count in imported.items():
                detail = "job completed" + (f" ({count} rows)" if count is not None else "")
                self._move(row, (ObjectState.SUBMITTED,), ObjectState.COMPLETED,
                           "error = NULL, imported_rows = :imported", job_id=job_id, detail=detail,
                           imported=count)

        self._durably(body)

    def job_failed(self, rows: int | Sequence[int], job_id: str, reason: str, *,
                   culprit: int | None = None) -> None:
        """submitted -> failed for every row of the job, each counting one failure; ``culprit`` (the
        row the reason names) is sent alone from then on."""
        self._transitions(rows, (ObjectState.SUBMITTED,), ObjectState.FAILED,
                          "failures = failures + 1, key_gen = key_gen + 1, error = :error",
                          culprit=culprit, error=reason, job_id=job_id, detail=reason)

    def companions(self, row: LedgerRecord) -> list[LedgerRecord]:
        """The other rows of ``row``'s job (the same job id on the same target), or of its create call
        while its outcome is unknown (``submitting``: the same batch)."""
        params: tuple[Any, ...]
        if row.job_id is not None and row.state is not ObjectState.SUBMITTING:
            where, params = "job_id = ? AND target = ?", (row.job_id, row.target)
        elif row.state is ObjectState.SUBMITTING and row.batch is not None:
            where, params = "batch = ?", (row.batch,)
        else:
            return []
        with self._lock:
            found = self._db.execute(f"SELECT {_COLUMNS} FROM objects WHERE {where} AND id <> ? ORDER BY id",
                                     (*params, row.id)).fetchall()
        return [_record(r) for r in found]

    def job_sizes(self, job_ids: Sequence[str]) -> dict[str, int]:
        """How many of the owner's objects each of ``job_ids`` imports."""
        if not job_ids:
            return {}
        where, params = self._db.any_of("job_id", job_ids)
        with self._lock:
            return {str(job): int(n) for job, n in self._db.execute(
                f"SELECT job_id, COUNT(*) FROM objects WHERE {where} AND target = ? GROUP BY job_id",
                (*params, self.owner))}

    def job_states(self, job_ids: Sequence[str]) -> dict[str, str]:
        """The state of the owner's rows of each of ``job_ids`` (``submitted`` while any waits on it)."""
        if not job_ids:
            return {}
        where, params = self._db.any_of("job_id", job_ids)
        found: dict[str, str] = {}
        with self._lock:
            for job, state in self._db.execute(
                    f"SELECT job_id, state FROM objects WHERE {where} AND target = ?", (*params, self.owner)):
                if found.get(str(job)) != ObjectState.SUBMITTED.value:
                    found[str(job)] = str(state)
        return found

    def jobs_held(self) -> int:
        """How many jobs the owner's target holds for this ledger, or may hold: distinct job ids of
        ``submitted`` rows, and create calls (batches) of ``submitting`` ones."""
        with self._lock:
            return int(self._db.execute(
                "SELECT (SELECT COUNT(DISTINCT job_id) FROM objects WHERE state='submitted' AND target=?) + "
                "(SELECT COUNT(DISTINCT COALESCE(batch, -id)) FROM objects WHERE state='submitting' "
                "AND target=?)", (self.owner, self.owner)).fetchone()[0])

    def rearm(self, *, match: Callable[[str], bool] | None = None, uncertain: bool = False) -> list[str]:
        """Failed and invalid (or, with ``uncertain``, uncertain) rows whose URL ``match`` accepts (all by
        default) -> pending with a fresh failure budget and a fresh idempotency key (a server that
        honours keys must not hand back the old job); an invalid object is checked again before it is
        submitted. Returns the URLs re-armed."""
        states = ("uncertain",) if uncertain else ("failed", "invalid")
        now = self._clock()
        rearmed: list[str] = []
        with self._tx():
            rows = self._db.execute(
                f"SELECT id, url, state FROM objects WHERE state IN ({','.join('?' * len(states))})",
                states).fetchall()
            for object_id, url, state in rows:
                if match is not None and not match(url):
                    continue
                self._db.execute("UPDATE objects SET state='pending', failures=0, key_gen=key_gen+1, "
                                 "updated_at=? WHERE id=?", (now, object_id))
                self._event(object_id, now, ObjectState.PENDING, None, f"re-armed from {state}")
                rearmed.append(url)
        return rearmed

    # -- internals ---------------------------------------------------------------------------

    def _transitions(self, rows: int | Sequence[int], sources: tuple[ObjectState, ...], target: ObjectState,
                     sets: str, *, culprit: int | None = None, **values: Any) -> None:
        """Move every row of ``rows`` from one of ``sources`` to ``target`` in one durable transaction;
        ``culprit`` (one of them) is marked to be sent alone."""
        def body() -> None:
            for row in _ids(rows):
                self._move(row, sources, target, sets + (", alone = 1" if row == culprit else ""), **values)

        self._durably(body)

    def _move(
        self,
        row: int,
        sources: tuple[ObjectState, ...],
        target: ObjectState,
        sets: str,
        *,
        job_id: str | None = None,
        error: str | None = None,
        detail: str | None = None,
        imported: int | None = None,
    ) -> int:
        """The body of a transition, inside the caller's transaction."""
        now = self._clock()
        marks = ",".join(f":s{i}" for i in range(len(sources)))
        found = self._db.execute(
            f"UPDATE objects SET state=:state, updated_at=:now, {sets} "
            f"WHERE id=:row AND state IN ({marks}) RETURNING id, failures",
            {"state": target.value, "now": now, "row": row, "job": job_id, "error": error,
             "imported": imported, **{f"s{i}": s.value for i, s in enumerate(sources)}},
        ).fetchone()
        if found is None:
            have = self._db.execute("SELECT url, state FROM objects WHERE id=?", (row,)).fetchone()
            raise LedgerError(f"{have[0] if have else f'row {row}'}: cannot move to {target.value} from "
                              f"{have[1] if have else 'no row'}")
        self._event(found[0], now, target, job_id, detail)
        return int(found[1])

    def _durably(self, body: Callable[[], T]) -> T:
        """Run ``body`` in a transaction committed with ``synchronous=FULL`` before returning: a group
        commit. Transitions that arrive while another thread holds the connection queue up, and the
        next thread to get it commits them all with one fsync; each body runs in a savepoint of its
        own, so one that raises (an impossible move) is undone alone. Nobody returns before the
        commit that holds its change, so a ``submitting`` row is on disk before its create call and
        a job id is on disk before it is reported."""
        op: _Op[T] = _Op(body)
        with self._queue_lock:
            self._queue.append(op)
        with self._lock:
            if not op.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit(batch)
        if op.error is not None:
            raise op.error
        return op.result  # type: ignore[return-value]

    def _commit(self, batch: list[_Op[Any]]) -> None:
        try:
            self._db.begin(durable=True)
            try:
                for op in batch:
                    self._db.execute("SAVEPOINT op")
                    try:
                        op.result = op.body()
                    except Exception as exc:
                        self._db.execute("ROLLBACK TO op")
                        op.error = exc
                    self._db.execute("RELEASE op")
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        except Exception as exc:  # the commit itself failed: nothing in the batch happened
            for op in batch:
                op.error = exc
        finally:
            for op in batch:
                op.done = True

    def _event(self, object_id: int, at: float, state: ObjectState, job_id: str | None,
               detail: str | None) -> None:
        self._db.execute("INSERT INTO events (object_id, at, state, job_id, detail) VALUES (?,?,?,?,?)",
                         (object_id, at, state.value, job_id, detail))

    def _tx(self, *, durable: bool = True) -> _Transaction:
        return _Transaction(self._db, self._lock, durable=durable)

    # -- moving a whole ledger (``ledger copy``) ----------------------------------------------

    def is_empty(self) -> bool:
        """No rows, no history, no bookkeeping beyond the schema's own marks."""
        with self._lock:
            meta = {str(r[0]) for r in self._db.execute("SELECT key FROM meta")}
            return meta <= {"app", "schema", "run"} and all(
                self._db.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() is None
                for t in ("objects", "events", "job_progress"))

    def dump(self, table: str) -> Iterator[tuple[Any, ...]]:
        """Every row of ``table`` (one of :data:`TABLES`), in key order, fetched in pages; the run's
        own record stays behind."""
        columns, key = ", ".join(TABLES[table]), _KEYS[table]
        last: Any = None
        while True:
            after = "" if last is None else f"WHERE {key} > ?"
            with self._lock:
                rows = self._db.execute(f"SELECT {columns} FROM {table} {after} ORDER BY {key} LIMIT ?",
                                        (*([] if last is None else [last]), _CHUNK * 10)).fetchall()
            if not rows:
                return
            yield from (tuple(r) for r in rows if table != "meta" or r[0] not in ("app", "schema", "run"))
            last = rows[-1][TABLES[table].index(key)]

    def load(self, tables: dict[str, Iterator[tuple[Any, ...]]]) -> dict[str, int]:
        """Insert every table's rows in one durable transaction (all or nothing); counts per table."""
        counts: dict[str, int] = {}
        with self._tx():
            for table, rows in tables.items():
                columns = TABLES[table]
                counted = _Counted(rows)
                self._db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                                     f"({','.join('?' * len(columns))})", iter(counted))
                counts[table] = counted.n
            self._db.after_copy()
        return counts


class _Counted:
    def __init__(self, rows: Iterator[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.n = 0

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for row in self.rows:
            self.n += 1
            yield row


class _Sqlite:
    """A SQLite file in WAL mode; transactions ``BEGIN IMMEDIATE``; durable ones ``synchronous=FULL``."""

    kind = "SQLite file"
    for_update = ""

    def __init__(self, path: Path, *, read_only: bool = False, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self.name = str(path)
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


def _ids(rows: int | Sequence[int]) -> list[int]:
    return [rows] if isinstance(rows, int) else list(rows)


def _file_identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


class _Op(Generic[T]):
    """One queued transition of a group commit."""

    __slots__ = ("body", "done", "error", "result")

    def __init__(self, body: Callable[[], T]) -> None:
        self.body = body
        self.done = False
        self.error: BaseException | None = None
        self.result: T | None = None


class _Transaction:
    """A transaction under the connection lock; rolls back on any exception.

    ``durable`` commits so as to survive a power cut (SQLite ``synchronous=FULL``, PostgreSQL
    ``synchronous_commit=on``); otherwise so as to survive a crash of the process (``NORMAL``; ``off``:
    the server keeps the commit, a crash of the server may lose it), all a re-derivable row needs.
    """

    def __init__(self, db: Backend, lock: threading.Lock, *, durable: bool) -> None:
        self._db = db
        self._lock = lock
        self._durable = durable

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            self._db.begin(durable=self._durable)
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None:
                try:
                    self._db.execute("COMMIT")
                except (sqlite3.Error, LedgerError):  # a full disk, say: leave no transaction open
                    if self._db.in_transaction():
                        self._db.execute("ROLLBACK")
                    raise
            elif self._db.in_transaction():  # SQLite rolls back by itself on a full disk or an I/O error
                self._db.execute("ROLLBACK")
        finally:
            self._lock.release()


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


# Every public method reports SQLite failures as a LedgerError: the one place they are translated.
for _name, _method in list(vars(Ledger).items()):
    if not _name.startswith("_") and inspect.isfunction(_method):
        setattr(Ledger, _name, _translating(_method))
