"""What the planner, the submitter and the job lifecycle read: an object's history, the rows of a call
or a job, the jobs this ledger knows. Indexed queries in chunks: the listing streams through, and the
ledger is never loaded whole."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..models import LedgerRecord, ObjectState, PastImport
from .schema import COLUMNS, PAST_COLUMNS, STATES
from .session import Session

CHUNK = 500


def record(row: tuple[Any, ...]) -> LedgerRecord:
    """A row of :data:`~orchestrator.ledger.schema.COLUMNS` as a record."""
    (url, version, source, collection, partition, state, job_id, attempts, failures, error, size, at, rows,
     imported, target, sent_as, server_at, key_gen, row_id, batch, alone, load_id, part, found) = row
    return LedgerRecord(url, version, source, collection, partition, STATES[state], job_id, attempts,
                        failures, error, size, at, rows, imported, target, sent_as, server_at, key_gen,
                        row_id, batch, bool(alone), load_id, part, found)


def history(s: Session, urls: Sequence[str]) -> dict[str, list[LedgerRecord]]:
    """Every row for each URL (all versions, oldest first), one indexed query per chunk of URLs:
    the listing streams through in batches, the ledger is never loaded whole."""
    out: dict[str, list[LedgerRecord]] = {}
    with s.read() as db:
        for start in range(0, len(urls), CHUNK):
            where, params = db.any_of("url", urls[start:start + CHUNK])
            for row in db.execute(f"SELECT {COLUMNS} FROM objects WHERE {where} ORDER BY id", params):
                rec = record(row)
                out.setdefault(rec.url, []).append(rec)
    return out


def past_imports(s: Session, urls: Sequence[str]) -> dict[str, list[PastImport]]:
    """:func:`history` as the planner reads it: every row for each URL (all versions, oldest first),
    only the fields that decide an action. Half the columns: a 1M no-op rerun looks up every
    listed object, and reading a column costs about as much as finding the row."""
    out: dict[str, list[PastImport]] = {}
    make, states = tuple.__new__, STATES
    with s.read() as db:
        for start in range(0, len(urls), CHUNK):
            where, params = db.any_of("url", urls[start:start + CHUNK])
            found = db.execute(f"SELECT {PAST_COLUMNS} FROM objects WHERE {where} ORDER BY id", params)
            for url, version, target, collection, partition, state, job_id, failures, error, alone, part \
                    in found:
                past = make(PastImport, (version, target, collection, partition, states[state], job_id,
                                         failures, error, alone == 1, part))
                if (rows := out.get(url)) is None:
                    out[url] = [past]
                else:
                    rows.append(past)
    return out


def records(s: Session, states: Sequence[ObjectState] = (), *, own: bool = False) -> Iterator[LedgerRecord]:
    """Rows in insertion order, optionally only those in ``states`` and (``own``) only the owner's;
    fetched in pages."""
    where = f"AND state IN ({','.join('?' * len(states))})" if states else ""
    params: list[Any] = [state.value for state in states]
    if own:
        where += " AND target = ?"
        params.append(s.owner)
    last = 0
    while True:
        with s.read() as db:
            rows = db.execute(f"SELECT id, {COLUMNS} FROM objects WHERE id > ? {where} ORDER BY id LIMIT ?",
                              (last, *params, CHUNK)).fetchall()
        if not rows:
            return
        for row in rows:
            yield record(row[1:])
        last = rows[-1][0]


def unfinished(s: Session, source: str, max_failures: int, *, since: float | None = None,
               ) -> Iterator[LedgerRecord]:
    """The owner's rows of ``source`` (its URL) that the planner would submit or retry: ``pending``, then
    ``failed`` fewer than ``max_failures`` times; only the newest row of each URL (an older version's
    row is moot), and (``since``) only those changed since then. Paged one state at a time through the
    state index: the cost follows the unfinished rows, never the ledger's size."""
    newest = ("NOT EXISTS (SELECT 1 FROM objects n WHERE n.url = o.url AND n.target = o.target "
              "AND n.id > o.id)")
    for state, below in ((ObjectState.PENDING, ()), (ObjectState.FAILED, (max_failures,))):
        where = f"source = ? AND target = ? AND updated_at >= ?{' AND failures < ?' * len(below)}"
        params = (source, s.owner, -1.0 if since is None else since, *below)
        last = 0
        while True:
            with s.read() as db:
                rows = db.execute(f"SELECT id, {COLUMNS} FROM objects o WHERE state = ? AND id > ? "
                                  f"AND {where} AND {newest} ORDER BY id LIMIT ?",
                                  (state.value, last, *params, CHUNK)).fetchall()
            if not rows:
                break
            yield from (record(row[1:]) for row in rows)
            last = rows[-1][0]


def known_job_ids(s: Session, job_ids: Sequence[str]) -> set[str]:
    """Which of ``job_ids`` this ledger has ever recorded for the owner's target (job ids are unique
    per server, not across them), replaced (failed) ones included."""
    found: set[str] = set()
    with s.read() as db:
        for start in range(0, len(job_ids), CHUNK):
            where, params = db.any_of("e.job_id", job_ids[start:start + CHUNK])
            found.update(str(r[0]) for r in db.execute(
                "SELECT DISTINCT e.job_id FROM events e JOIN objects o ON o.id = e.object_id "
                f"WHERE {where} AND o.target = ?", (*params, s.owner)))
    return found


def get(s: Session, url: str, version: str) -> LedgerRecord | None:
    """The owner's row for this object version (the most recent destination, if several)."""
    with s.read() as db:
        row = db.execute(f"SELECT {COLUMNS} FROM objects WHERE url=? AND version=? "
                         "ORDER BY target = ? DESC, id DESC", (url, version, s.owner)).fetchone()
    return None if row is None else record(row)


def row(s: Session, row_id: int) -> LedgerRecord | None:
    """The row ``row_id``, if it exists."""
    with s.read() as db:
        found = db.execute(f"SELECT {COLUMNS} FROM objects WHERE id=?", (row_id,)).fetchone()
    return None if found is None else record(found)


def rows(s: Session, row_ids: Sequence[int]) -> list[LedgerRecord]:
    """The rows of ``row_ids`` (those that exist), in id order: one query for a create call's rows."""
    with s.read() as db:
        where, params = db.any_of("id", row_ids)
        found = db.execute(f"SELECT {COLUMNS} FROM objects WHERE {where} ORDER BY id", params).fetchall()
    return [record(r) for r in found]


def by_reported_name(s: Session, name: str, collection: str | None) -> list[LedgerRecord]:
    """The owner's rows whose object was sent exactly as ``name`` (how a server that takes keys,
    like Milvus, reports it), in ``collection`` when given."""
    with s.read() as db:
        found = db.execute(f"SELECT {COLUMNS} FROM objects WHERE target = ? AND sent_as = ? ORDER BY id",
                           (s.owner, name)).fetchall()
    return [r for r in map(record, found) if collection in (None, r.collection)]


def companions(s: Session, row: LedgerRecord) -> list[LedgerRecord]:
    """The other rows of ``row``'s job (the same job id on the same target), or of its create call
    while its outcome is unknown (``submitting``: the same batch)."""
    params: tuple[Any, ...]
    if row.job_id is not None and row.state is not ObjectState.SUBMITTING:
        where, params = "job_id = ? AND target = ?", (row.job_id, row.target)
    elif row.state is ObjectState.SUBMITTING and row.batch is not None:
        where, params = "batch = ?", (row.batch,)
    else:
        return []
    with s.read() as db:
        found = db.execute(f"SELECT {COLUMNS} FROM objects WHERE {where} AND id <> ? ORDER BY id",
                           (*params, row.id)).fetchall()
    return [record(r) for r in found]


def count(s: Session, state: ObjectState, *, own: bool = False) -> int:
    """Rows in ``state`` (``own``: of the owner's target only)."""
    where = " AND target = ?" if own else ""
    with s.read() as db:
        return int(db.execute(f"SELECT COUNT(*) FROM objects WHERE state = ?{where}",
                              (state.value, *([s.owner] if own else []))).fetchone()[0])


def job_sizes(s: Session, job_ids: Sequence[str]) -> dict[str, int]:
    """How many of the owner's objects each of ``job_ids`` imports."""
    if not job_ids:
        return {}
    with s.read() as db:
        where, params = db.any_of("job_id", job_ids)
        return {str(job): int(n) for job, n in db.execute(
            f"SELECT job_id, COUNT(*) FROM objects WHERE {where} AND target = ? GROUP BY job_id",
            (*params, s.owner))}


def job_states(s: Session, job_ids: Sequence[str]) -> dict[str, str]:
    """The state of the owner's rows of each of ``job_ids`` (``submitted`` while any waits on it)."""
    if not job_ids:
        return {}
    submitted = ObjectState.SUBMITTED.value
    found: dict[str, str] = {}
    with s.read() as db:
        where, params = db.any_of("job_id", job_ids)
        for job, state in db.execute(f"SELECT job_id, state FROM objects WHERE {where} AND target = ?",
                                     (*params, s.owner)):
            if found.get(str(job)) != submitted:
                found[str(job)] = str(state)
    return found


def jobs_held(s: Session) -> int:
    """How many jobs the owner's target holds for this ledger, or may hold: distinct job ids of
    ``submitted`` rows, and create calls (batches) of ``submitting`` ones."""
    with s.read() as db:
        return int(db.execute(
            "SELECT (SELECT COUNT(DISTINCT job_id) FROM objects WHERE state=? AND target=?) + "
            "(SELECT COUNT(DISTINCT COALESCE(batch, -id)) FROM objects WHERE state=? AND target=?)",
            (ObjectState.SUBMITTED.value, s.owner, ObjectState.SUBMITTING.value, s.owner)).fetchone()[0])
