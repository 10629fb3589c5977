"""The HTML report's data, read-only: a handful of GROUP BY queries over the rows and their events, so
that what is returned stays a few hundred numbers at any ledger size (``report/html.py`` shapes them
into the page)."""

from __future__ import annotations

from collections.abc import Sequence

from ..models import ObjectState
from .session import Session

_SUBMITTED, _COMPLETED, _FAILED, _INVALID, _UNCERTAIN, _PENDING = (
    s.value for s in (ObjectState.SUBMITTED, ObjectState.COMPLETED, ObjectState.FAILED, ObjectState.INVALID,
                      ObjectState.UNCERTAIN, ObjectState.PENDING))


def groups(s: Session) -> list[tuple[str, str, str, int, int, int]]:
    """(source, collection, state, objects, bytes, rows imported) per group and state."""
    with s.read() as db:
        return [(str(source), str(collection), str(state), int(n), int(size or 0), int(rows or 0))
                for source, collection, state, n, size, rows in db.execute(
                    "SELECT source, collection, state, COUNT(*), SUM(size), SUM(COALESCE(imported_rows, 0)) "
                    "FROM objects GROUP BY source, collection, state ORDER BY source, collection, state")]


def span(s: Session) -> tuple[float, float] | None:
    """When the first and the last event were recorded; None before any."""
    with s.read() as db:
        first, last = db.execute("SELECT MIN(at), MAX(at) FROM events").fetchone()
    return None if first is None else (float(first), float(last))


# An event's state as the report counts it: back to pending with a job id is a failed job's object sent
# again in a part of it (the ``regroup`` transition): it left its job as a failure did.
_REACHED = "CASE WHEN e.state = ? AND e.job_id IS NOT NULL THEN ? ELSE e.state END"


def timeline(s: Session, start: float, bucket_s: float) -> list[tuple[int, str, int, int, int, int]]:
    """Per time bucket of ``bucket_s`` seconds from ``start`` and per state reached (submitted,
    completed, failed (a failed job's objects sent again included), invalid): (bucket, state, events,
    distinct jobs, events with a job, rows completed)."""
    with s.read() as db:
        bucket = db.floor("(e.at - ?) / ?")
        return [(int(b), str(state), int(n), int(jobs), int(with_job or 0), int(rows or 0))
                for b, state, n, jobs, with_job, rows in db.execute(
                    f"SELECT {bucket} AS b, {_REACHED} AS st, COUNT(*), COUNT(DISTINCT e.job_id), "
                    "SUM(CASE WHEN e.job_id IS NULL THEN 0 ELSE 1 END), "
                    "SUM(CASE WHEN e.state = ? THEN COALESCE(o.imported_rows, o.rows, 0) ELSE 0 END) "
                    "FROM events e JOIN objects o ON o.id = e.object_id "
                    "WHERE e.state IN (?, ?, ?, ?) OR (e.state = ? AND e.job_id IS NOT NULL) GROUP BY b, st",
                    (start, bucket_s, _PENDING, _FAILED, _COMPLETED,
                     _SUBMITTED, _COMPLETED, _FAILED, _INVALID, _PENDING))]


def durations(s: Session, edges: Sequence[float]) -> list[tuple[int, bool, int, float, float]]:
    """Jobs by how long they ran, from submitted to completed or failed: (the first of ``edges`` the
    duration is under, or ``len(edges)``; failed; jobs; seconds in all; the longest)."""
    cases = " ".join(f"WHEN d < {edge} THEN {i}" for i, edge in enumerate(edges))
    with s.read() as db:
        return [(int(k), bool(failed), int(n), float(total or 0), float(most or 0))
                for k, failed, n, total, most in db.execute(
                    f"SELECT CASE {cases} ELSE {len(edges)} END AS k, f, COUNT(*), SUM(d), MAX(d) FROM ("
                    "SELECT e.job_id, "
                    "MAX(CASE WHEN e.state IN (?, ?, ?) AND e.job_id IS NOT NULL THEN e.at END) "
                    "- MIN(CASE WHEN e.state = ? THEN e.at END) AS d, "
                    "MAX(CASE WHEN e.state IN (?, ?) THEN 1 ELSE 0 END) AS f "
                    "FROM events e WHERE e.job_id IS NOT NULL GROUP BY e.job_id) AS j "
                    "WHERE d IS NOT NULL GROUP BY 1, 2",
                    (_COMPLETED, _FAILED, _PENDING, _SUBMITTED, _FAILED, _PENDING))]


def reasons(s: Session, top: int) -> list[tuple[str, str, int]]:
    """The ``top`` most common last errors of failing objects, (reason, state, objects); a job
    failure's own job id is cut off its text (``job 123 failed: ...``), so that the same reason from
    many jobs counts as one."""
    reason = ("CASE WHEN job_id IS NOT NULL AND SUBSTR(error, 1, LENGTH(job_id) + 13) = "
              "'job ' || job_id || ' failed: ' THEN SUBSTR(error, LENGTH(job_id) + 14) ELSE error END")
    with s.read() as db:
        return [(str(r), str(state), int(n)) for r, state, n in db.execute(
            f"SELECT {reason} AS r, state, COUNT(*) FROM objects WHERE error IS NOT NULL AND "
            "(state IN (?, ?, ?) OR state = ?) GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT ?",
            (_FAILED, _INVALID, _UNCERTAIN, _PENDING, top))]
