"""One run's state and what it reports.

:class:`RunState` is the one owner of what every worker of a run shares: the stop flag, the first
fatal error (which stops the run: what is queued is not sent), and the counters, all behind one lock.
:class:`RunReport` is what the run tells at its end: the summary line and the exit code.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field

from ..errors import FatalTargetError
from ..models import Action, JobState, Outcome

EXIT_DEADLINE = 124  # the run reached its --deadline and stopped early (as GNU timeout(1) exits)
log = logging.getLogger("orchestrator")


@dataclass
class RunReport:
    planned: Counter[str] = field(default_factory=Counter)
    retries: int = 0  # calls repeated after a transient error (429, 5xx, busy, lost reply)
    stalled: int = 0  # running jobs whose progress stood still for settings.stall_after_s
    outcomes: Counter[str] = field(default_factory=Counter)
    refreshed: Counter[str] = field(default_factory=Counter)
    reconciled: Counter[str] = field(default_factory=Counter)
    waited: Counter[str] = field(default_factory=Counter)
    source_errors: list[str] = field(default_factory=list)
    source_warnings: list[str] = field(default_factory=list)
    fatal: str | None = None
    interrupted: int | None = None
    expired: bool = False  # the run reached its deadline (``run --deadline``) and stopped early
    unresolved: int = 0  # imports left `submitting` at the end: their job is looked for next run
    made_uncertain: int = 0  # imports this run turned `uncertain`: held for a person
    left: int = 0  # objects to submit that --max-submissions left for the next run
    # discovery: events: queue messages received, deleted, kept (they come back), poison (left to the
    # queue's redrive policy), and objects events named that were gone when looked up
    messages: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        """Objects refused, and jobs seen failing (while refreshing or waiting)."""
        return self.outcomes[Outcome.FAILED] + self.refreshed[JobState.FAILED] + self.waited[JobState.FAILED]

    @property
    def unsure(self) -> int:
        """Imports whose outcome this run could not settle: left ``submitting`` or made ``uncertain``."""
        return self.unresolved + self.made_uncertain

    @property
    def nothing_new(self) -> bool:
        """No listed object needed an import: each was imported before, or is importing."""
        return not any(self.planned[a] for a in (Action.SUBMIT, Action.RETRY, Action.RECONCILE, Action.HOLD))

    def exit_code(self) -> int:
        if self.interrupted is not None:
            return 128 + self.interrupted
        if self.expired:
            return EXIT_DEADLINE
        if self.fatal or self.source_errors or self.failed or self.unsure or self.planned[Action.HOLD] \
                or self.outcomes[Outcome.DEFERRED] or self.outcomes[Outcome.INVALID]:
            return 1
        return 0

    def summary(self, *, exit_code: int | None = None) -> str:
        """One ``key=value`` line; ``exit_code`` when the process ends with another code than the
        run's own (say, the metrics file could not be written)."""
        return "summary: " + " ".join(f"{k}={v}" for k, v in self.fields(exit_code=exit_code).items())

    def fields(self, *, exit_code: int | None = None) -> dict[str, int]:
        """The summary's counts by name, ``exit`` last."""
        o, p = self.outcomes, self.planned
        fields = {
            "submitted": o[Outcome.SUBMITTED],
            "adopted": o[Outcome.ADOPTED] + self.reconciled["adopted"],
            "failed": o[Outcome.FAILED],
            "invalid": o[Outcome.INVALID],
            "deferred": o[Outcome.DEFERRED],
            "queued": o[Outcome.QUEUED],
            "unsure": self.unsure,
            "held": p[Action.HOLD],
            "skipped": p[Action.SKIP],
            "changed": p[Action.CHANGED],
            "jobs_completed": self.refreshed[JobState.COMPLETED] + self.waited[JobState.COMPLETED],
            "jobs_failed": self.refreshed[JobState.FAILED] + self.waited[JobState.FAILED],
            "jobs_stalled": self.stalled,
            "source_errors": len(self.source_errors),
            **({"left": self.left} if self.left else {}),
            **({f"messages_{k}": self.messages[k] for k in ("received", "deleted", "kept", "poison")}
               if self.messages else {}),
        }
        return {**fields, "exit": self.exit_code() if exit_code is None else exit_code}


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    wait: bool = False
    max_submissions: int | None = None
    wait_lock_s: float = 0.0
    poll_interval_s: float = 5.0
    deep: bool = False  # the pre-flight check also reads each file's first row group
    deadline_s: float | None = None  # from the run's start: then it submits nothing new and ends (exit 124)
    follow: bool = False  # keep reading the sources' queues until stopped (a signal ends it, exit 0)


class RunState:
    """What the threads of one run share, behind one lock: the stop flag, the first fatal error, and
    the report's counters. A fatal error sets ``stop``: nothing queued is sent after it."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop if stop is not None else threading.Event()
        self.report = RunReport()
        self.fatal: FatalTargetError | None = None
        self._lock = threading.Lock()

    def fail(self, exc: FatalTargetError) -> None:
        """Record the first fatal error and stop the run."""
        with self._lock:
            if self.fatal is None:
                self.fatal = exc
        self.stop.set()

    def expire(self, deadline_s: float) -> None:
        """The run's deadline has come: stop it (nothing new is sent, what is in flight is recorded)."""
        with self._lock:
            if self.stop.is_set():  # already stopping (a signal, a fatal error, the end): not the deadline's
                return
            self.report.expired = True
        self.stop.set()
        log.warning("the run's deadline (%g s) has come: submitting nothing new, recording what is in "
                    "flight", deadline_s, extra={"event": "deadline"})

    def outcome(self, outcome: Outcome) -> None:
        with self._lock:
            self.report.outcomes[outcome] += 1

    def retried(self) -> None:
        with self._lock:
            self.report.retries += 1

    def uncertain(self) -> None:
        with self._lock:
            self.report.made_uncertain += 1
