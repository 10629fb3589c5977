"""``ledger copy``: a whole ledger (objects, events, job progress, run bookkeeping) into an empty one of
either kind, in one transaction, holding both ledgers' run locks. Rows keep their ids; the run's own
record stays behind."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import LedgerError
from .factory import Location, hold_ledger, kind, open_ledger
from .reads import CHUNK
from .schema import KEYS, TABLES
from .session import Session

_OWN_MARKS = ("app", "schema", "run")  # meta keys each ledger writes for itself


def copy_ledger(source: Location, destination: Location, *, wait_lock_s: float = 0.0) -> dict[str, int]:
    """Copy the ledger at ``source`` into the empty one at ``destination``; returns the rows copied per
    table. The source must be of this orchestrator's schema (it is not migrated)."""
    if kind(source).missing(source):
        raise LedgerError(f"{kind(source).display(source)}: no such ledger")
    if type(source) is type(destination) and kind(source).same(source, destination):
        raise LedgerError(f"{kind(destination).display(destination)}: the source and the destination are "
                          "the same ledger")
    with hold_ledger(source, wait_s=wait_lock_s), hold_ledger(destination, wait_s=wait_lock_s), \
            open_ledger(source, upgrade=False) as src, open_ledger(destination) as dst:
        if not is_empty(dst):
            raise LedgerError(f"{dst.name}: the destination ledger is not empty; copy into a new file or "
                              "schema (nothing was written)")
        return load(dst, {table: dump(src, table) for table in TABLES})


def is_empty(s: Session) -> bool:
    """No rows, no history, no bookkeeping beyond the schema's own marks."""
    with s.read() as db:
        meta = {str(r[0]) for r in db.execute("SELECT key FROM meta")}
        return meta <= set(_OWN_MARKS) and all(
            db.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() is None
            for t in ("objects", "events", "job_progress"))


def dump(s: Session, table: str) -> Iterator[tuple[Any, ...]]:
    """Every row of ``table`` (one of :data:`~.schema.TABLES`), in key order, fetched in pages; the
    run's own record stays behind."""
    columns, key = ", ".join(TABLES[table]), KEYS[table]
    last: Any = None
    while True:
        after = "" if last is None else f"WHERE {key} > ?"
        with s.read() as db:
            rows = db.execute(f"SELECT {columns} FROM {table} {after} ORDER BY {key} LIMIT ?",
                              (*([] if last is None else [last]), CHUNK * 10)).fetchall()
        if not rows:
            return
        yield from (tuple(r) for r in rows if table != "meta" or r[0] not in _OWN_MARKS)
        last = rows[-1][TABLES[table].index(key)]


def load(s: Session, tables: dict[str, Iterator[tuple[Any, ...]]]) -> dict[str, int]:
    """Insert every table's rows in one durable transaction (all or nothing); counts per table."""
    counts: dict[str, int] = {}
    with s.tx() as db:
        for table, rows in tables.items():
            columns = TABLES[table]
            counted = _Counted(rows)
            db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                           f"({','.join('?' * len(columns))})", iter(counted))
            counts[table] = counted.n
        db.after_copy()
    return counts


class _Counted:
    def __init__(self, rows: Iterator[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.n = 0

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for row in self.rows:
            self.n += 1
            yield row
