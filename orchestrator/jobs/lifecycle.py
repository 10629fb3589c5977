"""The job lifecycle: what becomes of a job once a create call may have made it.

* :class:`Reconciler` finds the job a lost create call may have made and judges whose it is
  (:mod:`orchestrator.jobs.evidence`); :func:`reconcile` and :class:`LostReplies` act on its verdicts.
* :func:`refresh` learns the state of many jobs with few calls: the job list, a page of up to 100
  jobs a call, and a progress call only where the list cannot tell (a failure's reason, the rows
  imported where the list has no count but the progress call has, a job missing from the list).
* :class:`Window` bounds how many unfinished jobs this manifest keeps on the server, and narrows
  when the server says it is full.
* :class:`Drain` polls while a ``run --wait`` submits, so finished jobs free room for the next.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..errors import (
    MAX_RETRY_AFTER_S,
    FatalTargetError,
    JobNotFoundError,
    JobTerminalError,
    TargetError,
    TransientError,
)
from ..ledger.store import Ledger
from ..models import UNREADABLE_JOB_ID, JobInfo, JobState, LedgerRecord, ObjectState
from ..redact import Redactor
from ..sources.registry import bucket_and_key
from ..targets.base import Target
from ..targets.pacing import with_retries
from .evidence import Judgement, Unit, Verdict, culprit, judge, reported_names, unit_of

log = logging.getLogger("orchestrator")
LIST_FROM = 4  # from this many jobs to learn about, one list walk beats one progress call each
# a job id, the state it ended in (None: the server no longer knows it), its objects
OnFinished = Callable[[str, JobState | None, int], None]
MIN_POLL_S = 0.05  # between two polls of the same jobs, whatever --poll-interval says


class Reconciler:
    """Finds the job a lost create call may have made, from the server's job list, and judges whose it
    is (:func:`orchestrator.jobs.evidence.judge`).

    Jobs the ledger already knows are ignored; the others' file names come from progress calls,
    cached for the run (a job's file never changes); a job the server no longer describes is skipped.
    Transient errors are retried with backoff; what is left raises: :class:`TransientError` (try
    again later) or another :class:`TargetError` (this server cannot tell).
    """

    def __init__(self, target: Target, ledger: Ledger, *, max_attempts: int, stop: threading.Event,
                 server_clock: Callable[[], float | None], lag_s: float, memory_s: float,
                 sleep: Callable[[float], object] | None = None,
                 rng: Callable[[], float] = random.random,
                 max_retry_after_s: float = MAX_RETRY_AFTER_S) -> None:
        self.target = target
        self.ledger = ledger
        self.max_attempts = max_attempts
        self.max_retry_after_s = max_retry_after_s
        self.stop = stop
        self.server_clock = server_clock
        self.lag_s = lag_s
        self.memory_s = memory_s
        self.sleep: Callable[[float], object] = sleep if sleep is not None else stop.wait
        self.rng = rng
        self._files: dict[str, JobInfo | None] = {}
        self._lock = threading.Lock()

    def unknown_jobs(self, collections: set[str] | None, *, only: JobState | None = None) -> list[JobInfo]:
        """Every job into ``collections`` (None: any) that the ledger has never recorded, with its file
        name; ``only`` keeps the jobs the list shows in that state."""
        return with_retries(lambda: self._unknown_jobs(collections, only), max_attempts=self.max_attempts,
                            sleep=self.sleep, rng=self.rng, stop=self.stop,
                            what="listing the import jobs", max_retry_after_s=self.max_retry_after_s)

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
        return judge(rows, others, jobs, server_now=self.server_clock(), lag_s=self.lag_s,
                     memory_s=self.memory_s, abort=abort and self.target.two_phase)

    def due_in(self, rows: Sequence[LedgerRecord], *, every: bool) -> float:
        """Seconds until the job list has had ``lag_s`` to show the job of the oldest of ``rows`` (with
        ``every``, of each), on the server's clock; 0 when a row's claim has no server time."""
        now = self.server_clock()
        if now is None or not rows or any(r.server_at is None for r in rows):
            return 0.0
        ages = [now - r.server_at for r in rows if r.server_at is not None]
        return max(0.0, self.lag_s + 1 - (min(ages) if every else max(ages)))




def refresh(
    target: Target,
    ledger: Ledger,
    records: Iterable[LedgerRecord],
    *,
    max_attempts: int,
    stop: threading.Event,
    redact: Redactor,
    max_retry_after_s: float = MAX_RETRY_AFTER_S,
    sleep: Callable[[float], object] | None = None,
    rng: Callable[[], float] = random.random,
    concurrency: int = 4,
    on_polled: Callable[[], None] | None = None,
    on_finished: OnFinished | None = None,
) -> Counter[str]:
    """Learn the state of each submitted job once; move finished ones to completed or failed and
    remember the progress of running ones (for stall detection). A job the server no longer knows
    makes its rows ``uncertain``. From :data:`LIST_FROM` jobs on, the job list is walked first (until
    every job asked about was seen); a progress call is made only for a job the list did not show,
    a completed job the list gives no row count for (where the progress call has one) and a failed
    one without a reason. A job of several
    objects is asked about once and settles all of them: a completed one completes each, a failed one
    fails each (the one its reason names, if exactly one, is sent alone from then on). Returns counts
    of objects by job state, plus ``uncertain``. ``on_polled`` is called once per object,
    ``on_finished`` once per job seen finishing."""
    jobs: dict[str, list[LedgerRecord]] = {}
    for record in records:
        if record.job_id is not None:
            jobs.setdefault(record.job_id, []).append(record)
    counts: Counter[str] = Counter()
    pause: Callable[[float], object] = sleep if sleep is not None else stop.wait
    lock = threading.Lock()
    listed = _listed(target, set(jobs), max_attempts=max_attempts, stop=stop, pause=pause, rng=rng,
                     redact=redact, max_retry_after_s=max_retry_after_s) if len(jobs) >= LIST_FROM else {}

    def described(job_id: str) -> JobInfo:
        return with_retries(lambda: target.progress(job_id), max_attempts=max_attempts, sleep=pause, rng=rng,
                            stop=stop, what=f"progress of job {job_id}", max_retry_after_s=max_retry_after_s)

    def poll(job_id: str, members: list[LedgerRecord]) -> None:
        if stop.is_set():
            return
        first = members[0]
        info = listed.get(job_id)
        try:
            if info is None or (info.state is JobState.FAILED and not info.reason) or (
                    info.state is JobState.COMPLETED and target.reports_rows
                    and _rows_unknown(info, members)):
                info = described(job_id)  # the list cannot tell: ask about this job alone
        except FatalTargetError:
            stop.set()  # every queued poll would fail alike
            raise
        except TargetError as exc:
            if isinstance(exc, JobNotFoundError):
                ledger.mark_uncertain([r.id for r in members], f"the server no longer knows job {job_id}: "
                                                               "check the collection")
                with lock:
                    counts["uncertain"] += len(members)
                if on_finished is not None:  # it left this run's jobs all the same
                    on_finished(job_id, None, len(members))
            log.warning("%s: progress of job %s: %s", label([r.url for r in members]), job_id,
                        redact(str(exc)),
                        extra={"event": "poll-error", "url": first.url, "job_id": job_id})
            return
        if info.state is JobState.UNCOMMITTED:  # imported, invisible: the ledger holds its id, commit it
            info = _commit(target, first, info, described, redact)
        if info.state is JobState.RUNNING:
            ledger.note_progress(job_id, info.progress)
        elif info.state is JobState.COMPLETED:
            _completed(ledger, job_id, members, info, from_footer=not target.reports_rows)
        elif info.state is JobState.FAILED:
            reason = redact(f"job {job_id} failed: {info.reason or 'no reason given'}")
            blamed = culprit(reason, members)
            ledger.job_failed([r.id for r in members], job_id, reason,
                              culprit=blamed.id if blamed is not None else None)
            for record in members:
                log.error("%s: %s", record.url, reason,
                            extra={"event": "job-failed", "url": record.url, "job_id": job_id})
            if blamed is not None:
                log.info("%s: named as the cause of job %s's failure: it goes in a job of its own from now "
                         "on", blamed.url, job_id, extra={"event": "culprit", "url": blamed.url,
                                                          "job_id": job_id})
        with lock:
            counts[info.state.value] += len(members)
        if on_finished is not None and info.state is not JobState.RUNNING:
            on_finished(job_id, info.state, len(members))

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="poll") as pool:
        futures = [(pool.submit(poll, job_id, members), len(members)) for job_id, members in jobs.items()]
        try:
            for future, size in futures:
                future.result()
                if on_polled is not None:
                    for _ in range(size):
                        on_polled()
        finally:
            for future, _ in futures:
                future.cancel()
    return counts


def label(urls: Sequence[str]) -> str:
    """How a message names the objects of one job or create call: the first, and how many more."""
    return urls[0] + (f" (and {len(urls) - 1} more)" if len(urls) > 1 else "")


def _rows_unknown(info: JobInfo, members: list[LedgerRecord]) -> bool:
    """Whether a completed job as listed lacks the rows it imported (per file, for several objects)."""
    return info.imported_rows is None if len(members) == 1 else not any(r is not None for r in info.file_rows)


def _completed(ledger: Ledger, job_id: str, members: list[LedgerRecord], info: JobInfo, *,
               from_footer: bool = False) -> None:
    """Complete every object of a finished job, each with the rows the server says it imported from
    it: the job's total for a job of one object, the per-file count for a job of several. A target
    that does not count rows (``from_footer``) imported each whole file: the footer's count."""
    if from_footer:
        imported = {r.id: r.rows for r in members}
    elif len(members) == 1:
        imported = {members[0].id: info.imported_rows}
    else:
        per_file = dict(zip(info.file_names, info.file_rows, strict=False))
        imported = {r.id: next((per_file[n] for n in reported_names(r.sent_as or r.url, bucket_and_key(
            r.url)[0]) if n in per_file), None) for r in members}
    ledger.complete_job(job_id, imported)
    for record in members:
        rows = imported[record.id]
        log.info("%s: job %s completed%s", record.url, job_id, "" if rows is None else f" ({rows} rows)",
                 extra={"event": "completed", "url": record.url, "job_id": job_id,
                        "collection": record.collection, "rows": rows})
        if None not in (record.rows, rows) and record.rows != rows:
            log.warning("%s: job %s imported %s rows; the file holds %s", record.url, job_id, rows,
                        record.rows, extra={"event": "row-mismatch", "url": record.url, "job_id": job_id})


def _commit(target: Target, record: LedgerRecord, info: JobInfo, described: Callable[[str], JobInfo],
            redact: Redactor) -> JobInfo:
    """Commit a job this ledger owns (its id was recorded before this call); the job reads as running
    until the server says it completed. A job already terminal is whatever the server says it is."""
    try:
        target.commit(info.job_id)
    except JobTerminalError:
        return described(info.job_id)
    except TransientError as exc:  # still importing, or the call failed: the next poll commits it
        log.info("%s: commit of job %s: %s; later", record.url, info.job_id, redact(str(exc)),
                 extra={"event": "commit-later", "url": record.url, "job_id": info.job_id})
        return dataclasses.replace(info, state=JobState.RUNNING)
    log.info("%s: job %s committed", record.url, info.job_id,
             extra={"event": "committed", "url": record.url, "job_id": info.job_id})
    after = described(info.job_id)  # committing is quick: its end is often seen in the same poll
    return after if after.state in (JobState.COMPLETED, JobState.FAILED) else dataclasses.replace(
        after, state=JobState.RUNNING)


def abort_orphans(reconciler: Reconciler, ledger: Ledger, redact: Redactor) -> int:
    """Two-phase targets: abort every uncommitted job that no ledger row owns but whose object's
    import is settled otherwise (it holds another job, or was proven to have none): a lost reply's
    orphan, whose rows never become visible. A job that an unresolved (``submitting``) import may own
    is left to :func:`reconcile`; one that two imports could own is left alone. Returns how many."""
    target = reconciler.target
    if not target.two_phase:
        return 0
    try:
        jobs = [j for j in reconciler.unknown_jobs(None, only=JobState.UNCOMMITTED)]
    except TargetError as exc:
        log.warning("cannot look for orphaned uncommitted jobs (%s); the next run looks again",
                    redact(str(exc)), extra={"event": "unsure"})
        return 0
    aborted = 0
    for job in jobs:
        found = [ledger.by_reported_name(name, job.collection) for name in job.names]
        if not found or any(len(o) != 1 or o[0].state is ObjectState.SUBMITTING for o in found):
            continue
        owners = [o[0] for o in found]
        try:
            target.abort(job.job_id)
        except TargetError as exc:
            log.warning("%s: cannot abort orphaned job %s: %s", owners[0].url, job.job_id, redact(str(exc)),
                        extra={"event": "abort-failed", "url": owners[0].url, "job_id": job.job_id})
            continue
        aborted += 1
        log.info("%s: aborted job %s, an uncommitted orphan of a lost reply", owners[0].url, job.job_id,
                 extra={"event": "aborted", "url": owners[0].url, "job_id": job.job_id})
    return aborted


def _listed(target: Target, wanted: set[str], *, max_attempts: int, stop: threading.Event,
            pause: Callable[[float], object], rng: Callable[[], float],
            redact: Redactor, max_retry_after_s: float) -> dict[str, JobInfo]:
    """The wanted jobs as the job list shows them, walking its pages until each was seen. A list
    whose pages shift between calls may skip a job: those are asked about one by one. A list that
    cannot be read leaves them all to one-by-one calls; a fatal error stops at once."""
    def walk() -> dict[str, JobInfo]:
        found: dict[str, JobInfo] = {}
        page = target.list_page_size
        for seen, job in enumerate(target.list_jobs(), start=1):
            if job.job_id in wanted:
                found[job.job_id] = job
                if len(found) == len(wanted):
                    break
            # a long history of other jobs: once the pages walked outnumber the jobs still missing,
            # one progress call each is cheaper than walking on (not where one reply held them all)
            if stop.is_set() or (page is not None and seen % page == 0 and seen // page > len(wanted)
                                 - len(found)):
                break
        return found

    try:
        return with_retries(walk, max_attempts=max_attempts, sleep=pause, rng=rng, stop=stop,
                            what="listing the import jobs", max_retry_after_s=max_retry_after_s)
    except FatalTargetError:
        stop.set()
        raise
    except TargetError as exc:
        log.info("the job list cannot be read (%s): asking about each job", redact(str(exc)),
                 extra={"event": "list-unavailable"})
        return {}


class Window:
    """How many unfinished jobs this manifest keeps on the server at once.

    A slot is taken before a create call and kept by the job it makes (``started``) until the job is
    seen to end; a call that made no job gives it back. ``most`` is the configured bound; ``limit``
    narrows to the jobs already running when the server answers "full", and widens by one after a
    full turn of the window without such an answer, each refused widening doubling the turns it waits
    for (up to 16): a server shared with others costs a refused call per several windows of jobs, not
    one per object. Without ``wait``, a full window (or a full server: :meth:`close`) queues the rest
    for a later run.
    """

    def __init__(self, most: int, *, running: int = 0, stop: threading.Event) -> None:
        self.most = most
        self.limit = most
        self.in_use = running  # slots taken: running jobs, and create calls in flight
        self.running = running  # slots that hold a job
        self.closed = False
        self._turn = 0
        self._patience = 1  # turns of the window between two attempts to widen it
        self._stop = stop
        self._cond = threading.Condition()

    def _open(self) -> bool:
        return not (self.closed or self._stop.is_set())

    def acquire(self, *, wait: bool) -> bool:
        with self._cond:
            while wait and self.in_use >= self.limit and self._open():
                self._cond.wait(0.25)
            if not self._open() or self.in_use >= self.limit:
                return False
            self.in_use += 1
            return True

    def started(self) -> None:
        """The caller's slot now holds a job (or may: a lost reply): it stays taken until the job ends."""
        with self._cond:
            self.running += 1

    def release(self, *, finished: bool) -> None:
        """A slot is free again: its job ended (``finished``), or its call made no job."""
        with self._cond:
            self.in_use = max(0, self.in_use - 1)
            if finished:
                self.running = max(0, self.running - 1)
                self._turn += 1
                if self._turn >= self.limit * self._patience and self.limit < self.most:
                    self.limit += 1
                    self._turn = 0
            self._cond.notify_all()

    def dropped(self) -> None:
        """A slot kept for a lost reply's job frees: the call was proven to have made none, or its
        job cannot be told (held ``uncertain``): no end of it will be seen."""
        with self._cond:
            self.in_use = max(0, self.in_use - 1)
            self.running = max(0, self.running - 1)
            self._cond.notify_all()

    def full(self) -> None:
        """The server refused a job as full: hold no more than the jobs already running (at least
        one, to probe again)."""
        with self._cond:
            if self.limit < self.most:  # a widening was refused: wait longer before the next
                self._patience = min(16, self._patience * 2)
            self.limit = max(1, self.running)
            self._turn = 0

    def requeue(self) -> bool:
        """For a caller whose create was refused as full: give its slot back, wait for room, take a
        slot again. False when the run stops or the window closes (the caller holds a slot all the
        same, to give back as usual)."""
        with self._cond:
            self.in_use = max(0, self.in_use - 1)
            self._cond.notify_all()
            while self.in_use >= self.limit and self._open():
                self._cond.wait(0.25)
            self.in_use += 1
            return self._open()

    def close(self) -> None:
        """No more creates in this run: the rest waits for a later one."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class Drain:
    """While a ``run --wait`` submits: poll the target's unfinished jobs every ``interval`` seconds,
    freeing the window's room as they finish, and settle this run's lost replies (``lost``) as their
    jobs become listed, until :meth:`finish` and every job of ``ours`` ended.

    A job leaves ``ours`` however it ends: seen finishing, forgotten by the server, or its rows moved
    on by another path (``held`` answers which of ``ours`` still hold ``submitted`` rows)."""

    def __init__(self, poll: Callable[[OnFinished], None], window: Window, *, interval: float,
                 stop: threading.Event, pause: Callable[[float], object],
                 held: Callable[[Sequence[str]], dict[str, str]], lost: LostReplies | None = None) -> None:
        self._poll = poll
        self._window = window
        self._interval = interval
        self._stop = stop
        self._pause = pause
        self._held = held
        self._lost = lost
        self._done = threading.Event()
        self.ours: dict[str, int] = {}  # this run's unfinished jobs, and their objects
        self.ended: Counter[str] = Counter()  # objects, by the state their job ended in (this run saw)
        self._seen_end: set[str] = set()  # every job seen ending, in case it ends before add()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="drain", daemon=True)

    def start(self) -> Drain:
        self._thread.start()
        return self

    def add(self, job_id: str, objects: int = 1) -> None:
        """A job of this run's: the run waits for it (a poll may have seen it end already)."""
        with self._lock:
            if job_id not in self._seen_end:
                self.ours[job_id] = objects

    def finish(self) -> None:
        """Submitting is over: poll on until this run's jobs have ended, then return."""
        self._done.set()
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _finished(self, job_id: str, state: JobState | str | None, objects: int) -> None:
        """A job ended (any job: an earlier run's too, whose end this run counts as it sees it)."""
        self._window.release(finished=True)
        with self._lock:
            self.ours.pop(job_id, None)
            self._seen_end.add(job_id)
            self.ended["uncertain" if state is None else str(state)] += objects

    def _left(self) -> None:
        """Every job of ``ours`` whose rows no longer wait on it (moved on by another path) ends."""
        with self._lock:
            ours = dict(self.ours)
        if not ours:
            return
        held = self._held(list(ours))
        for job_id, objects in ours.items():
            if held.get(job_id, ObjectState.SUBMITTED.value) != ObjectState.SUBMITTED.value:
                self._finished(job_id, held[job_id], objects)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self._poll(self._finished)
                if self._lost is not None:
                    self._lost.settle(wait=False, on_adopted=self.add)
                self._left()
                with self._lock:
                    waiting = bool(self.ours)
                if self._done.is_set() and not waiting:
                    return
                self._pause(max(self._interval, MIN_POLL_S))
        except BaseException as exc:  # surfaces in finish(), in the run's thread
            self.error = exc
            self._stop.set()


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


class LostReplies:
    """This run's create calls whose reply was lost and whose job the list did not show yet: their
    rows stay ``submitting``, and each keeps its slot of the job window (the job may run).

    :meth:`settle` looks at them again while the run goes on (from the drain's loop) once the job list
    has had ``settings.job_list_lag_s`` to show the oldest, and at the run's end for all of them: one
    list call serves every call waiting. A call whose job is adopted keeps its slot (its job's end
    frees it, as any job's); one proven to have none, or held ``uncertain``, frees it."""

    def __init__(self, reconciler: Reconciler, ledger: Ledger, redact: Redactor, window: Window) -> None:
        self._reconciler = reconciler
        self._ledger = ledger
        self._redact = redact
        self._window = window
        self._calls: list[list[int]] = []
        self.counts: Counter[str] = Counter()  # how the calls settled: adopted, released, uncertain
        self._lock = threading.Lock()
        self._settling = threading.Lock()

    def add(self, rows: list[int]) -> None:
        """A lost reply's call: its rows, and the window slot its caller took (now held here)."""
        self._window.started()
        with self._lock:
            self._calls.append(rows)

    def _rows(self) -> tuple[list[list[int]], list[LedgerRecord]]:
        """The calls waiting, and their rows still ``submitting``."""
        with self._lock:
            calls = list(self._calls)
        found = self._ledger.rows([row for call in calls for row in call]) if calls else []
        return calls, [r for r in found if r.state is ObjectState.SUBMITTING]

    def settle(self, *, wait: bool, on_adopted: Callable[[str, int], None] | None = None,
               pause: Callable[[float], object] | None = None) -> None:
        """Judge the calls once the oldest is due; with ``wait``, once every one is, pausing till then
        (outside the lock: the drain polls on meanwhile)."""
        waiting, rows = self._rows()
        if wait and pause is not None and (delay := self._reconciler.due_in(rows, every=True)):
            log.info("waiting %.0f s for the job list to show the job(s) of %d lost repl%s", delay,
                     len(waiting), "y" if len(waiting) == 1 else "ies", extra={"event": "waiting"})
            pause(delay)
        with self._settling:
            calls, rows = self._rows()
            if not calls or (not wait and self._reconciler.due_in(rows, every=False) > 0):
                return
            records = {r.id: r for r in rows}
            decided: dict[int, Judgement] = {}
            counts = settle(self._reconciler, self._ledger, self._redact, rows, adopted=[],
                            detail="adopted after a lost reply", decided=decided)
            with self._lock:
                self.counts.update(counts)
                for call in calls:
                    judged = decided.get(call[0]) if call[0] in records else None
                    if judged is not None and judged.verdict is Verdict.WAIT:
                        continue
                    self._calls.remove(call)  # settled (or moved on by another path)
                    if judged is not None and judged.verdict is Verdict.ADOPT and judged.job is not None:
                        if on_adopted is not None:
                            on_adopted(judged.job.job_id, len(call))
                    else:
                        self._window.dropped()


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
    calls: dict[Unit, list[Judgement]] = {}
    for judgement in verdicts:
        calls.setdefault(unit_of(judgement.record), []).append(judgement)
    for judged in calls.values():
        outcome = _act(reconciler.target, ledger, redact, judged, adopted=adopted, detail=detail)
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


def _act(target: Target, ledger: Ledger, redact: Redactor, judged: list[Judgement], *,
         adopted: list[tuple[str, int]], detail: str) -> Judgement:
    """Act on the verdict of one create call (its rows' judgements): what was done."""
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
        if ledger.record_job(ids, first.job.job_id, detail=detail):
            adopted.append((first.job.job_id, len(ids)))
            log.info("%s: adopted job %s", named, first.job.job_id,
                     extra={"event": "adopted", "url": first.record.url, "job_id": first.job.job_id})
            return first
        return first._replace(verdict=Verdict.UNCERTAIN)
    if first.verdict is Verdict.UNCERTAIN:
        if fresh:
            ledger.mark_uncertain(fresh, first.why)
            for j in judged:
                log.error("%s: uncertain: %s", j.record.url, first.why,
                          extra={"event": "uncertain", "url": j.record.url})
    elif first.verdict is Verdict.RELEASE:
        ledger.release(ids, f"interrupted: {first.why}")
        log.info("%s: released: %s", named, first.why, extra={"event": "released", "url": first.record.url})
    return first
