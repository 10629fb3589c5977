"""The object state machine as data: every named transition, the states it moves a row from and the
state it moves it to, and the classes of states the planner reasons with.

The ledger's guarded ``UPDATE`` statements take their allowed source states from :data:`TRANSITIONS`
by name (``transitions.py``), the planner reads :data:`CLAIMABLE` and :data:`HOLDS_JOB`, and the
reference page's diagram is drawn from this table (``scripts/docs_reference.py``). A test drives a
ledger through every transition and checks that each move its history records is an edge here.
"""

from __future__ import annotations

from typing import NamedTuple

from ..models import ObjectState

PENDING, SUBMITTING, SUBMITTED, COMPLETED, FAILED, UNCERTAIN, INVALID = (
    ObjectState.PENDING, ObjectState.SUBMITTING, ObjectState.SUBMITTED, ObjectState.COMPLETED,
    ObjectState.FAILED, ObjectState.UNCERTAIN, ObjectState.INVALID)
NEW = "(new)"  # how the table and the diagram name an import the ledger has no row for yet


class Transition(NamedTuple):
    """One named move: a row in one of ``sources`` (or, with ``new``, no row yet) goes to ``target``."""

    name: str
    sources: tuple[ObjectState, ...]
    target: ObjectState
    new: bool = False  # the transition also records an import the ledger has never seen
    meaning: str = ""

    def edges(self) -> list[tuple[str, str]]:
        """The (from, to) moves this transition allows, by state name (:data:`NEW` for no row)."""
        return [(s, self.target.value) for s in ([NEW] if self.new else []) + [s.value for s in self.sources]]


TRANSITIONS = {t.name: t for t in (
    Transition("begin_submission", (PENDING, FAILED), SUBMITTING, new=True,
               meaning="claimed for a create call, committed before the call"),
    Transition("mark_invalid", (PENDING, FAILED), INVALID, new=True,
               meaning="the pre-flight check found problems"),
    Transition("record_job", (SUBMITTING, UNCERTAIN), SUBMITTED,
               meaning="the create call's job id is known (given, or proven by the job list)"),
    Transition("refuse", (SUBMITTING,), FAILED, meaning="the server refused the create call"),
    Transition("defer", (SUBMITTING,), PENDING,
               meaning="retries ran out on transient errors: no job was made, the next run tries again"),
    Transition("mark_uncertain", (SUBMITTING, SUBMITTED), UNCERTAIN,
               meaning="the evidence cannot tell whether a job exists, or the server forgot the job"),
    Transition("release", (SUBMITTING, UNCERTAIN), PENDING,
               meaning="proven that no job exists for the create call"),
    Transition("complete", (SUBMITTED,), COMPLETED, meaning="the job finished"),
    Transition("job_failed", (SUBMITTED,), FAILED,
               meaning="the job failed on the server, and this file is the proven cause (or was alone)"),
    Transition("regroup", (SUBMITTED,), PENDING,
               meaning="its job of several failed and another file is the cause, or the cause is not known "
                       "yet: sent again in a part of the job (its halves), no failure counted"),
    Transition("withdraw", (SUBMITTED,), PENDING,
               meaning="two-phase: its job was aborted uncommitted (its run's load was not committed): "
                       "nothing imported, the next run sends it again with a fresh key"),
    Transition("rearm", (FAILED, INVALID), PENDING,
               meaning="`retry`: a fresh failure budget and a fresh idempotency key"),
    Transition("rearm_uncertain", (UNCERTAIN,), PENDING,
               meaning="`retry --uncertain`: the job list proved there is no job (or `--force`)"),
)}

# The states a claim takes a row from: the planner submits (pending) or retries (failed) only these.
CLAIMABLE = frozenset(TRANSITIONS["begin_submission"].sources)
# The states in which an object has (or may have) a job: submitting it again could duplicate rows.
HOLDS_JOB = frozenset({SUBMITTING, SUBMITTED, COMPLETED, UNCERTAIN})


def edges() -> set[tuple[str, str]]:
    """Every (from, to) move of the table, by state name."""
    return {edge for t in TRANSITIONS.values() for edge in t.edges()}
