"""The guarded transitions the submitter and the job lifecycle call: each one moves rows along an edge
of :data:`~orchestrator.ledger.states.TRANSITIONS` (taken by name), in one transaction committed
durably (SQLite ``synchronous=FULL``, PostgreSQL ``synchronous_commit=on``) before the call it
protects: a crash leaves either the old state or the new one, never half of each. A row that is not
in one of the transition's source states is refused (:class:`~orchestrator.errors.LedgerError`), or,
for a claim, not taken.

A row is first written when its object is first submitted: objects the ledger has never seen are
simply new, so planning a million of them writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ..errors import LedgerError
from ..models import ObjectState, PlanItem
from .session import Session
from .states import TRANSITIONS, Transition


class Claim(NamedTuple):
    """A row taken for a create call: its id, the failures so far, and the idempotency generation."""

    row: int
    failures: int
    key_gen: int


def begin_submission(s: Session, item: PlanItem, *, rows: int | None = None, sent_as: str | None = None,
                     server_at: float | None = None) -> Claim | None:
    """(new) / pending / failed -> submitting, committed before the create call.

    ``sent_as`` is the object exactly as the create call names it (how the server will report it),
    ``server_at`` the server's clock at the claim, as far as it is known: the evidence a later
    reconciliation weighs. Returns the claim, or None when the import is already taken (it has,
    or may have, a job): the caller must then not call the API.
    """
    return begin_group(s, [(item, rows, sent_as)], server_at=server_at)[0]


def begin_group(s: Session, members: Sequence[tuple[PlanItem, int | None, str | None]], *,
                server_at: float | None = None, load_id: int | None = None) -> list[Claim | None]:
    """:func:`begin_submission` for every object of one create call, ``(item, rows, sent_as)``
    each, in one transaction: all are ``submitting`` before the call, or none. When several are
    claimed, each records the call as its ``batch`` (a number new to the ledger), which is how a
    later reconciliation knows they were sent together. ``load_id``: the run's load the job belongs
    to (``settings.visibility: per_run``; None: committed on its own). A member already taken gets
    None."""
    s.check_same_file()
    now = s.clock()
    claim = TRANSITIONS["begin_submission"]

    def body() -> list[Claim | None]:
        claims = [_take(s, item, claim, rows=rows, error=None, detail=item.reason, attempt=True,
                        sent_as=sent_as, server_at=server_at, now=now)
                  for item, rows, sent_as in members]
        taken = [c.row for c in claims if c is not None]
        if len(taken) > 1:  # a number no row ever had: stale batches never mix with this one
            batch = s.db.execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM objects").fetchone()[0]
            where, params = s.db.any_of("id", taken)
            s.db.execute(f"UPDATE objects SET batch=? WHERE {where}", (batch, *params))
        if taken:
            where, params = s.db.any_of("id", taken)
            s.db.execute(f"UPDATE objects SET load_id=? WHERE {where}", (load_id, *params))
        return claims

    return s.durably(body)


def mark_invalid(s: Session, item: PlanItem, problems: list[str], *, rows: int | None) -> bool:
    """(new) / pending / failed -> invalid: the pre-flight check found ``problems``; every one is
    kept. False when the object is already taken."""
    text = "; ".join(problems)
    s.check_same_file()
    now = s.clock()
    return s.durably(lambda: _take(
        s, item, TRANSITIONS["mark_invalid"], rows=rows, error=text, detail=text, attempt=False,
        sent_as=None, server_at=None, now=now)) is not None


def record_job(s: Session, rows: int | Sequence[int], job_id: str, detail: str = "job created") -> bool:
    """submitting (or uncertain) -> submitted, the moment the job id is known: every row of the
    create call (``rows``) records it, in one transaction.

    A job belongs to one create call: when a row outside ``rows`` of the same target already
    recorded ``job_id`` (a server that answers one id for two calls breaks the protocol), nothing
    is recorded, the rows become ``uncertain`` and False is returned."""
    ids = _ids(rows)

    def body() -> bool:
        where, params = s.db.any_of("e.object_id", ids)
        other = s.db.execute(
            "SELECT e.object_id FROM events e JOIN objects o ON o.id = e.object_id WHERE e.job_id=? "
            f"AND NOT ({where}) AND o.target=(SELECT target FROM objects WHERE id=?) LIMIT 1",
            (job_id, *params, ids[0])).fetchone()
        if other is not None:
            why = (f"the server answered job id {job_id}, which already belongs to another object: "
                   "not recorded; check the cluster")
            mine, ids_params = s.db.any_of("id", ids)
            held = {found for (found,) in s.db.execute(
                f"SELECT id FROM objects WHERE state=? AND {mine}",
                (ObjectState.UNCERTAIN.value, *ids_params)).fetchall()}
            for row in ids:
                if row in held:  # held already (the list proved a job another object recorded): the reason
                    s.db.execute("UPDATE objects SET error=?, updated_at=? WHERE id=?", (why, s.clock(), row))
                else:
                    _move(s, row, TRANSITIONS["mark_uncertain"], "error = :error", error=why, detail=why)
            return False
        for row in ids:
            _move(s, row, TRANSITIONS["record_job"], "job_id = :job, error = NULL", job_id=job_id,
                  detail=detail)
        return True

    return s.durably(body)


def refuse(s: Session, rows: int | Sequence[int], error: str, *, permanent: bool,
           culprit: int | None = None) -> None:
    """submitting -> failed (the server refused the call) or -> pending (retries ran out: deferred),
    for every row of the call. ``culprit``, a row the refusal names, is sent alone from then on."""
    if permanent:
        _all(s, rows, TRANSITIONS["refuse"], "failures = failures + 1, key_gen = key_gen + 1, error = :error",
             culprit=culprit, error=error, detail=error)
    else:
        _all(s, rows, TRANSITIONS["defer"], "error = :error", error=error, detail=error)


def mark_uncertain(s: Session, rows: int | Sequence[int], why: str) -> None:
    """submitting -> uncertain (the job list cannot prove either way), or submitted -> uncertain
    (the server no longer knows the job)."""
    _all(s, rows, TRANSITIONS["mark_uncertain"], "error = :error", error=why, detail=why)


def release(s: Session, rows: int | Sequence[int], why: str) -> None:
    """submitting (or uncertain) -> pending: proven that no job exists for the create call."""
    _all(s, rows, TRANSITIONS["release"], "error = :error", error=why, detail=why)


def complete(s: Session, row: int, job_id: str, *, imported_rows: int | None = None) -> None:
    """submitted -> completed for one row: :func:`complete_job` with one member."""
    complete_job(s, job_id, {row: imported_rows})


def complete_job(s: Session, job_id: str, imported: dict[int, int | None]) -> None:
    """submitted -> completed for every row of one job, with the rows the server imported of each
    (None: not said), in one transaction."""
    def body() -> None:
        for row, count in imported.items():
            detail = "job completed" + (f" ({count} rows)" if count is not None else "")
            _move(s, row, TRANSITIONS["complete"], "error = NULL, imported_rows = :imported", job_id=job_id,
                  detail=detail, imported=count)

    s.durably(body)


def job_failed(s: Session, rows: int | Sequence[int], job_id: str, reason: str, *,
               culprits: Sequence[int] = (), parts: Sequence[Sequence[int]] = ()) -> None:
    """The job failed, in one transaction: a row of ``parts`` (each a list of rows) goes back to
    pending without counting a failure, in a part numbered anew (it shares a job only with the rest
    of its part); every other row goes submitted -> failed, counting one failure, and ``culprits``
    (rows proven to fail) are sent alone from then on. Each gets a new idempotency key."""
    regrouped = {row for part in parts for row in part}

    def body() -> None:
        for part in parts:
            number = s.db.execute("SELECT COALESCE(MAX(part), 0) + 1 FROM objects").fetchone()[0]
            detail = f"{reason}; sent again in a part of {len(part)} object(s), no failure counted"
            for row in part:
                _move(s, row, TRANSITIONS["regroup"], "key_gen = key_gen + 1, error = :error, "
                      f"part = {int(number)}", error=reason, job_id=job_id, detail=detail)
        for row in _ids(rows):
            if row not in regrouped:
                _move(s, row, TRANSITIONS["job_failed"], "failures = failures + 1, key_gen = key_gen + 1, "
                      "error = :error, part = NULL" + (", alone = 1" if row in culprits else ""),
                      error=reason, job_id=job_id, detail=reason)

    s.durably(body)


def withdraw(s: Session, rows: int | Sequence[int], job_id: str, why: str) -> None:
    """submitted -> pending for every row of a two-phase job aborted uncommitted: it imported nothing,
    so no failure is counted, and the key is new (the server keeps answering an aborted job's key
    with that job)."""
    _all(s, rows, TRANSITIONS["withdraw"], "key_gen = key_gen + 1, error = :error", error=why,
         job_id=job_id, detail=why)


def rearm(s: Session, *, match: Callable[[str], bool] | None = None, uncertain: bool = False) -> list[str]:
    """Failed and invalid (or, with ``uncertain``, uncertain) rows whose URL ``match`` accepts (all by
    default) -> pending with a fresh failure budget and a fresh idempotency key (a server that
    honours keys must not hand back the old job); an invalid object is checked again before it is
    submitted. Returns the URLs re-armed."""
    move = TRANSITIONS["rearm_uncertain" if uncertain else "rearm"]
    rearmed: list[str] = []
    now = s.clock()  # one time for the whole re-arm, as one command
    with s.tx() as db:
        where, params = db.any_of("state", [state.value for state in move.sources])
        for object_id, url, state in db.execute(f"SELECT id, url, state FROM objects WHERE {where}",
                                                params).fetchall():
            if match is None or match(url):
                _move(s, object_id, move, "failures = 0, key_gen = key_gen + 1",
                      detail=f"re-armed from {state}", now=now)
                rearmed.append(url)
    return rearmed


def _all(s: Session, rows: int | Sequence[int], move: Transition, sets: str, *, culprit: int | None = None,
         **values: Any) -> None:
    """Move every row of ``rows`` along ``move`` in one durable transaction; ``culprit`` (one of them)
    is marked to be sent alone."""
    def body() -> None:
        for row in _ids(rows):
            _move(s, row, move, sets + (", alone = 1" if row == culprit else ""), **values)

    s.durably(body)


def _move(
    s: Session,
    row: int,
    move: Transition,
    sets: str,
    *,
    job_id: str | None = None,
    error: str | None = None,
    detail: str | None = None,
    imported: int | None = None,
    now: float | None = None,
) -> int:
    """The guarded ``UPDATE`` of a transition, inside the caller's transaction: the row moves only from
    one of ``move.sources``; otherwise :class:`LedgerError` names where it is. ``now``: the time of a
    batch of moves made at once (else the clock's)."""
    now = s.clock() if now is None else now
    marks = ",".join(f":s{i}" for i in range(len(move.sources)))
    found = s.db.execute(
        f"UPDATE objects SET state=:state, updated_at=:now, {sets} "
        f"WHERE id=:row AND state IN ({marks}) RETURNING id, failures",
        {"state": move.target.value, "now": now, "row": row, "job": job_id, "error": error,
         "imported": imported, **{f"s{i}": state.value for i, state in enumerate(move.sources)}},
    ).fetchone()
    if found is None:
        have = s.db.execute("SELECT url, state FROM objects WHERE id=?", (row,)).fetchone()
        raise LedgerError(f"{have[0] if have else f'row {row}'}: cannot move to {move.target.value} from "
                          f"{have[1] if have else 'no row'}")
    s.event(found[0], now, move.target, job_id, detail)
    return int(found[1])


def _take(s: Session, item: PlanItem, move: Transition, *, rows: int | None, error: str | None,
          detail: str, attempt: bool, sent_as: str | None, server_at: float | None,
          now: float) -> Claim | None:
    """The body of a claim, inside the caller's transaction: the row (made if ``move`` records new
    imports) moves along ``move`` (and out of any earlier batch), or None when it is taken."""
    obj, route = item.obj, item.route
    assert route is not None
    source = s.source_url(item.source)
    row = s.db.execute(
        "SELECT id, state, failures, key_gen FROM objects WHERE url=? AND version=? AND target=? "
        f"AND collection=? AND COALESCE(partition, '')=?{s.db.for_update}",
        (obj.url, obj.version, s.owner, route.collection, route.partition or "")).fetchone()
    if row is None and move.new:
        object_id = s.db.execute(
            "INSERT INTO objects (url, version, target, source, collection, partition, size, state, "
            "attempts, rows, error, sent_as, server_at, found, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
            (obj.url, obj.version, s.owner, source, route.collection, route.partition, obj.size,
             move.target.value, int(attempt), rows, error, sent_as, server_at, obj.found, now,
             now)).fetchone()[0]
        failures, key_gen = 0, 0
    elif row is not None and row[1] in move.sources:
        object_id, failures, key_gen = row[0], row[2], row[3]
        s.db.execute(
            "UPDATE objects SET state=?, attempts=attempts+?, source=?, rows=COALESCE(?, rows), "
            "error=COALESCE(?, error), sent_as=COALESCE(?, sent_as), server_at=?, batch=NULL, "
            "updated_at=? WHERE id=?",
            (move.target.value, int(attempt), source, rows, error, sent_as, server_at, now, object_id))
    else:
        return None
    s.event(object_id, now, move.target, None, detail)
    return Claim(int(object_id), int(failures), int(key_gen))


def _ids(rows: int | Sequence[int]) -> list[int]:
    return [rows] if isinstance(rows, int) else list(rows)
