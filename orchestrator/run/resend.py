"""Sending again within one ``run --wait``: the objects of this run's failed jobs of several that go
back in parts (:mod:`orchestrator.jobs.isolation`) are handed back to the submitter once the listing
is submitted, part by part, until no job of this run can send any more back. Without ``--wait`` (or
for a job this run adopted, or one an earlier run made) the ledger keeps the parts and the next run
sends them.

Memory holds the plan items of this run's unfinished jobs only: at most the job window's worth.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..models import Outcome, PlanItem

WAKE_S = 0.05  # how soon a wait notices that the run was asked to stop


class Resend:
    """The parts this run's failed jobs send back, kept until the submitter takes them."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._changed = threading.Condition()
        self._running: dict[str, dict[int, PlanItem]] = {}  # this run's unfinished jobs: row -> item
        self._ended: set[str] = set()  # jobs seen ending (perhaps before the submitter told of them)
        self._early: dict[str, list[list[int]]] = {}  # parts of a job that ended before it was told of
        self._back: list[list[PlanItem]] = []

    def sent(self, job_id: str, items: dict[int, PlanItem]) -> None:
        """A job this run made, and its objects by ledger row."""
        with self._changed:
            if job_id in self._early:
                self._take(items, self._early.pop(job_id))
            elif job_id not in self._ended:
                self._running[job_id] = items
            self._changed.notify_all()

    def regrouped(self, job_id: str, parts: list[list[int]]) -> None:
        """The job failed: each of ``parts`` (ledger rows) goes back to be sent as one job."""
        with self._changed:
            items = self._running.get(job_id)
            if items is None:
                self._early[job_id] = parts
            else:
                self._take(items, parts)
            self._changed.notify_all()

    def ended(self, job_id: str) -> None:
        """The job ended, however: it sends nothing more back."""
        with self._changed:
            self._running.pop(job_id, None)
            self._ended.add(job_id)
            self._changed.notify_all()

    def wait(self) -> list[list[PlanItem]]:
        """The parts sent back so far, as soon as there are some; empty once none of this run's jobs
        is running (or the run stops)."""
        with self._changed:
            while not self._back and self._running and not self._stop.is_set():
                self._changed.wait(WAKE_S)
            back, self._back = self._back, []
        return [] if self._stop.is_set() else back

    def drain_into(self, submit: Callable[[list[list[PlanItem]], Callable[[PlanItem, Outcome], None]], None],
                   on_outcome: Callable[[PlanItem, Outcome], None]) -> None:
        """Submit what comes back (``submit``, the submitter's), until nothing more can."""
        while parts := self.wait():
            submit(parts, on_outcome)

    def _take(self, items: dict[int, PlanItem], parts: list[list[int]]) -> None:
        for part in parts:
            group = [items[row] for row in part if row in items]
            if group:
                self._back.append(group)
