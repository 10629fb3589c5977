"""Submitting: bounded concurrency, retries by error type, pacing, and the ledger around every call.

The ledger row is committed as ``submitting`` before each create call and the job id is committed
the moment it arrives, so a crash at any instant leaves at worst a ``submitting`` row, which the
:class:`Reconciler` resolves before anything is sent again.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from .checks import Preflight
from .errors import (
    MAX_RETRY_AFTER_S,
    AmbiguousError,
    FatalTargetError,
    JobNotFoundError,
    PermanentError,
    SourceError,
    TargetError,
    TransientError,
)
from .evidence import Judgement, Verdict, judge, name_key
from .ledger import Ledger
from .models import (
    Credentials,
    ImportRequest,
    JobInfo,
    JobState,
    LedgerRecord,
    ObjectState,
    PlanItem,
    Secret,
)
from .targets.base import Target

log = logging.getLogger("orchestrator")
T = TypeVar("T")


class Outcome(enum.StrEnum):
    SUBMITTED = "submitted"  # a job was created
    ADOPTED = "adopted"  # the create call's reply was lost, but its job was found and recorded
    FAILED = "failed"  # the server refused the object
    DEFERRED = "deferred"  # retries ran out on transient errors; stays pending for the next run
    UNSURE = "unsure"  # a reply was lost and the job list could not be read; the next run looks again
    INVALID = "invalid"  # the pre-flight check found problems: recorded, not submitted
    QUEUED = "queued"  # another object the server would report under the same name is unresolved
    NOT_STARTED = "not-started"  # the run was stopping


class RateLimiter:
    """At most ``per_second`` acquisitions per second across threads, evenly spaced."""

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


class Redactor(logging.Filter):
    """Removes every secret's value from a text before it is stored; as a logging filter, from every
    log record (its message and its ``error`` field), whatever code logged it."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        super().__init__()
        self._values = sorted({s.reveal() for s in secrets if len(s.reveal()) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self(record.getMessage()), None
        error = getattr(record, "error", None)
        if isinstance(error, str):
            record.error = self(error)
        return True


def backoff(attempt: int, *, retry_after: float | None, rng: Callable[[], float],
            base: float = 0.5, cap: float = 30.0) -> float:
    """Full-jitter exponential backoff, never shorter than the server's ``Retry-After`` (a hint that is
    not a finite number of seconds is ignored; one above :data:`MAX_RETRY_AFTER_S` waits that long)."""
    delay = rng() * min(cap, base * 2.0 ** (attempt - 1))
    if retry_after is None or not math.isfinite(retry_after) or retry_after < 0:
        return delay
    return max(delay, min(retry_after, MAX_RETRY_AFTER_S))


def idempotency_key(url: str, version: str, destination: str, key_gen: int) -> str:
    """The same for every call about one import (object version into a destination); new after a
    server-side failure or a re-arm (``key_gen``), so a server that honours keys never hands back a
    failed job, and never the job of another destination."""
    digest = hashlib.sha256(f"{url}\0{version}\0{destination}\0{key_gen}".encode()).hexdigest()
    return f"orch-{digest[:40]}"


def with_retries(fn: Callable[[], T], *, max_attempts: int, sleep: Callable[[float], object],
                 rng: Callable[[], float], stop: threading.Event) -> T:
    """Call ``fn`` until it succeeds, retrying :class:`TransientError` with backoff."""
    attempt = 1
    while True:
        try:
            return fn()
        except TransientError as exc:
            if attempt >= max_attempts or stop.is_set():
                raise
            sleep(backoff(attempt, retry_after=exc.retry_after, rng=rng))
            attempt += 1


class NameGuard:
    """At most one unresolved create call per :func:`~orchestrator.evidence.name_key`, so that a job the
    server reports by name can always be told apart. A name in flight makes the next object with it
    wait; a name left unresolved (a lost reply, an interrupted run's ``submitting`` or ``uncertain``
    row) holds it back for this run."""

    def __init__(self, stuck: Iterable[tuple[str, str]] = ()) -> None:
        self._stuck = set(stuck)
        self._busy: set[tuple[str, str]] = set()
        self._cond = threading.Condition()

    def acquire(self, key: tuple[str, str], stop: threading.Event) -> bool:
        with self._cond:
            while key in self._busy and not stop.is_set():
                self._cond.wait(0.5)
            if key in self._stuck or stop.is_set():
                return False
            self._busy.add(key)
            return True

    def release(self, key: tuple[str, str], *, resolved: bool) -> None:
        with self._cond:
            self._busy.discard(key)
            if not resolved:
                self._stuck.add(key)
            self._cond.notify_all()


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
                 rng: Callable[[], float] = random.random) -> None:
        self.target = target
        self.ledger = ledger
        self.max_attempts = max_attempts
        self.stop = stop
        self.server_clock = server_clock
        self.lag_s = lag_s
        self.memory_s = memory_s
        self.sleep: Callable[[float], object] = sleep if sleep is not None else stop.wait
        self.rng = rng
        self._files: dict[str, JobInfo | None] = {}
        self._lock = threading.Lock()

    def unknown_jobs(self, collections: set[str]) -> list[JobInfo]:
        """Every job into ``collections`` that the ledger has never recorded, with its file name."""
        return with_retries(lambda: self._unknown_jobs(collections), max_attempts=self.max_attempts,
                            sleep=self.sleep, rng=self.rng, stop=self.stop)

    def _unknown_jobs(self, collections: set[str]) -> list[JobInfo]:
        found: list[JobInfo] = []
        listed = (j for j in self.target.list_jobs() if j.collection is None or j.collection in collections)
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


class Submitter:
    """Submits planned objects through a bounded pool, recording every step in the ledger."""

    def __init__(
        self,
        target: Target,
        ledger: Ledger,
        *,
        concurrency: int,
        max_attempts: int,
        credentials_for: Callable[[int], Credentials | None],
        object_url: Callable[[PlanItem], str],
        reconciler: Reconciler,
        names: NameGuard,
        stop: threading.Event,
        redact: Redactor,
        preflight: Preflight | None = None,
        enforce: bool = True,
        sleep: Callable[[float], object] | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.target = target
        self.preflight = preflight
        self.enforce = enforce
        self.ledger = ledger
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.credentials_for = credentials_for
        self.object_url = object_url
        self.reconciler = reconciler
        self.names = names
        self.stop = stop
        self.redact = redact
        self.sleep: Callable[[float], object] = sleep if sleep is not None else stop.wait
        self.rng = rng
        self.fatal: FatalTargetError | None = None
        self.job_ids: list[str] = []  # jobs created or adopted by this run
        self.unresolved: list[int] = []  # rows left `submitting` after a lost reply: looked at again
        self.made_uncertain = 0  # rows this submitter turned `uncertain`
        self._lock = threading.Lock()

    def submit_all(self, items: Iterable[PlanItem], on_outcome: Callable[[PlanItem, Outcome], None]) -> None:
        """Submit every item, at most ``concurrency`` calls in flight; stop early when asked."""
        slots = threading.BoundedSemaphore(self.concurrency * 2)
        crashed: list[BaseException] = []

        def done(item: PlanItem, future: Future[Outcome]) -> None:
            slots.release()
            error = future.exception()
            if error is not None:  # a bug or a broken ledger: stop cleanly, then let it surface
                crashed.append(error)
                self.stop.set()
                return
            on_outcome(item, future.result())

        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="submit") as pool:
            for item in items:
                slots.acquire()
                if self.stop.is_set():
                    slots.release()
                    on_outcome(item, Outcome.NOT_STARTED)
                    continue
                future = pool.submit(self.submit_one, item)
                future.add_done_callback(lambda f, item=item: done(item, f))  # type: ignore[misc]
        if crashed:
            raise crashed[0]

    def submit_one(self, item: PlanItem) -> Outcome:
        if self.stop.is_set():
            return Outcome.NOT_STARTED
        assert item.route is not None
        stopped, rows = self._check(item)
        if stopped is not None:
            return stopped
        key = name_key(item.route.collection, item.obj.url)
        if not self.names.acquire(key, self.stop):
            if self.stop.is_set():
                return Outcome.NOT_STARTED
            log.info("%s: waits its turn: another object the server would report under the same name is "
                     "unresolved", item.obj.url, extra={"event": "queued", "url": item.obj.url})
            return Outcome.QUEUED
        outcome: Outcome | None = None
        try:
            outcome = self._submit(item, rows)
            return outcome
        finally:
            self.names.release(key, resolved=outcome not in (None, Outcome.UNSURE))

    def _submit(self, item: PlanItem, rows: int | None) -> Outcome:
        assert item.route is not None
        obj = item.obj
        url = self.object_url(item)
        claim = self.ledger.begin_submission(item, rows=rows, sent_as=url,
                                             server_at=self.reconciler.server_clock())
        if claim is None:
            return Outcome.NOT_STARTED  # listed twice: another submission owns it
        destination = f"{self.ledger.owner}\0{item.route.collection}\0{item.route.partition or ''}"
        request = ImportRequest(
            object_url=url, collection=item.route.collection, partition=item.route.partition,
            credentials=self.credentials_for(item.source),
            idempotency_key=idempotency_key(obj.url, obj.version, destination, claim.key_gen), obj=obj,
            source=item.source,
        )
        attempt = 1
        while True:
            try:
                job_id = self.target.create(request)
            except FatalTargetError as exc:
                self._fatal(exc)
                self.ledger.refuse(claim.row, self.redact(str(exc)), permanent=False)
                return Outcome.DEFERRED
            except PermanentError as exc:
                message = self.redact(str(exc))
                self.ledger.refuse(claim.row, message, permanent=True)
                log.warning("%s: refused: %s", obj.url, message,
                            extra={"event": "refused", "url": obj.url, "error": message})
                return Outcome.FAILED
            except AmbiguousError as exc:
                found = self._look_for_job(claim.row, exc)
                if found is not None:
                    return found  # adopted, or unsure: the row stays `submitting` for a later look
                if attempt >= self.max_attempts or self.stop.is_set():
                    return self._defer(claim.row, obj.url, attempt, exc)  # proven: no job for it
                self.sleep(backoff(attempt, retry_after=exc.retry_after, rng=self.rng))
            except TransientError as exc:
                if attempt >= self.max_attempts or self.stop.is_set():
                    return self._defer(claim.row, obj.url, attempt, exc)
                self.sleep(backoff(attempt, retry_after=exc.retry_after, rng=self.rng))
            else:
                return self._record(claim.row, obj.url, job_id, "job created", Outcome.SUBMITTED)
            attempt += 1

    def _record(self, row: int, url: str, job_id: str, detail: str, outcome: Outcome) -> Outcome:
        if not self.ledger.record_job(row, job_id, detail):
            log.warning("%s: the server answered job id %s, which belongs to another object: not recorded, "
                        "marked uncertain", url, job_id, extra={"event": "uncertain", "url": url})
            return self._uncertain()
        self._created(job_id)
        log.info("%s: %s %s", url, "job" if outcome is Outcome.SUBMITTED else "adopted job", job_id,
                 extra={"event": outcome.value, "url": url, "job_id": job_id})
        return outcome

    def _check(self, item: PlanItem) -> tuple[Outcome | None, int | None]:
        """The pre-flight check, if on: an outcome when the object must not be submitted, and the
        row count the footer gave."""
        if self.preflight is None:
            return None, None
        url = item.obj.url
        try:
            found = self.preflight.inspect(item)
        except FatalTargetError as exc:  # describing the collection showed the run cannot go on
            self._fatal(exc)
            return Outcome.NOT_STARTED, None
        except SourceError as exc:  # nothing recorded: the next run reads it again
            log.warning("%s: cannot read it for the pre-flight check: %s", url, exc,
                        extra={"event": "deferred", "url": url, "error": str(exc)})
            return Outcome.DEFERRED, None
        if not found.problems:
            return None, found.rows
        text = "; ".join(found.problems)
        if not self.enforce:
            log.warning("%s: submitting despite: %s", url, text,
                        extra={"event": "preflight-warning", "url": url, "error": text})
            return None, found.rows
        if not self.ledger.mark_invalid(item, found.problems, rows=found.rows):
            return Outcome.NOT_STARTED, None
        log.warning("%s: not submitted: %s", url, text, extra={"event": "invalid", "url": url, "error": text})
        return Outcome.INVALID, None

    def _defer(self, row: int, url: str, attempt: int, exc: TransientError) -> Outcome:
        """No job was created and retries ran out: back to pending for the next run."""
        message = self.redact(f"gave up after {attempt} attempts: {exc}")
        self.ledger.refuse(row, message, permanent=False)
        log.warning("%s: %s", url, message, extra={"event": "deferred", "url": url, "error": message})
        return Outcome.DEFERRED

    def _look_for_job(self, row: int, exc: AmbiguousError) -> Outcome | None:
        """After a lost reply: adopt the job if the server proves it; None means proven absent (retry);
        otherwise the row stays ``submitting`` (unsure) for a later look, or becomes ``uncertain``."""
        record = self.ledger.row(row)
        assert record is not None
        url = record.url
        log.info("%s: %s; looking for its job before retrying", url, self.redact(str(exc)),
                 extra={"event": "ambiguous", "url": url, "error": str(exc)})
        try:
            verdict = self.reconciler.judge([record])[0]
        except FatalTargetError as fatal:
            self._fatal(fatal)
            return self._unsure(row)
        except TargetError as list_error:
            log.warning("%s: cannot read the job list (%s); looked at again later", url,
                        self.redact(str(list_error)), extra={"event": "unsure", "url": url})
            return self._unsure(row)
        match verdict.verdict:
            case Verdict.ADOPT:
                assert verdict.job is not None
                return self._record(row, url, verdict.job.job_id, "adopted after a lost reply",
                                    Outcome.ADOPTED)
            case Verdict.RELEASE:
                return None
            case Verdict.UNCERTAIN:
                self.ledger.mark_uncertain(row, verdict.why)
                log.warning("%s: uncertain: %s", url, verdict.why,
                            extra={"event": "uncertain", "url": url})
                return self._uncertain()
            case Verdict.WAIT:
                log.info("%s: %s", url, verdict.why, extra={"event": "unsure", "url": url})
                return self._unsure(row)
        raise AssertionError(verdict)  # pragma: no cover - the match is exhaustive

    def _uncertain(self) -> Outcome:
        with self._lock:
            self.made_uncertain += 1
        return Outcome.UNSURE

    def _unsure(self, row: int) -> Outcome:
        with self._lock:
            self.unresolved.append(row)
        return Outcome.UNSURE

    def _created(self, job_id: str) -> None:
        with self._lock:
            self.job_ids.append(job_id)

    def _fatal(self, exc: FatalTargetError) -> None:
        with self._lock:
            if self.fatal is None:
                self.fatal = exc
        self.stop.set()


def refresh(
    target: Target,
    ledger: Ledger,
    records: Iterable[LedgerRecord],
    *,
    max_attempts: int,
    stop: threading.Event,
    redact: Redactor,
    sleep: Callable[[float], object] | None = None,
    rng: Callable[[], float] = random.random,
    concurrency: int = 4,
    on_polled: Callable[[], None] | None = None,
) -> Counter[str]:
    """Poll each submitted job once and move finished ones to completed or failed; remember the
    progress of running ones (for stall detection). A job the server no longer knows makes its row
    ``uncertain``. Returns counts by job state, plus ``uncertain``. ``on_polled`` is called after
    each poll."""
    counts: Counter[str] = Counter()
    pause: Callable[[float], object] = sleep if sleep is not None else stop.wait
    lock = threading.Lock()

    def poll(record: LedgerRecord) -> None:
        if stop.is_set() or record.job_id is None:
            return
        job_id = record.job_id
        try:
            info = with_retries(lambda: target.progress(job_id), max_attempts=max_attempts, sleep=pause,
                                rng=rng, stop=stop)
        except FatalTargetError:
            stop.set()  # every queued poll would fail alike
            raise
        except TargetError as exc:
            if isinstance(exc, JobNotFoundError):
                ledger.mark_uncertain(record.id, f"the server no longer knows job {job_id}: check the "
                                                 "collection")
                with lock:
                    counts["uncertain"] += 1
            log.warning("%s: progress of job %s: %s", record.url, job_id, redact(str(exc)),
                        extra={"event": "poll-error", "url": record.url, "job_id": job_id})
            return
        if info.state is JobState.RUNNING:
            ledger.note_progress(job_id, info.progress)
        elif info.state is JobState.COMPLETED:
            ledger.complete(record.id, job_id, imported_rows=info.imported_rows)
            if None not in (record.rows, info.imported_rows) and record.rows != info.imported_rows:
                log.warning("%s: job %s imported %s rows; the file holds %s", record.url, job_id,
                            info.imported_rows, record.rows,
                            extra={"event": "row-mismatch", "url": record.url, "job_id": job_id})
        elif info.state is JobState.FAILED:
            reason = redact(f"job {job_id} failed: {info.reason or 'no reason given'}")
            ledger.job_failed(record.id, job_id, reason)
            log.warning("%s: %s", record.url, reason,
                        extra={"event": "job-failed", "url": record.url, "job_id": job_id})
        with lock:
            counts[info.state.value] += 1

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="poll") as pool:
        futures = [pool.submit(poll, r) for r in records]
        try:
            for future in futures:
                future.result()
                if on_polled is not None:
                    on_polled()
        finally:
            for future in futures:
                future.cancel()
    return counts
