"""The state graph as data (orchestrator/ledger/states.py): every move a ledger makes is an edge of the
table, every edge is made somewhere, a move off the table is refused, and the planner submits exactly
what the ledger's claim takes. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestrator.errors import LedgerError
from orchestrator.ledger import states, transitions
from orchestrator.ledger.factory import open_ledger
from orchestrator.ledger.states import NEW, TRANSITIONS
from orchestrator.ledger.store import Ledger
from orchestrator.models import Action, ObjectState
from orchestrator.planning import planner
from tests.test_ledger import Where, item, where  # noqa: F401  (the fixture, over both ledgers)
from tests.test_planner import SETTINGS, SOURCE, obj, rec


@pytest.fixture
def named(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the transitions the ledger takes, as its guarded statements are called."""
    seen: list[str] = []
    move, take = transitions._move, transitions._take

    def moving(s: Any, row: int, transition: states.Transition, *args: Any, **kwargs: Any) -> int:
        seen.append(transition.name)
        return move(s, row, transition, *args, **kwargs)

    def taking(s: Any, it: Any, transition: states.Transition, **kwargs: Any) -> Any:
        seen.append(transition.name)
        return take(s, it, transition, **kwargs)

    monkeypatch.setattr(transitions, "_move", moving)
    monkeypatch.setattr(transitions, "_take", taking)
    yield seen


def claim(ledger: Ledger, n: int) -> int:
    taken = ledger.begin_submission(item(n))
    assert taken is not None
    return taken.row


def drive(ledger: Ledger) -> None:
    """Every transition, from every state it takes a row from."""
    ledger.mark_invalid(item(1), ["bad"], rows=None)                     # (new) -> invalid
    r = claim(ledger, 2)                                                  # (new) -> submitting
    ledger.refuse(r, "transient", permanent=False)                        # submitting -> pending
    ledger.mark_invalid(item(2), ["bad"], rows=None)                      # pending -> invalid
    ledger.rearm()                                                        # invalid -> pending
    r = claim(ledger, 2)                                                  # pending -> submitting
    ledger.refuse(r, "no", permanent=True)                                # submitting -> failed
    ledger.mark_invalid(item(2), ["bad"], rows=None)                      # failed -> invalid
    r = claim(ledger, 3)
    ledger.refuse(r, "no", permanent=True)
    claim(ledger, 3)                                                      # failed -> submitting
    ledger.record_job(r, "job-3")                                         # submitting -> submitted
    ledger.job_failed(r, "job-3", "broken")                               # submitted -> failed
    ledger.rearm()                                                        # failed -> pending
    r = claim(ledger, 11)
    ledger.record_job(r, "job-11")
    ledger.job_failed(r, "job-11", "another file broke it", parts=[[r]])  # submitted -> pending
    r = claim(ledger, 4)
    ledger.mark_uncertain(r, "lost reply")                                # submitting -> uncertain
    ledger.record_job(r, "job-4")                                         # uncertain -> submitted
    ledger.complete(r, "job-4")                                           # submitted -> completed
    r = claim(ledger, 5)
    ledger.release(r, "no job")                                           # submitting -> pending
    r = claim(ledger, 6)
    ledger.record_job(r, "job-6")
    ledger.mark_uncertain(r, "forgotten")                                 # submitted -> uncertain
    ledger.release(r, "no job")                                           # uncertain -> pending
    r = claim(ledger, 7)
    ledger.mark_uncertain(r, "lost reply")
    ledger.rearm(uncertain=True)                                          # uncertain -> pending
    r = claim(ledger, 11)
    ledger.record_job(r, "job-11")
    ledger.withdraw(r, "job-11", "aborted uncommitted")                   # submitted -> pending
    r = claim(ledger, 8)
    ledger.record_job(r, "job-8")
    assert not ledger.record_job(claim(ledger, 9), "job-8")               # one job id, two calls: uncertain
    # held, then the list "proves" a job another object recorded: it stays held, with the reason
    # (old code: "cannot move to uncertain from uncertain", a LedgerError that ended the run)
    r = claim(ledger, 10)
    ledger.mark_uncertain(r, "lost reply")
    assert not ledger.record_job(r, "job-8")                              # stays uncertain
    assert ledger.row(r).state is ObjectState.UNCERTAIN and "job-8" in (ledger.row(r).error or "")  # type: ignore[union-attr]


def moves(ledger: Ledger) -> set[tuple[str, str]]:
    """Every (from, to) the ledger's history records, by state name: what the code did."""
    made: set[tuple[str, str]] = set()
    for url in {r.url for r in ledger.records()}:
        before = NEW
        for _at, _version, state, _job, _detail in ledger.events(url):
            made.add((before, state))
            before = state
    return made


def test_every_move_is_an_edge_of_the_table_and_every_edge_is_made(
    where: Where, named: list[str],  # noqa: F811
) -> None:
    with open_ledger(where) as ledger:
        drive(ledger)
        made = moves(ledger)
    assert made - states.edges() == set(), "moves the table does not allow"
    assert states.edges() - made == set(), "edges no code path takes"
    assert set(named) == set(TRANSITIONS)  # each named transition was taken by its own name


def test_the_table_is_closed_over_the_states() -> None:
    for transition in TRANSITIONS.values():
        assert transition.sources and transition.target not in transition.sources, transition
        assert transition.meaning, transition
    reached = {t.target for t in TRANSITIONS.values()} | {s for t in TRANSITIONS.values() for s in t.sources}
    assert reached == set(ObjectState)


# How each transition is asked for, and what a refusal looks like: claims are not taken, re-arming
# leaves the row as it is, the others raise.
CALLS: dict[str, Callable[[Ledger, int, int], object]] = {
    "begin_submission": lambda ledger, _row, n: ledger.begin_submission(item(n)),
    "mark_invalid": lambda ledger, _row, n: ledger.mark_invalid(item(n), ["bad"], rows=None),
    "record_job": lambda ledger, row, n: ledger.record_job(row, f"job-{n}"),
    "refuse": lambda ledger, row, _n: ledger.refuse(row, "no", permanent=True),
    "defer": lambda ledger, row, _n: ledger.refuse(row, "later", permanent=False),
    "mark_uncertain": lambda ledger, row, _n: ledger.mark_uncertain(row, "why"),
    "release": lambda ledger, row, _n: ledger.release(row, "why"),
    "complete": lambda ledger, row, n: ledger.complete(row, f"job-{n}"),
    "job_failed": lambda ledger, row, n: ledger.job_failed(row, f"job-{n}", "broken"),
    "withdraw": lambda ledger, row, n: ledger.withdraw(row, f"job-{n}", "aborted"),
    "regroup": lambda ledger, row, n: ledger.job_failed(row, f"job-{n}", "broken", parts=[[row]]),
    "rearm": lambda ledger, _row, n: ledger.rearm(match=item(n).obj.url.__eq__),
    "rearm_uncertain": lambda ledger, _row, n: ledger.rearm(match=item(n).obj.url.__eq__, uncertain=True),
}
NOT_TAKEN: dict[str, object] = {"begin_submission": None, "mark_invalid": False, "rearm": [],
                                "rearm_uncertain": []}


def test_a_move_off_the_table_is_refused(where: Where) -> None:  # noqa: F811
    assert set(CALLS) == set(TRANSITIONS)
    n = 0
    with open_ledger(where) as ledger:
        for name, transition in TRANSITIONS.items():
            for state in set(ObjectState) - set(transition.sources):
                n += 1
                row = claim(ledger, n)
                with ledger.tx() as db:  # put the row where the transition must not take it from
                    db.execute("UPDATE objects SET state=? WHERE id=?", (state.value, row))
                if name in NOT_TAKEN:
                    assert CALLS[name](ledger, row, n) == NOT_TAKEN[name], (name, state)
                else:
                    with pytest.raises(LedgerError, match=f"cannot move to {transition.target.value} "
                                                          f"from {state.value}"):
                        CALLS[name](ledger, row, n)
                found = ledger.row(row)
                assert found is not None and found.state is state, (name, state)  # nothing moved


def test_the_planner_submits_exactly_what_the_ledger_claims() -> None:
    """A row in a claimable state is submitted or retried (or held out of failures); any other is
    never sent again without the evidence: the planner and the ledger read one table."""
    for state in ObjectState:
        action = planner.decide(obj(), SOURCE, [rec(state)], SETTINGS).action
        assert (action in (Action.SUBMIT, Action.RETRY)) == (state in states.CLAIMABLE), (state, action)
        assert (state in states.HOLDS_JOB) <= (action in (Action.SKIP, Action.RECONCILE, Action.HOLD))


def test_every_operation_of_the_ledger_modules_is_bound_on_the_ledger() -> None:
    """``Ledger`` is a hand-kept list of the operations of its modules: one left off is unreachable."""
    import inspect

    from orchestrator.ledger import loads, reads, reports, runs, views
    from orchestrator.ledger.session import Session

    bound = {id(value) for value in vars(Ledger).values()}
    for module in (transitions, reads, reports, runs, views, loads):
        for name, function in inspect.getmembers(module, inspect.isfunction):
            params = list(inspect.signature(function).parameters.values())
            if name.startswith("_") or function.__module__ != module.__name__ or not params or \
                    params[0].annotation not in ("Session", Session):
                continue  # a helper, an import, or not an operation on an open ledger
            assert id(function) in bound, f"{module.__name__}.{name} is not on Ledger"
