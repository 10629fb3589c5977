"""Ledgers outlive releases: each change of the tables is a named migration, in order, and the ledger
records the version it is at (``meta.schema``).

Opening a ledger of an older version runs the migrations it lacks, forward only, in one exclusive
transaction with the creation of what is missing: a crash leaves the old version or the new one. A
ledger written by a newer orchestrator is refused. A migration is a function of the open connection
and of what the opening process knows (its target, its sources), run inside that transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from ..config.urls import canonical_file_url
from ..errors import LedgerError
from . import schema
from .backend import Backend


class Opener(NamedTuple):
    """What the process opening the ledger knows: rows written before destinations were recorded are
    taken to be ``owner``'s, and a source recorded by position is named by its URL in ``sources``."""

    owner: str
    sources: Sequence[str]


def destinations_and_source_urls(db: Backend, opener: Opener) -> None:
    """Schema 1 -> 2: rows gain their destination (the owner: the only target they can have been
    written for, as far as this ledger can tell), their source by URL instead of position, and the
    columns added since (rows, imported rows) where they are missing."""
    columns = db.columns("objects")
    rows = "rows" if "rows" in columns else "NULL"
    imported = "imported_rows" if "imported_rows" in columns else "NULL"
    cases = " ".join(f"WHEN {i} THEN ?" for i in range(len(opener.sources)))
    source = f"CASE source {cases} ELSE 'sources[' || source || ']' END" if cases else \
        "'sources[' || source || ']'"
    db.execute("DROP INDEX IF EXISTS objects_state")
    db.execute("DROP INDEX IF EXISTS objects_job")
    db.execute(schema.OBJECTS.replace("objects (", "objects_v2 (", 1))
    db.execute(
        "INSERT INTO objects_v2 (id, url, version, target, source, collection, partition, size, state, "
        "job_id, attempts, failures, error, rows, imported_rows, created_at, updated_at) "
        f"SELECT id, url, version, ?, {source}, collection, partition, size, state, job_id, attempts, "
        f"failures, error, {rows}, {imported}, created_at, updated_at FROM objects",
        (opener.owner, *opener.sources))
    db.execute("DROP TABLE objects")
    db.execute("ALTER TABLE objects_v2 RENAME TO objects")


def local_urls_as_typed(db: Backend, _opener: Opener) -> None:
    """Schema 2 -> 3: local files' URLs (and local sources') encode only what a URI must, so ``day=01``
    is stored as typed instead of ``day%3D01``. ``sent_as`` keeps what was sent, which is what a job
    list reports."""
    for column in ("url", "source"):
        rows = db.execute(  # the pattern as a parameter: psycopg reads % in the text itself
            f"SELECT id, {column} FROM objects WHERE {column} LIKE ?", ("file://%",)).fetchall()
        db.executemany(f"UPDATE objects SET {column}=? WHERE id=?",
                       iter([(canonical_file_url(value), row_id) for row_id, value in rows
                             if canonical_file_url(value) != value]))


def group_columns(db: Backend, _opener: Opener) -> None:
    """Schema 3 -> 4: rows gain ``batch`` (the claim that sent several objects in one job) and ``alone``
    (an object to send in a job of its own)."""
    columns = db.columns("objects")
    if "batch" not in columns:
        db.execute("ALTER TABLE objects ADD COLUMN batch INTEGER")
    if "alone" not in columns:
        db.execute("ALTER TABLE objects ADD COLUMN alone INTEGER NOT NULL DEFAULT 0")


def load_column(db: Backend, _opener: Opener) -> None:
    """Schema 4 -> 5: rows gain ``load_id`` (the run's load they were sent in, with
    ``settings.visibility: per_run``); the ``loads`` table itself is new, made with the rest."""
    if "load_id" not in db.columns("objects"):
        db.execute("ALTER TABLE objects ADD COLUMN load_id INTEGER")


def split_parts(db: Backend, _opener: Opener) -> None:
    """Schema 5 -> 6: rows gain ``part`` (the part of a failed job of several an object is sent again
    in: halves until the failing file stands alone)."""
    if "part" not in db.columns("objects"):
        db.execute("ALTER TABLE objects ADD COLUMN part INTEGER")


def discovery(db: Backend, _opener: Opener) -> None:
    """Schema 6 -> 7: rows gain ``found`` (how the object was discovered: listing, event, inventory;
    NULL before: a listing), and ``listings`` (when each source was last listed whole) is created with
    the tables that are missing."""
    if "found" not in db.columns("objects"):
        db.execute("ALTER TABLE objects ADD COLUMN found TEXT")


# In order: the migration at index i takes a ledger of schema i + 1 to schema i + 2.
MIGRATIONS: tuple[Callable[[Backend, Opener], None], ...] = (
    destinations_and_source_urls,
    local_urls_as_typed,
    group_columns,
    load_column,
    split_parts,
    discovery,
)
SCHEMA = len(MIGRATIONS) + 1  # the version this orchestrator writes


def upgrade(db: Backend, opener: Opener, *, allowed: bool = True) -> None:
    """Create the ledger, or bring it to :data:`SCHEMA`, in one exclusive transaction; refuse a newer
    one, and (not ``allowed``) an older one."""
    db.begin(durable=True, exclusive=True)
    try:
        existing = db.tables()
        if existing and "meta" not in existing:
            raise LedgerError(f"{db.name}: this {db.kind} is not an orchestrator ledger")
        version = schema.stored_version(db, existing)
        if version > SCHEMA:
            raise LedgerError(
                f"{db.name}: written by a newer orchestrator (ledger schema {version}; this one "
                f"reads up to {SCHEMA}): upgrade orchestrator, or point `ledger:` elsewhere")
        if 0 < version < SCHEMA and not allowed:
            raise LedgerError(f"{db.name}: ledger schema {version}: run orchestrator on it "
                              "once (it migrates the ledger), then try again")
        if version > 0:
            for migration in MIGRATIONS[version - 1:]:
                migration(db, opener)
        schema.create(db)
        db.execute("INSERT INTO meta VALUES ('app', ?) ON CONFLICT (key) DO NOTHING", (schema.APP,))
        db.execute("INSERT INTO meta VALUES ('schema', ?) ON CONFLICT (key) DO UPDATE "
                   "SET value = excluded.value", (str(SCHEMA),))
        db.execute("COMMIT")
    except BaseException:
        schema.rollback(db)
        raise
    schema.check_app(db)

