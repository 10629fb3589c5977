"""What a run reports as it goes, to one :class:`RunObserver`: every object planned, every submission's
outcome, the end of the listing, and the job polls. The progress bars (:mod:`orchestrator.cli.progress`)
are one; :class:`NullObserver` is the default. The log lines (``--json-log`` events) go through the
``orchestrator`` logger, not through the observer.

Events come from several threads at once: an observer counts under its own lock and returns quickly.
"""

from __future__ import annotations

from typing import Protocol

from ..models import Outcome, PlanItem


class RunObserver(Protocol):
    """The events of one run, in the order they may first come."""

    def jobs(self, phase: str, done: int, total: int) -> None:
        """Known jobs polled: ``phase`` ``refreshing`` (before submitting; ``total`` objects to poll)
        or ``waiting`` (``run --wait``: this run's jobs ended, of the jobs it waits for)."""

    def planned(self, item: PlanItem) -> None:
        """An object was listed and the planner decided what to do with it."""

    def submitted(self, item: PlanItem, outcome: Outcome) -> None:
        """An object to submit got its outcome (a job, a refusal, a deferral, not started...)."""

    def listed(self) -> None:
        """Every source is listed: the totals are known from now on."""


class NullObserver:
    """Sees every event and does nothing with it."""

    def jobs(self, phase: str, done: int, total: int) -> None:
        pass

    def planned(self, item: PlanItem) -> None:
        pass

    def submitted(self, item: PlanItem, outcome: Outcome) -> None:
        pass

    def listed(self) -> None:
        pass
