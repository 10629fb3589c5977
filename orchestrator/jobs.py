"""The job lifecycle: what becomes of a job once a create call may have made it.

* :class:`Reconciler` finds the job a lost create call may have made and judges whose it is
  (:mod:`orchestrator.evidence`); :func:`reconcile` and :func:`look_again` act on its verdicts.
* :func:`refresh` learns the state of many jobs with few calls: the job list, a page of up to 100
  jobs a call, and a progress call only where the list cannot tell (a failure's reason, the rows
  imported, a job missing from the list).
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

from .errors import (
    MAX_RETRY_AFTER_S,
    FatalTargetError,
    JobNotFoundError,
    JobTerminalError,
    TargetError,
    TransientError,
)
from .evidence import Judgement, Unit, Verdict, bucket_and_key, culprit, judge, reported_names, unit_of
from .ledger import Ledger
from .models import JobInfo, JobState, LedgerRecord, ObjectState
from .pacing import with_retries
from .redact import Redactor
from .targets.base import Target

log = logging.getLogger("orchestrator")
LIST_FROM = 4  # from this many jobs to learn about, one list walk beats one progress call each
LIST_PAGE = 100  # jobs per page of the paged job lists (Zilliz)
OnFinished = Callable[[str, JobState, int], None]  # a job id, the state it ended in, its objects
MIN_POLL_S = 0.05  # between two polls of the same jobs, whatever --poll-interval says


class Reconciler:
    """Finds the job a lost create call may have made, from the server's job list, and judges whose it
    is (:func:`orchestrator.evidence.judge`).

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
                if job.job_id not in known and (info := self._with_file(job)) is not None:
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

    def judge(self, rows: Sequence[LedgerRecord]) -> list[Judgement]:
        """A verdict for each interrupted import of ``rows`` (all of one target: the ledger's owner)."""
        if not rows:
            return []
        jobs = self.unknown_jobs({r.collection for r in rows})
        mine = {r.id for r in rows}
        others = [r for r in self.ledger.records([ObjectState.SUBMITTING, ObjectState.UNCERTAIN], own=True)
                  if r.id not in mine]
        return judge(rows, others, jobs, server_now=self.server_clock(), lag_s=self.lag_s,
                     memory_s=self.memory_s)





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
    a completed job (for the rows it imported) and a failed one without a reason. A job of several
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
            if info is None or info.state is JobState.COMPLETED or (
                    info.state is JobState.FAILED and not info.reason):
                info = described(job_id)
        except FatalTargetError:
            stop.set()  # every queued poll would fail alike
            raise
        except TargetError as exc:
            if isinstance(exc, JobNotFoundError):
                ledger.mark_uncertain([r.id for r in members], f"the server no longer knows job {job_id}: "
                                                               "check the collection")
                with lock:
                    counts["uncertain"] += len(members)
            log.warning("%s: progress of job %s: %s", label([r.url for r in members]), job_id,
                        redact(str(exc)),
                        extra={"event": "poll-error", "url": first.url, "job_id": job_id})
            return
        if info.state is JobState.UNCOMMITTED:  # imported, invisible: the ledger holds its id, commit it
            info = _commit(target, first, info, described, redact)
        if info.state is JobState.RUNNING:
            ledger.note_progress(job_id, info.progress)
        elif info.state is JobState.COMPLETED:
            _completed(ledger, job_id, members, info)
        elif info.state is JobState.FAILED:
            reason = redact(f"job {job_id} failed: {info.reason or 'no reason given'}")
            blamed = culprit(reason, members)
            ledger.job_failed([r.id for r in members], job_id, reason,
                              culprit=blamed.id if blamed is not None else None)
            for record in members:
                log.warning("%s: %s", record.url, reason,
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


def _completed(ledger: Ledger, job_id: str, members: list[LedgerRecord], info: JobInfo) -> None:
    """Complete every object of a finished job, each with the rows the server says it imported from
    it: the job's total for a job of one object, the per-file count for a job of several."""
    if len(members) == 1:
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
        for seen, job in enumerate(target.list_jobs(), start=1):
            if job.job_id in wanted:
                found[job.job_id] = job
                if len(found) == len(wanted):
                    break
            # a long history of other jobs: once the pages walked outnumber the jobs still missing,
            # one progress call each is cheaper than walking on
            if stop.is_set() or (seen % LIST_PAGE == 0 and seen // LIST_PAGE > len(wanted) - len(found)):
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
    freeing the window's room as they finish, until :meth:`finish` and every job of ``ours`` ended."""

    def __init__(self, poll: Callable[[OnFinished], None], window: Window, *, interval: float,
                 stop: threading.Event, pause: Callable[[float], object]) -> None:
        self._poll = poll
        self._window = window
        self._interval = interval
        self._stop = stop
        self._pause = pause
        self._done = threading.Event()
        self.ours: dict[str, int] = {}  # this run's unfinished jobs, and their objects
        self.ended: Counter[str] = Counter()  # objects, by the state their job ended in
        self._seen_end: dict[str, tuple[str, int]] = {}  # every job seen ending, in case it ends before add()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="drain", daemon=True)

    def start(self) -> Drain:
        self._thread.start()
        return self

    def add(self, job_id: str, objects: int = 1) -> None:
        """A job of this run's: the run waits for it (a poll may have seen it end already)."""
        with self._lock:
            if job_id in self._seen_end:
                state, ended = self._seen_end[job_id]
                self.ended[state] += ended
            else:
                self.ours[job_id] = objects

    def finish(self) -> None:
        """Submitting is over: poll on until this run's jobs have ended, then return."""
        self._done.set()
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _finished(self, job_id: str, state: JobState, objects: int) -> None:
        self._window.release(finished=True)
        with self._lock:
            if self.ours.pop(job_id, None) is not None:
                self.ended[state.value] += objects
            else:
                self._seen_end[job_id] = (state.value, objects)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self._poll(self._finished)
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
    """Resolve every ``submitting`` row of this target left by a run that died mid-call: adopt its job
    when the server proves it, prove there is none (back to pending), leave it for the next run while
    the job list may still lag, or mark it ``uncertain`` when the server cannot tell."""
    rows = list(ledger.records([ObjectState.SUBMITTING], own=True))
    return _settle(reconciler, ledger, redact, rows, adopted=adopted,
                   detail="adopted after an interrupted run")


def look_again(reconciler: Reconciler, ledger: Ledger, redact: Redactor, row_ids: list[int], *,
               pause: Callable[[float], object], adopted: list[tuple[str, int]]) -> Counter[str]:
    """A second look, at the end of the run, at the imports left unsure: once the job list has had
    ``settings.job_list_lag_s`` to show their jobs (waiting that long if needed)."""
    rows = [r for r in map(ledger.row, row_ids) if r is not None and r.state is ObjectState.SUBMITTING]
    now = reconciler.server_clock()
    ages = [now - r.server_at for r in rows if now is not None and r.server_at is not None]
    if ages and (delay := reconciler.lag_s + 1 - min(ages)) > 0:
        log.info("waiting %.0f s for the job list to show %d job(s) whose reply was lost", delay, len(rows),
                 extra={"event": "waiting"})
        pause(delay)
    return _settle(reconciler, ledger, redact, rows, adopted=adopted, detail="adopted after a lost reply")


def _settle(reconciler: Reconciler, ledger: Ledger, redact: Redactor, rows: list[LedgerRecord], *,
            adopted: list[tuple[str, int]], detail: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    if not rows:
        return counts
    try:
        verdicts = reconciler.judge(rows)
    except FatalTargetError:
        raise
    except TransientError as exc:  # the list may answer next time: leave the rows for the next run
        log.warning("cannot read the job list (%s): %d interrupted object(s) wait for the next run",
                    redact(str(exc)), len(rows), extra={"event": "unsure"})
        counts["unsure"] += len(rows)
        return counts
    except TargetError as exc:  # this server cannot tell
        for row in rows:
            ledger.mark_uncertain(row.id, redact(f"cannot read the job list: {exc}"))
            counts["uncertain"] += 1
        return counts
    calls: dict[Unit, list[Judgement]] = {}
    for judgement in verdicts:
        calls.setdefault(unit_of(judgement.record), []).append(judgement)
    for judged in calls.values():
        verdict, job, why = judged[0].verdict, judged[0].job, judged[0].why
        ids = [j.record.id for j in judged]
        named = label([j.record.url for j in judged])
        if verdict is Verdict.ADOPT:
            assert job is not None
            if ledger.record_job(ids, job.job_id, detail=detail):
                adopted.append((job.job_id, len(ids)))
                counts["adopted"] += len(ids)
                log.info("%s: adopted job %s", named, job.job_id,
                         extra={"event": "adopted", "url": judged[0].record.url, "job_id": job.job_id})
            else:
                counts["uncertain"] += len(ids)
        elif verdict is Verdict.UNCERTAIN:
            ledger.mark_uncertain(ids, why)
            for j in judged:
                log.warning("%s: uncertain: %s", j.record.url, why,
                            extra={"event": "uncertain", "url": j.record.url})
            counts["uncertain"] += len(ids)
        elif verdict is Verdict.RELEASE:
            ledger.release(ids, f"interrupted: {why}")
            counts["released"] += len(ids)
        else:
            counts["unsure"] += len(ids)
    return counts
