"""The ledger's tables as this orchestrator writes them, and what an open ledger must hold to be read.

One row per import (with how its object was found: listing, event, inventory), its events, the job
progress polled, the loads of ``settings.visibility: per_run`` (a run's jobs, committed together or not
at all: ``loads.py``), when each source was last listed whole (``listings``: the backfill of a source
whose objects come from events or an inventory), and a ``meta`` table of bookkeeping (the
app's mark, the schema version, the run record). An import is an object (its native URL and version)
*into a destination*: the target (``target``, the owner's identity: the API, the cluster or endpoint,
the database; :func:`orchestrator.api.target_identity`), the collection and the partition. ``migrations.py``
brings an older ledger up to these tables; :func:`check` refuses a ledger that holds what this
orchestrator did not make, or a state it does not know.
"""

from __future__ import annotations

import itertools
import re

from ..errors import LedgerError
from ..models import ObjectState
from ..terminal import clip, listing, printable
from .backend import Backend

APP = "orchestrator-ledger"
# A row's columns as :class:`~orchestrator.models.LedgerRecord` holds them.
COLUMNS = ("url, version, source, collection, partition, state, job_id, attempts, failures, error, size, "
           "updated_at, rows, imported_rows, target, sent_as, server_at, key_gen, id, batch, alone, load_id, "
           "part, found")
# What the planner reads of a row (:class:`~orchestrator.models.PastImport`), after the URL.
PAST_COLUMNS = "url, version, target, collection, partition, state, job_id, failures, error, alone, part"

OBJECTS = """
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
    load_id INTEGER,
    part INTEGER,
    found TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
)"""
DDL = OBJECTS + """;
CREATE UNIQUE INDEX IF NOT EXISTS objects_import
    ON objects (url, version, target, collection, COALESCE(partition, ''));
CREATE INDEX IF NOT EXISTS objects_state ON objects (state);
CREATE INDEX IF NOT EXISTS objects_job ON objects (job_id);
CREATE INDEX IF NOT EXISTS objects_batch ON objects (batch);
CREATE INDEX IF NOT EXISTS objects_load ON objects (load_id);
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
CREATE TABLE IF NOT EXISTS loads (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    started_at REAL NOT NULL,
    decided_at REAL,
    ended_at REAL
);
CREATE TABLE IF NOT EXISTS listings (
    source TEXT PRIMARY KEY,
    listed_at REAL NOT NULL
);
"""
# Every table and its columns, in the order ``ledger copy`` moves them (parents first).
TABLES = {
    "meta": ("key", "value"),
    "objects": ("id", "url", "version", "target", "source", "collection", "partition", "size", "state",
                "job_id", "attempts", "failures", "error", "rows", "imported_rows", "sent_as", "server_at",
                "key_gen", "batch", "alone", "load_id", "part", "found", "created_at", "updated_at"),
    "events": ("id", "object_id", "at", "state", "job_id", "detail"),
    "job_progress": ("job_id", "progress", "changed_at", "seen_at"),
    "loads": ("id", "target", "started_at", "decided_at", "ended_at"),
    "listings": ("source", "listed_at"),
}
KEYS = {"meta": "key", "objects": "id", "events": "id", "job_progress": "job_id", "loads": "id",
        "listings": "source"}
# What the schema holds that this orchestrator made (a backend adds its own: keys, sequences)
OWN = {*(("table", t) for t in TABLES),
       *(("index", name) for name in re.findall(r"CREATE (?:UNIQUE )?INDEX IF NOT EXISTS (\w+)", DDL))}
STATES = {s.value: s for s in ObjectState}


def create(db: Backend) -> None:
    """The tables and indexes, where missing, inside the caller's transaction."""
    for statement in DDL.split(";"):
        if statement.strip():
            db.execute(db.ddl(statement))


def stored_version(db: Backend, tables: set[str]) -> int:
    """The schema version the ledger records (0: none yet)."""
    if "meta" not in tables:
        return 0
    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    try:
        return int(row[0]) if row is not None else 0
    except ValueError:
        raise LedgerError(f"{db.name}: the ledger's schema version {row[0]!r} is not a number") from None


def check_app(db: Backend) -> None:
    """Refuse a database that this orchestrator did not make a ledger of."""
    app = db.execute("SELECT value FROM meta WHERE key='app'").fetchone() if "meta" in db.tables() else None
    if app is None or app[0] != APP:
        raise LedgerError(f"{db.name}: this {db.kind} is not an orchestrator ledger")


def check(db: Backend) -> None:
    """Refuse a ledger that could be read wrongly: foreign objects in its schema, unknown states."""
    _check_foreign(db)
    _check_states(db)


def _check_foreign(db: Backend) -> None:
    """Refuse a ledger whose schema holds what this orchestrator did not make: a trigger that deletes
    rows, a view, a rule or a policy changes what a query sees, and exactly once rests on what the
    ledger says."""
    found = sorted(db.schema_objects() - OWN)
    if found:
        shown = printable(listing([f"{kind} {name}" for kind, name in found], sep=", ", most=5))
        raise LedgerError(f"{db.name}: this {db.kind} holds what orchestrator did not make "
                          f"({shown}), which could change what the ledger says: refused; drop them "
                          "(keep reports and their triggers elsewhere)")


def _check_states(db: Backend) -> None:
    """Refuse a ledger holding a row whose state this orchestrator does not know: every command would
    read it differently (one leaves it out, another stops halfway). Each gap between the known
    states is one index range, so this costs a few index seeks at any ledger size."""
    known = sorted(STATES)
    gaps = ["state < ?", *(["state > ? AND state < ?"] * (len(known) - 1)), "state > ?"]
    params = [known[0], *(v for pair in itertools.pairwise(known) for v in pair), known[-1]]
    if "objects" not in db.tables():
        return
    row = db.execute(f"SELECT state, COUNT(*) FROM objects WHERE state IN (SELECT state FROM "
                     f"objects WHERE {' OR '.join(gaps)} LIMIT 1) GROUP BY state", params).fetchone()
    if row is not None:
        raise LedgerError(
            f"{db.name}: {row[1]} row(s) in state {printable(clip(str(row[0]), 64))!r}, which this "
            f"orchestrator does not know ({', '.join(s.value for s in ObjectState)}): refused, so that "
            "no command reads them wrongly; a newer orchestrator wrote them (upgrade), or someone edited "
            "the ledger (set those rows' state to 'uncertain', check them on the cluster, then `retry "
            "--uncertain`)")


def rollback(db: Backend) -> None:
    """Undo the open transaction, if the database has not already (SQLite does on a full disk or an
    I/O error): the error that caused it is the one to report."""
    if db.in_transaction():
        db.execute("ROLLBACK")
