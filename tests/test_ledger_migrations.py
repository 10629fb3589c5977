"""Migrations, from a ledger of each older schema version: built here with the tables that version
wrote, opened by this orchestrator, then its rows and recorded version checked. Forward only, in one
transaction: a migration that fails leaves the ledger as it was. PostgreSQL ledgers exist from schema 3
on (the version that added them)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orchestrator.api import ledger_location
from orchestrator.errors import LedgerError
from orchestrator.ledger import migrations
from orchestrator.ledger.factory import open_ledger
from orchestrator.models import ObjectState
from tests.conftest import fresh_schema
from tests.pgserver import PgServer

OWNER = "zilliz-v2 cluster=x db=default"
SOURCES = ["s3://a/", "file:///lake/day=01/"]
# What schema 1 wrote: no destination, a source by its position, no row counts.
SCHEMA_1_TABLES = """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta VALUES ('app', 'orchestrator-ledger'), ('schema', '1');
    CREATE TABLE objects (id INTEGER PRIMARY KEY, url TEXT NOT NULL, version TEXT NOT NULL,
        source INTEGER NOT NULL, collection TEXT NOT NULL, partition TEXT, size INTEGER NOT NULL,
        state TEXT NOT NULL, job_id TEXT, attempts INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0, error TEXT, created_at REAL NOT NULL,
        updated_at REAL NOT NULL, UNIQUE (url, version));
    CREATE TABLE events (id INTEGER PRIMARY KEY, object_id INTEGER NOT NULL REFERENCES objects (id),
        at REAL NOT NULL, state TEXT NOT NULL, job_id TEXT, detail TEXT);
"""
SCHEMA_1 = SCHEMA_1_TABLES + """
    INSERT INTO objects VALUES (1, 'file:///lake/day%3D01/a.parquet', 'e', 1, 'c', NULL, 5, 'completed',
        'j1', 1, 0, NULL, 1, 2);
    INSERT INTO events VALUES (1, 1, 2, 'completed', 'j1', 'job completed');
"""
# What schemas 2 and 3 wrote (3 changed the rows, not the tables): destinations, sources by URL, row
# counts, the evidence of a claim; no group columns yet.
SCHEMA_2 = """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta VALUES ('app', 'orchestrator-ledger'), ('schema', '{version}');
    CREATE TABLE objects (id INTEGER PRIMARY KEY, url TEXT NOT NULL, version TEXT NOT NULL,
        target TEXT NOT NULL, source TEXT NOT NULL, collection TEXT NOT NULL, partition TEXT,
        size INTEGER NOT NULL, state TEXT NOT NULL, job_id TEXT, attempts INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0, error TEXT, rows INTEGER, imported_rows INTEGER,
        sent_as TEXT, server_at REAL, key_gen INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
        updated_at REAL NOT NULL);
    CREATE UNIQUE INDEX objects_import
        ON objects (url, version, target, collection, COALESCE(partition, ''));
    CREATE INDEX objects_state ON objects (state);
    CREATE INDEX objects_job ON objects (job_id);
    CREATE TABLE events (id INTEGER PRIMARY KEY, object_id INTEGER NOT NULL REFERENCES objects (id),
        at REAL NOT NULL, state TEXT NOT NULL, job_id TEXT, detail TEXT);
    CREATE INDEX events_object ON events (object_id);
    CREATE INDEX events_job ON events (job_id);
    CREATE TABLE job_progress (job_id TEXT PRIMARY KEY, progress REAL, changed_at REAL NOT NULL,
        seen_at REAL NOT NULL);
    INSERT INTO objects VALUES (1, '{url}', 'e', '{owner}', '{source}', 'c', NULL, 5, 'submitted', 'j1',
        1, 0, NULL, 10, NULL, 'a.parquet', 1.5, 2, 1, 2);
    INSERT INTO events VALUES (1, 1, 2, 'submitted', 'j1', 'job created');
"""
ENCODED, TYPED = "file:///lake/day%3D01/a.parquet", "file:///lake/day=01/a.parquet"


# What schema 4 added to schema 3's tables: the group columns.
GROUP_COLUMNS = """
    ALTER TABLE objects ADD COLUMN batch INTEGER;
    ALTER TABLE objects ADD COLUMN alone INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX objects_batch ON objects (batch);
"""


def old_ledger(path: Path, version: int) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_1 if version == 1 else SCHEMA_2.format(
            version=version, url=ENCODED, owner=OWNER, source="file:///lake/day%3D01/"))
        if version >= 4:
            db.executescript(GROUP_COLUMNS)
        if version >= 5:  # schema 5's run loads: a column here, the loads table made with the rest
            db.executescript("ALTER TABLE objects ADD COLUMN load_id INTEGER;")
        if version >= 6:  # schema 6's part of a failed job of several
            db.executescript("ALTER TABLE objects ADD COLUMN part INTEGER;")


def stored(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def test_the_migrations_are_named_in_order() -> None:
    assert migrations.SCHEMA == len(migrations.MIGRATIONS) + 1 == 7
    for version, migration in enumerate(migrations.MIGRATIONS, start=1):
        assert (migration.__doc__ or "").startswith(f"Schema {version} -> {version + 1}:"), migration


@pytest.mark.parametrize("version", range(1, migrations.SCHEMA))
def test_a_sqlite_ledger_of_each_older_version_is_migrated(tmp_path: Path, version: int) -> None:
    path = tmp_path / "old.sqlite"
    old_ledger(path, version)
    with open_ledger(path, owner=OWNER, sources=SOURCES) as ledger:
        (row,) = ledger.records()
        assert (row.target, row.batch, row.alone, row.part) == (OWNER, None, False, None)
        assert ledger.last_listed("s3://a/") is None  # the listings table is there, empty
        if version == 1:  # a destination and a source by URL; local URLs as typed from schema 3 on
            assert (row.url, row.source, row.state, row.job_id, row.rows) == (
                TYPED, SOURCES[1], ObjectState.COMPLETED, "j1", None)
        else:
            assert (row.url, row.state, row.rows, row.sent_as, row.server_at, row.key_gen) == (
                TYPED if version == 2 else ENCODED, ObjectState.SUBMITTED, 10, "a.parquet", 1.5, 2)
            assert row.source == ("file:///lake/day=01/" if version == 2 else "file:///lake/day%3D01/")
            # (what schema 4 wrote is schema 3's, with the group columns)
        assert ledger.known_job_ids(["j1"]) == {"j1"}  # the history came along
    assert stored(path, "SELECT found FROM objects") == [(None,)]  # found before schema 5: unknown
    assert stored(path, "SELECT value FROM meta WHERE key='schema'") == [(str(migrations.SCHEMA),)]
    fresh = tmp_path / "fresh.sqlite"
    open_ledger(fresh).close()
    assert shape(path) == shape(fresh)  # the tables, columns and indexes a new ledger has


def shape(path: Path) -> tuple[set[tuple[object, ...]], set[object]]:
    return (set(stored(path, "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")),
            {column[1] for column in stored(path, "PRAGMA table_info(objects)")})


def test_a_migration_that_fails_leaves_the_ledger_as_it_was(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.sqlite"
    old_ledger(path, 2)

    def broken(_db: object, _opener: object) -> None:
        raise LedgerError("the last migration broke")

    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS[:-1], broken))
    with pytest.raises(LedgerError, match="the last migration broke"):
        open_ledger(path, owner=OWNER)
    assert stored(path, "SELECT value FROM meta WHERE key='schema'") == [("2",)]
    assert stored(path, "SELECT url FROM objects") == [(ENCODED,)]  # schema 3's change undone too
    monkeypatch.undo()
    with open_ledger(path, owner=OWNER) as ledger:
        assert [r.url for r in ledger.records()] == [TYPED]


@pytest.mark.parametrize("version", [2, 3, 4])
def test_a_postgresql_ledger_of_schema_3_is_migrated(pg_server: PgServer, version: int) -> None:
    """A PostgreSQL ledger is made at this version by dropping what came after it (the group columns
    of schema 4, the loads of 5, the part of 6, the discovery of 7); schema 2's tables are schema 3's."""
    where = ledger_location(fresh_schema(pg_server))
    assert not isinstance(where, Path)
    open_ledger(where).close()
    name = where.schema
    pg_server.sql(f"DROP INDEX {name}.objects_load; DROP TABLE {name}.loads; DROP TABLE {name}.listings; "
                  f"ALTER TABLE {name}.objects DROP COLUMN load_id, DROP COLUMN part, DROP COLUMN found; "
                  f"UPDATE {name}.meta SET value = '{version}' WHERE key = 'schema'")
    if version < 4:
        pg_server.sql(f"DROP INDEX {name}.objects_batch; ALTER TABLE {name}.objects DROP COLUMN batch, "
                      f"DROP COLUMN alone")
    pg_server.sql(f"INSERT INTO {name}.objects (url, version, target, source, collection, size, state, "
                  "job_id, created_at, updated_at) VALUES (%s, 'e', %s, 'file:///lake/', 'c', 5, "
                  "'submitted', 'j1', 1, 2)", (ENCODED, OWNER))
    with open_ledger(where, owner=OWNER) as ledger:
        (row,) = ledger.records()
        assert (row.url, row.batch, row.alone, row.job_id) == (TYPED if version == 2 else ENCODED, None,
                                                               False, "j1")
        ledger.note_listed("s3://a/", 7.5)
        assert ledger.last_listed("s3://a/") == 7.5
    assert pg_server.sql(f"SELECT value FROM {name}.meta WHERE key = 'schema'") == [(str(migrations.SCHEMA),)]
    assert {c for (c,) in pg_server.sql(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = "
        "'objects'", (name,))} >= {"batch", "alone", "load_id", "part", "found"}
