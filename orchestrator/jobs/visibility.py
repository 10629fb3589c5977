"""A load that appears all at once (``settings.visibility: per_run``): every job of a run is created
uncommitted (two-phase import), and only once all of them have imported does the run decide to commit,
record the decision in the ledger, and commit them all. A job that fails, a create the server refuses,
or a run that stops before the decision: none is committed, every job of the load is aborted and its
objects go back to pending (the failed one fails as usual).

The ledger holds the load (:mod:`orchestrator.ledger.loads`), so a run killed at any point is finished
by the next one (:func:`settle_loads`): a decided load's uncommitted jobs are committed (by
:func:`orchestrator.jobs.refresh.refresh`, which commits only jobs of decided loads), an undecided
load's are aborted and their objects sent again. An aborted job imported nothing, so each object is
imported once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..errors import JobTerminalError, TargetError
from ..ledger.store import Ledger
from ..models import JobState, LedgerRecord, ObjectState, Outcome
from ..redact import Redactor
from ..targets.base import Target
from .refresh import OnFinished
from .window import Window

log = logging.getLogger("orchestrator")
# rows of a load that keep it from being committed whole: its job failed or its create was refused
# (failed), its job cannot be told (uncertain); and at the end, its create call's outcome still unknown
SPOILS = (ObjectState.FAILED, ObjectState.UNCERTAIN)
UNSETTLED = (*SPOILS, ObjectState.SUBMITTING)


def settle_loads(target: Target, ledger: Ledger, redact: Redactor) -> list[tuple[str, int]]:
    """Finish the loads earlier runs left: an undecided one's jobs are aborted and its objects withdrawn
    (pending again); a decided one's jobs are left to be committed by the polls. Returns the jobs of
    decided loads still waiting, and their objects (for ``run --wait`` to wait on); ends every load
    none of whose rows waits on a job."""
    waiting: list[tuple[str, int]] = []
    for load in ledger.open_loads():
        if not load.decided:
            abort_load(target, ledger, redact, load.id, "its run stopped before deciding to commit")
        elif not ledger.end_load(load.id):
            jobs = _jobs([r for r in ledger.load_rows(load.id) if r.state is ObjectState.SUBMITTED])
            waiting.extend((job_id, len(rows)) for job_id, rows in jobs.items())
            log.info("load %d: its run decided to commit it; committing its %d job(s) left", load.id,
                     len(jobs), extra={"event": "load-resumed"})
            continue
        ledger.end_load(load.id)
    return waiting


def abort_load(target: Target, ledger: Ledger, redact: Redactor, load_id: int, why: str) -> int:
    """Abort every job of the load that a row waits on, and withdraw its rows (pending, a fresh key, no
    failure counted: nothing was imported). A job that cannot be aborted now is left to the next run;
    one already committed is left to be completed. Returns how many jobs were aborted."""
    aborted = 0
    waiting = [r for r in ledger.load_rows(load_id) if r.state is ObjectState.SUBMITTED]
    for job_id, rows in _jobs(waiting).items():
        first = rows[0]
        try:
            target.abort(job_id)
        except JobTerminalError as exc:  # committed by the server itself (it ignored auto_commit)
            log.warning("%s: job %s of load %d: %s", first.url, job_id, load_id, redact(str(exc)),
                        extra={"event": "abort-failed", "url": first.url, "job_id": job_id})
            continue
        except TargetError as exc:
            log.warning("%s: cannot abort job %s of load %d (%s): the next run aborts it", first.url, job_id,
                        load_id, redact(str(exc)),
                        extra={"event": "abort-failed", "url": first.url, "job_id": job_id})
            continue
        ledger.withdraw([r.id for r in rows], job_id, f"job {job_id} aborted uncommitted: {why}")
        aborted += 1
        for record in rows:
            log.info("%s: job %s aborted uncommitted (%s): pending again", record.url, job_id, why,
                     extra={"event": "withdrawn", "url": record.url, "job_id": job_id})
    return aborted


class Load:
    """This run's load: opened in the ledger before its first job, watched as its jobs are polled,
    abandoned at the first failure, and committed at the end if every job imported."""

    def __init__(self, target: Target, ledger: Ledger, redact: Redactor, window: Window) -> None:
        self.target = target
        self.ledger = ledger
        self.redact = redact
        self.window = window
        self.id = ledger.open_load()
        self.abandoned: str | None = None  # why none of its jobs is committed
        self.decided = False  # the decision to commit is in the ledger: from then on it is never abandoned
        self._ready: set[str] = set()  # its jobs seen uncommitted (imported, waiting for the decision)
        self._lock = threading.Lock()

    def watch(self, finished: OnFinished | None) -> OnFinished:
        """``finished`` (a poll's callback), noting the jobs seen uncommitted."""
        def seen(job_id: str, state: JobState | None, objects: int) -> None:
            if state is JobState.UNCOMMITTED:
                with self._lock:
                    self._ready.add(job_id)
            if finished is not None:
                finished(job_id, state, objects)
        return seen

    def submitted(self, outcome: Outcome) -> None:
        """A create call's outcome: one refused, or made without two-phase import (the server refused
        it), spoils the load: nothing more is submitted, and the drain's next poll abandons it (the
        aborts are made there, never beside a poll)."""
        if outcome is Outcome.FAILED or self._refused() is not None:
            self.window.close()

    def check(self) -> None:
        """After a poll: a job of the load failed, a create of it was refused, or the server refused
        two-phase import: abandon it now."""
        if self.abandoned is None and (why := self._refused() or _spoiled(self.ledger.load_rows(self.id),
                                                                           SPOILS)) is not None:
            self.abandon(why)

    def abandon(self, why: str) -> None:
        """Commit none of the load: nothing more is submitted, every job of it is aborted (those created
        after this, by :meth:`finish`). Once decided, a load is never abandoned (a fatal error while
        committing): the next run commits the rest."""
        if self.decided:
            return
        if self.abandoned is None:
            self.abandoned = why
            log.error("load %d is not committed: %s; its jobs are aborted", self.id, why,
                      extra={"event": "load-abandoned"})
        self.window.close()
        abort_load(self.target, self.ledger, self.redact, self.id, why)

    def finish(self, *, stopped: bool, poll: Callable[[], object], stop: threading.Event,
               pause: Callable[[float], object], interval_s: float) -> None:
        """The end of the run's submitting and waiting: abandon the load (``stopped``, or anything of it
        failed), or decide, record the decision and commit every job, polling until all completed
        (a stop then leaves the rest to the next run, which commits them: the decision stands)."""
        rows = self.ledger.load_rows(self.id)
        why = self.abandoned or ("the run stopped before all its jobs had imported" if stopped else None) \
            or self._refused() or _spoiled(rows, UNSETTLED) or self._unready(rows)
        if why is not None:
            self.abandon(why)
            self.ledger.end_load(self.id)
            return
        if self.ledger.end_load(self.id):  # nothing submitted: nothing to commit
            return
        self.ledger.decide_load(self.id)
        self.decided = True
        jobs = _jobs([r for r in rows if r.state is ObjectState.SUBMITTED])
        log.info("load %d: all %d job(s) imported: committing them", self.id, len(jobs),
                 extra={"event": "load-committing"})
        while True:
            poll()  # commits every uncommitted job of a decided load
            if self.ledger.end_load(self.id):
                log.info("load %d committed", self.id, extra={"event": "load-committed"})
                return
            if stop.is_set():
                log.warning("load %d: stopped while committing; the next run commits the rest", self.id,
                            extra={"event": "load-unfinished"})
                return
            pause(interval_s)

    def _refused(self) -> str | None:
        """A server that refuses ``auto_commit`` got plain creates: those jobs commit themselves."""
        return None if self.target.two_phase else ("the server refused two-phase import (auto_commit); "
                                                   "jobs created since commit themselves")

    def _unready(self, rows: list[LedgerRecord]) -> str | None:
        with self._lock:
            unready = sorted({r.job_id for r in rows if r.state is ObjectState.SUBMITTED
                              and r.job_id is not None and r.job_id not in self._ready})
        return f"job {unready[0]} was not seen imported" if unready else None


def _spoiled(rows: list[LedgerRecord], states: tuple[ObjectState, ...]) -> str | None:
    """Why the load cannot be committed whole, from its rows: the first in one of ``states``."""
    for record in rows:
        if record.state in states:
            return f"{record.url} is {record.state.value}" + (f" ({record.error})" if record.error else "")
    return None


def _jobs(rows: list[LedgerRecord]) -> dict[str, list[LedgerRecord]]:
    jobs: dict[str, list[LedgerRecord]] = {}
    for record in rows:
        if record.job_id is not None:
            jobs.setdefault(record.job_id, []).append(record)
    return jobs
