"""Read-only operator views (``status``, ``show``, ``export``, the metrics): aggregated in SQL, never
the whole ledger in memory."""

from __future__ import annotations

from collections.abc import Sequence

from ..models import JobProgress, LedgerRecord, ObjectState
from .reads import record
from .schema import COLUMNS
from .session import Session

_SUBMITTED = ObjectState.SUBMITTED.value
# Rows a person may want to look at: refused, held, or pending after an error.
_FAILING = "state IN (?, ?, ?) OR (state = ? AND error IS NOT NULL)"
_FAILING_STATES = tuple(s.value for s in (ObjectState.FAILED, ObjectState.INVALID, ObjectState.UNCERTAIN,
                                          ObjectState.PENDING))


def counts(s: Session) -> dict[str, int]:
    """Rows per state."""
    with s.read() as db:
        found = db.execute("SELECT state, COUNT(*) FROM objects GROUP BY state").fetchall()
    return {str(state): int(n) for state, n in found}


def events(s: Session, url: str) -> list[tuple[float, str, str, str | None, str | None]]:
    """(time, version, state, job id, detail) for every transition of ``url``, oldest first."""
    with s.read() as db:
        return [
            (float(at), str(version), str(state), job, detail)
            for at, version, state, job, detail in db.execute(
                "SELECT e.at, o.version, e.state, e.job_id, e.detail FROM events e "
                "JOIN objects o ON o.id = e.object_id WHERE o.url=? ORDER BY e.id", (url,))
        ]


def group_counts(s: Session) -> list[tuple[str, str, str, int]]:
    """(source, collection, state, count) for every group that has rows."""
    with s.read() as db:
        return [(str(src), str(coll), str(state), int(n)) for src, coll, state, n in db.execute(
            "SELECT source, collection, state, COUNT(*) FROM objects "
            "GROUP BY source, collection, state ORDER BY source, collection, state")]


def oldest_submitted(s: Session) -> dict[tuple[str, str], LedgerRecord]:
    """Per (source, collection), the ``submitted`` row that has been running longest."""
    with s.read() as db:
        found = db.execute(
            f"SELECT {COLUMNS} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY source, collection "
            "ORDER BY updated_at, id) AS n FROM objects WHERE state=?) AS o WHERE n = 1", (_SUBMITTED,)
        ).fetchall()
    return {(rec.source, rec.collection): rec for rec in map(record, found)}


def submitted_before(s: Session, at: float) -> int:
    """How many ``submitted`` rows got their job before ``at``."""
    with s.read() as db:
        found = db.execute("SELECT COUNT(*) FROM objects WHERE state=? AND updated_at < ?",
                           (_SUBMITTED, at)).fetchone()
    return int(found[0])


def failing(s: Session, limit: int) -> tuple[int, list[LedgerRecord]]:
    """How many rows are failed, invalid, uncertain, or pending after an error, and the ``limit``
    most recent of them (each with its last error, an invalid one's with its problems)."""
    with s.read() as db:
        total = int(db.execute(f"SELECT COUNT(*) FROM objects WHERE {_FAILING}",
                               _FAILING_STATES).fetchone()[0])
        found = db.execute(f"SELECT {COLUMNS} FROM objects WHERE {_FAILING} "
                           "ORDER BY updated_at DESC, id DESC LIMIT ?", (*_FAILING_STATES, limit)).fetchall()
    return total, [record(row) for row in found]


def row_totals(s: Session) -> dict[tuple[str, str], tuple[int | None, int | None]]:
    """Expected (pre-flight footer) and imported (server) rows per (source, collection)."""
    with s.read() as db:
        return {(str(src), str(coll)): (None if rows is None else int(rows),
                                        None if done is None else int(done))
                for src, coll, rows, done in db.execute(
                    "SELECT source, collection, SUM(rows), SUM(imported_rows) FROM objects "
                    "GROUP BY source, collection")}


def stalled(s: Session, after_s: float) -> list[tuple[LedgerRecord, JobProgress]]:
    """``submitted`` rows whose job the polls have seen at the same progress for ``after_s`` seconds
    or more, longest first."""
    with s.read() as db:
        found = db.execute(
            f"SELECT {COLUMNS}, p_job, p_progress, p_changed, p_seen FROM objects JOIN ("
            "SELECT job_id AS p_job, progress AS p_progress, changed_at AS p_changed, "
            "seen_at AS p_seen FROM job_progress) AS p ON p_job = job_id "
            "WHERE state=? AND p_seen - p_changed >= ? ORDER BY p_changed, id",
            (_SUBMITTED, after_s)).fetchall()
    return [(record(row[:-4]), JobProgress(str(row[-4]), row[-3], float(row[-2]), float(row[-1])))
            for row in found]


def job_progress(s: Session, job_ids: Sequence[str]) -> dict[str, JobProgress]:
    """The last progress polled for each of ``job_ids`` that was ever seen running."""
    with s.read() as db:
        where, params = db.any_of("job_id", job_ids)
        return {str(job): JobProgress(str(job), value, float(changed), float(seen))
                for job, value, changed, seen in db.execute(
                    f"SELECT job_id, progress, changed_at, seen_at FROM job_progress WHERE {where}", params)}


def last_success(s: Session) -> float | None:
    """When a run last ended with nothing failed (see :func:`~.runs.note_success`), if ever."""
    with s.read() as db:
        found = db.execute("SELECT value FROM meta WHERE key='last_success_at'").fetchone()
    return None if found is None else float(found[0])
