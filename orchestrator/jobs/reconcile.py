"""Reconciling: the job a lost or interrupted create call may have made, found in the server's job list
and judged by :mod:`orchestrator.jobs.evidence`, and the one place a verdict is acted on.

* :class:`Reconciler` lists the jobs the ledger does not know and asks for a verdict on some rows.
* :func:`act` acts on the verdict of one create call: the submitter's look after a lost reply and
  :func:`settle` (an interrupted run's rows, a lost reply looked at later, ``retry --uncertain``)
  both go through it.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Sequence

from ..errors import FatalTargetError, JobNotFoundError, TargetError, TransientError
from ..ledger.store import Ledger
from ..models import UNREADABLE_JOB_ID, JobInfo, JobState, LedgerRecord, ObjectState
from ..redact import Redactor
from ..targets.base import Target
from ..targets.pacing import with_retries
from ..terminal import label
from .evidence import Judgement, Unit, Verdict, judge, unit_of
from .policy import SubmitPolicy

log = logging.getLogger("orchestrator")


class Reconciler:
    """Finds the job a lost create call may have made, from the server's job list, and judges whose it
    is (:func:`orchestrator.jobs.evidence.judge`).

    Jobs the ledger already knows are ignored; the others' file names come from progress calls,
    cached for the run (a job's file never changes); a job the server no longer describes is skipped.
    Transient errors are retried with backoff; what is left raises: :class:`TransientError` (try
    again later) or another :class:`TargetError` (this server cannot tell).
    """

    def __init__(self, target: Target, ledger: Ledger, policy: SubmitPolicy, *, stop: threading.Event,
                 server_clock: Callable[[], float | None], sleep: Callable[[float], object] | None = None,
                 rng: Callable[[], float] = random.random) -> None:
        self.target = target
        self.ledger = ledger
        self.policy = policy
        self.stop = stop
        self.server_clock = server_clock
        self.sleep: Callable[[float], object] = sleep if sleep is not None else stop.wait
        self.rng = rng
        self._files: dict[str, JobInfo | None] = {}
        self._lock = threading.Lock()

    def unknown_jobs(self, collections: set[str] | None, *, only: JobState | None = None) -> list[JobInfo]:
        """Every job into ``collections`` (None: any) that the ledger has never recorded, with its file
        name; ``only`` keeps the jobs the list shows in that state."""
        return with_retries(lambda: self._unknown_jobs(collections, only),
                            max_attempts=self.policy.settings.max_attempts, sleep=self.sleep, rng=self.rng,
                            stop=self.stop, what="listing the import jobs",
                            max_retry_after_s=self.policy.settings.max_retry_after_s)

    def _unknown_jobs(self, collections: set[str] | None, only: JobState | None) -> list[JobInfo]:
        found: list[JobInfo] = []
        listed = (j for j in self.target.list_jobs()
                  if (collections is None or j.collection is None or j.collection in collections)
                  and (only is None or j.state is only))
        while page := list(itertools.islice(listed, 500)):
            known = self.ledger.known_job_ids([j.job_id for j in page])
            for job in page:
                self._stopping()
                if job.job_id == UNREADABLE_JOB_ID:  # no call can describe it: it names no file
                    if only is None:  # it may be anyone's; never one to abort
                        found.append(job)
                elif job.job_id not in known and (info := self._with_file(job)) is not None:
                    found.append(info)
        return found

    def _stopping(self) -> None:
        if self.stop.is_set():  # a partial list proves nothing: the rows wait for the next run
            raise TransientError("stopping before the job list was read")

    def _with_file(self, job: JobInfo) -> JobInfo | None:
        """The job as its progress call describes it (the list may not name the file); cached. None for
        a job the server lists but no longer describes: it cannot be anyone's to adopt."""
        with self._lock:
            if job.job_id in self._files:
                return self._files[job.job_id]
        try:
            info: JobInfo | None = self.target.progress(job.job_id)
        except JobNotFoundError:
            info = None
        with self._lock:
            self._files[job.job_id] = info
        return info

    def judge(self, rows: Sequence[LedgerRecord], *, abort: bool = False) -> list[Judgement]:
        """A verdict for each interrupted import of ``rows`` (all of one target: the ledger's owner);
        ``abort``: a two-phase target's uncommitted jobs may be aborted (:data:`Verdict.ABORT`)."""
        if not rows:
            return []
        jobs = self.unknown_jobs({r.collection for r in rows})
        mine = {r.id for r in rows}
        others = [r for r in self.ledger.records([ObjectState.SUBMITTING, ObjectState.UNCERTAIN], own=True)
                  if r.id not in mine]
        return judge(rows, others, jobs, server_now=self.server_clock(), lag_s=self.policy.list_lag_s,
                     memory_s=self.policy.job_memory_s, abort=abort and self.target.two_phase)

    def due_in(self, rows: Sequence[LedgerRecord], *, every: bool) -> float:
        """Seconds until the job list has had ``lag_s`` to show the job of the oldest of ``rows`` (with
        ``every``, of each), on the server's clock; 0 when a row's claim has no server time."""
        now = self.server_clock()
        if now is None or not rows or any(r.server_at is None for r in rows):
            return 0.0
        ages = [now - r.server_at for r in rows if r.server_at is not None]
        return max(0.0, self.policy.list_lag_s + 1 - (min(ages) if every else max(ages)))


def reconcile(reconciler: Reconciler, ledger: Ledger, redact: Redactor, *,
              adopted: list[tuple[str, int]]) -> Counter[str]:
    """Resolve every ``submitting`` row of this target left by a run that died mid-call, and every
    ``uncertain`` one whose evidence may have arrived since: adopt its job when the server proves it,
    prove there is none (back to pending; a two-phase target's uncommitted jobs of it aborted), leave
    it while the job list may still lag, or hold it ``uncertain`` while the server cannot tell. An
    ``uncertain`` row that recorded a job the server forgot stays so: nothing the list shows can
    tell whether that job imported it."""
    rows = [r for r in ledger.records([ObjectState.SUBMITTING, ObjectState.UNCERTAIN], own=True)
            if r.state is ObjectState.SUBMITTING or r.job_id is None]
    return settle(reconciler, ledger, redact, rows, adopted=adopted,
                  detail="adopted after an interrupted run")


def settle(reconciler: Reconciler, ledger: Ledger, redact: Redactor, rows: list[LedgerRecord], *,
           adopted: list[tuple[str, int]], detail: str,
           decided: dict[int, Judgement] | None = None) -> Counter[str]:
    """Act on the verdict of each of ``rows`` (``submitting`` or ``uncertain``): adopt (the job and its
    objects go in ``adopted``), release, abort a two-phase target's uncommitted jobs of it then
    release, or hold. Counts by outcome (``uncertain``: only the rows this call made so); ``decided``
    gets each row's verdict as acted on (``WAIT``: left as it was, to look at again)."""
    counts: Counter[str] = Counter()
    decided = {} if decided is None else decided
    if not rows:
        return counts
    try:
        verdicts = reconciler.judge(rows, abort=True)
    except FatalTargetError:
        raise
    except TransientError as exc:  # the list may answer next time: leave the rows for the next run
        log.error("cannot read the job list (%s): %d interrupted object(s) wait for the next run",
                    redact(str(exc)), len(rows), extra={"event": "unsure"})
        counts["unsure"] += sum(r.state is ObjectState.SUBMITTING for r in rows)
        why = redact(f"cannot read the job list now ({exc})")
        decided.update({r.id: Judgement(r, Verdict.WAIT, None, why) for r in rows})
        return counts
    except TargetError as exc:  # this server cannot tell
        why = redact(f"cannot read the job list: {exc}")
        verdicts = [Judgement(r, Verdict.UNCERTAIN, None, why) for r in rows]

    def recorded(judged: Sequence[Judgement], job: JobInfo) -> bool:
        ids = [j.record.id for j in judged]
        if not ledger.record_job(ids, job.job_id, detail=detail):
            return False
        adopted.append((job.job_id, len(ids)))
        log.info("%s: adopted job %s", label([j.record.url for j in judged]), job.job_id,
                 extra={"event": "adopted", "url": judged[0].record.url, "job_id": job.job_id})
        return True

    calls: dict[Unit, list[Judgement]] = {}
    for judgement in verdicts:
        calls.setdefault(unit_of(judgement.record), []).append(judgement)
    for judged in calls.values():
        outcome = act(reconciler.target, ledger, redact, judged, adopt=recorded)
        fresh = [j.record.id for j in judged if j.record.state is ObjectState.SUBMITTING]
        if outcome.verdict is Verdict.ADOPT:
            counts["adopted"] += len(judged)
        elif outcome.verdict is Verdict.RELEASE:
            counts["released"] += len(judged)
        elif outcome.verdict is Verdict.UNCERTAIN:
            counts["uncertain"] += len(fresh)
        else:
            counts["unsure"] += len(fresh)
        decided.update({j.record.id: outcome._replace(record=j.record) for j in judged})
    return counts


Adopt = Callable[[Sequence[Judgement], JobInfo], bool]  # record the job for a call's rows; False: another's


def act(target: Target, ledger: Ledger, redact: Redactor, judged: Sequence[Judgement], *, adopt: Adopt,
        release: bool = True) -> Judgement:
    """Act on the verdict of one create call (its rows' judgements), the one place a verdict is acted
    on; returns what was done. ``ABORT``: abort a two-phase target's uncommitted jobs of it, then
    release (``WAIT`` when an abort fails); ``ADOPT``: ``adopt`` records the job (``UNCERTAIN`` when it
    proves to be another's); ``RELEASE``: back to pending (without ``release``: left to the caller,
    which sends the call again); ``UNCERTAIN``: its ``submitting`` rows held for a person; ``WAIT``:
    nothing, looked at again."""
    first = judged[0]
    ids = [j.record.id for j in judged]
    fresh = [j.record.id for j in judged if j.record.state is ObjectState.SUBMITTING]
    named = label([j.record.url for j in judged])
    if first.verdict is Verdict.ABORT:
        try:
            for job in first.jobs:
                target.abort(job.job_id)
        except TargetError as exc:  # committed meanwhile, or no answer: the next look decides
            why = redact(f"cannot abort its uncommitted jobs ({exc})")
            log.warning("%s: %s; looked at again", named, why, extra={"event": "abort-failed", "url": named})
            return first._replace(verdict=Verdict.WAIT, why=why)
        log.info("%s: aborted job(s) %s, uncommitted orphans of lost replies", named,
                 ", ".join(j.job_id for j in first.jobs),
                 extra={"event": "aborted", "url": first.record.url})
        first = first._replace(verdict=Verdict.RELEASE, why=f"aborted: {first.why}")
    if first.verdict is Verdict.ADOPT:
        assert first.job is not None
        return first if adopt(judged, first.job) else first._replace(verdict=Verdict.UNCERTAIN)
    if first.verdict is Verdict.UNCERTAIN:
        if fresh:
            ledger.mark_uncertain(fresh, first.why)
            for j in judged:
                log.error("%s: uncertain: %s", j.record.url, first.why,
                          extra={"event": "uncertain", "url": j.record.url})
    elif first.verdict is Verdict.RELEASE and release:
        ledger.release(ids, f"interrupted: {first.why}")
        log.info("%s: released: %s", named, first.why, extra={"event": "released", "url": first.record.url})
    return first
