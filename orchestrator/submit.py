"""Submitting: bounded concurrency, retries by error type, pacing, and the ledger around every call.

The ledger row is committed as ``submitting`` before each create call and the job id is committed
the moment it arrives, so a crash at any instant leaves at worst a ``submitting`` row, which the
:class:`Reconciler` resolves before anything is sent again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from .checks import Preflight
from .errors import (
    AmbiguousError,
    FatalTargetError,
    PermanentError,
    ServerFullError,
    SourceError,
    TargetError,
    TransientError,
    UnreachableError,
)
from .evidence import Verdict, name_key
from .jobs import Reconciler, Window
from .ledger import Ledger
from .models import (
    Credentials,
    ImportRequest,
    Outcome,
    PlanItem,
)
from .pacing import backoff, retrying
from .redact import Redactor
from .run import RunState
from .targets.base import Target

log = logging.getLogger("orchestrator")
CANNOT_READ = frozenset({83001})  # the import service cannot read the object (access denied)
SAME_REFUSALS = 3  # such refusals, before any job was made, that stop the run
T = TypeVar("T")


def idempotency_key(url: str, version: str, destination: str, key_gen: int) -> str:
    """The same for every call about one import (object version into a destination); new after a
    server-side failure or a re-arm (``key_gen``), so a server that honours keys never hands back a
    failed job, and never the job of another destination."""
    digest = hashlib.sha256(f"{url}\0{version}\0{destination}\0{key_gen}".encode()).hexdigest()
    return f"orch-{digest[:40]}"


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
        window: Window,
        state: RunState,
        redact: Redactor,
        drain: bool = False,
        full_pause_s: float = 5.0,
        preflight: Preflight | None = None,
        enforce: bool = True,
        sleep: Callable[[float], object] | None = None,
        rng: Callable[[], float] = random.random,
        on_created: Callable[[str], None] | None = None,
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
        self.window = window
        self.state = state
        self.stop = state.stop
        self.redact = redact
        self.drain = drain
        self.full_pause_s = full_pause_s
        self.sleep: Callable[[float], object] = sleep if sleep is not None else state.stop.wait
        self.rng = rng
        self.on_created = on_created
        self.job_ids: list[str] = []  # jobs created or adopted by this run
        self.unresolved: list[int] = []  # rows left `submitting` after a lost reply: looked at again
        self._cannot_read = 0  # refusals "cannot read the object" before any job was made
        self._probed = False  # whether the server's clock was asked for (see _server_time)
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
        """One object: room in the job window, the pre-flight check, its name, then the create call.
        The window's slot is kept while the object's job may run; the job's end frees it."""
        if self.stop.is_set():
            return Outcome.NOT_STARTED
        if not self.window.acquire(wait=self.drain):
            return Outcome.NOT_STARTED if self.stop.is_set() else Outcome.QUEUED
        outcome = Outcome.NOT_STARTED
        try:
            outcome = self._named(item)
            return outcome
        finally:
            if outcome in (Outcome.SUBMITTED, Outcome.ADOPTED, Outcome.UNSURE):
                self.window.started()
            else:
                self.window.release(finished=False)

    def _named(self, item: PlanItem) -> Outcome:
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
        claim = self.ledger.begin_submission(item, rows=rows, sent_as=url, server_at=self._server_time())
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
            except ServerFullError as exc:
                if not self._room_after_full(obj.url, exc):
                    message = f"the server holds all the jobs it takes ({exc}): queued for a later run"
                    self.ledger.refuse(claim.row, self.redact(message), permanent=False)
                    return Outcome.QUEUED
                continue
            except FatalTargetError as exc:
                self.state.fail(exc)
                self.ledger.refuse(claim.row, self.redact(str(exc)), permanent=False)
                return Outcome.DEFERRED
            except PermanentError as exc:
                message = self.redact(str(exc))
                if exc.code in CANNOT_READ and self._refused_for_everyone(exc):
                    self.ledger.refuse(claim.row, message, permanent=False)  # no failure counted
                    return Outcome.DEFERRED
                self.ledger.refuse(claim.row, message, permanent=True)
                log.warning("%s: refused: %s", obj.url, message,
                            extra={"event": "refused", "url": obj.url, "error": message})
                return Outcome.FAILED
            except AmbiguousError as exc:
                if self.target.two_phase and self.target.two_phase_proven:
                    # the lost call's job, if any, waits uncommitted: no row will own it, so it is never
                    # committed, and a later run aborts it; sending again is safe
                    log.info("%s: %s; sending again (two-phase: a job of the lost call stays uncommitted)",
                             obj.url, self.redact(str(exc)), extra={"event": "ambiguous", "url": obj.url})
                    found = None
                else:
                    found = self._look_for_job(claim.row, exc)
                if found is not None:
                    return found  # adopted, or unsure: the row stays `submitting` for a later look
                if attempt >= self.max_attempts or self.stop.is_set():
                    return self._defer(claim.row, obj.url, attempt, exc)  # proven: no job for it
                self.sleep(retrying(obj.url, exc, attempt, self.max_attempts,
                                    backoff(attempt, retry_after=exc.retry_after, rng=self.rng)))
            except TransientError as exc:
                if attempt >= self.max_attempts or self.stop.is_set():
                    return self._defer(claim.row, obj.url, attempt, exc)
                self.sleep(retrying(obj.url, exc, attempt, self.max_attempts,
                                    backoff(attempt, retry_after=exc.retry_after, rng=self.rng)))
            else:
                return self._record(claim.row, obj.url, job_id, "job created", Outcome.SUBMITTED,
                                    collection=item.route.collection, rows=rows)
            attempt += 1

    def _record(self, row: int, url: str, job_id: str, detail: str, outcome: Outcome, *,
                collection: str, rows: int | None) -> Outcome:
        if not self.ledger.record_job(row, job_id, detail):
            log.warning("%s: the server answered job id %s, which belongs to another object: not recorded, "
                        "marked uncertain", url, job_id, extra={"event": "uncertain", "url": url})
            return self._uncertain()
        self._created(job_id)
        log.info("%s: %s %s", url, "job" if outcome is Outcome.SUBMITTED else "adopted job", job_id,
                 extra={"event": outcome.value, "url": url, "job_id": job_id, "collection": collection,
                        "rows": rows})
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
            self.state.fail(exc)
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

    def _refused_for_everyone(self, exc: PermanentError) -> bool:
        """The import service cannot read the objects with the manifest's credentials (code 83001)
        and no create of this run has worked yet: the first :data:`SAME_REFUSALS` such refusals are
        not counted against their objects, and after them the run stops, naming the keys to fix."""
        with self._lock:
            if self.job_ids:
                return False
            self._cannot_read += 1
            count = self._cannot_read
        if count >= SAME_REFUSALS:
            self.state.fail(FatalTargetError(
                f"{self.redact(str(exc))}: the first {count} objects were all refused so, and none was "
                "imported: the import service cannot read the bucket with the manifest's keys; check "
                "credentials.access_key and credentials.secret_key (and that they may read the bucket)",
                code=exc.code))
        return True

    def _defer(self, row: int, url: str, attempt: int, exc: TransientError) -> Outcome:
        """No job was created and retries ran out: back to pending for the next run. A server never
        reached in this run is the run's problem, not the object's: stop, naming the key to fix."""
        if isinstance(exc, UnreachableError) and self.reconciler.server_clock() is None:
            self.state.fail(FatalTargetError(
                f"{exc}: no call to the import API has worked in this run; check target.region or "
                "target.endpoint (and the network)"))
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
            self.state.fail(fatal)
            return self._unsure(row)
        except TargetError as list_error:
            log.warning("%s: cannot read the job list (%s); looked at again later", url,
                        self.redact(str(list_error)), extra={"event": "unsure", "url": url})
            return self._unsure(row)
        match verdict.verdict:
            case Verdict.ADOPT:
                assert verdict.job is not None
                return self._record(row, url, verdict.job.job_id, "adopted after a lost reply",
                                    Outcome.ADOPTED, collection=record.collection, rows=record.rows)
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

    def _room_after_full(self, url: str, exc: ServerFullError) -> bool:
        """The server refused a job as full: narrow the window to the jobs already running. Without
        ``drain`` the run submits nothing more (a later run takes the rest, having spent one call
        finding out); with it, wait for one of this manifest's jobs to end, then try again."""
        self.window.full()
        if not self.drain:
            self.window.close()
            log.info("%s: the server is full (%s): the rest waits for a later run", url,
                     self.redact(str(exc)), extra={"event": "server-full", "url": url})
            return False
        log.info("%s: the server is full (%s): waiting for room", url, self.redact(str(exc)),
                 extra={"event": "server-full", "url": url})
        if self.window.running == 0:  # others' jobs fill it: look again after a pause
            self.sleep(self.full_pause_s)
        return self.window.requeue()

    def _server_time(self) -> float | None:
        """The server's clock, for the claim: what a later reconciliation weighs absence by. Before the
        run's first reply from the server it is unknown, and a crash then would leave an object no run
        can release: one cheap call (a page of the job list) learns it, once per run."""
        now = self.reconciler.server_clock()
        if now is not None:
            return now
        with self._lock:
            probe, self._probed = not self._probed, True
        if probe:
            with contextlib.suppress(TargetError):
                next(iter(self.target.list_jobs()), None)
        return self.reconciler.server_clock()

    def _uncertain(self) -> Outcome:
        self.state.uncertain()
        return Outcome.UNSURE

    def _unsure(self, row: int) -> Outcome:
        with self._lock:
            self.unresolved.append(row)
        return Outcome.UNSURE

    def _created(self, job_id: str) -> None:
        with self._lock:
            self.job_ids.append(job_id)
        if self.on_created is not None:
            self.on_created(job_id)
