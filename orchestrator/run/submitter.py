"""Submitting: bounded concurrency, retries by error type, pacing, and the ledger around every call.

The ledger rows of a create call (one object, or several: ``settings.objects_per_job``) are committed
as ``submitting`` together before the call and the job id is committed for all of them the moment it
arrives, so a crash at any instant leaves at worst ``submitting`` rows, which the :class:`Reconciler`
resolves by the call's whole file set before anything is sent again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import NamedTuple, TypeVar

from ..errors import (
    AmbiguousError,
    FatalTargetError,
    PermanentError,
    ServerFullError,
    SourceError,
    TargetError,
    TransientError,
    UnreachableError,
)
from ..jobs.evidence import Verdict, culprit, name_key
from ..jobs.lost import LostReplies
from ..jobs.policy import SubmitPolicy
from ..jobs.reconcile import Reconciler, act
from ..jobs.window import Window
from ..ledger.store import Ledger
from ..models import (
    Credentials,
    ImportRequest,
    ObjectState,
    Outcome,
    PlanItem,
)
from ..preflight.checks import Preflight
from ..redact import Redactor
from ..targets.base import Target
from ..targets.pacing import backoff, retrying
from ..terminal import label, listing
from .grouping import batches
from .names import NameGuard, unresolved_names
from .state import RunState

log = logging.getLogger("orchestrator")
CANNOT_READ = frozenset({83001})  # the import service cannot read the object (access denied)
SAME_REFUSALS = 3  # such refusals, before any job was made, that stop the run
T = TypeVar("T")


def idempotency_key(parts: Sequence[tuple[str, str, int]], destination: str) -> str:
    """The same for every call about one import (the object versions of one job, ``(url, version,
    key_gen)`` each, into a destination); new after a server-side failure or a re-arm of any of them
    (``key_gen``), so a server that honours keys never hands back a failed job, and never the job of
    another destination or of another group of objects."""
    text = "\n".join(f"{url}\0{version}\0{destination}\0{key_gen}" for url, version, key_gen in sorted(parts))
    return f"orch-{hashlib.sha256(text.encode()).hexdigest()[:40]}"


Member = tuple[PlanItem, int | None]  # an object of a create call, and the rows its footer holds


class _Call(NamedTuple):
    """One create call: its ledger rows, their objects' URLs, expected row counts and plan items, in
    the order sent, and the collection."""

    rows: list[int]
    urls: list[str]
    collection: str
    counts: list[int | None]
    items: list[PlanItem]

    @property
    def label(self) -> str:
        return label(self.urls)


class Submitter:
    """Submits planned objects through a bounded pool, recording every step in the ledger."""

    def __init__(
        self,
        target: Target,
        ledger: Ledger,
        policy: SubmitPolicy,
        *,
        reconciler: Reconciler,
        window: Window,
        lost: LostReplies,
        state: RunState,
        redact: Redactor,
        credentials_for: Callable[[int], Credentials | None],
        object_url: Callable[[PlanItem], str],
        preflight: Preflight | None = None,
        sleep: Callable[[float], object] | None = None,
        rng: Callable[[], float] = random.random,
        on_created: Callable[[str, int], None] | None = None,
        load_id: int | None = None,
        on_sent: Callable[[str, dict[int, PlanItem]], None] | None = None,
    ) -> None:
        self.target = target
        self.ledger = ledger
        self.policy = policy
        self.reconciler = reconciler
        self.window = window
        self.lost = lost
        self.state = state
        self.stop = state.stop
        self.redact = redact
        self.credentials_for = credentials_for
        self.object_url = object_url
        self.preflight = preflight
        self.sleep: Callable[[float], object] = sleep if sleep is not None else state.stop.wait
        self.rng = rng
        self.on_created = on_created
        self.load_id = load_id  # the run's load its jobs belong to (settings.visibility: per_run)
        self.on_sent = on_sent  # a job made, and its objects by ledger row (to send a part of it again)
        self.names = NameGuard(unresolved_names(ledger))
        self.job_ids: list[str] = []  # jobs created or adopted by this run
        self.resent = 0  # two-phase: create calls sent again after a lost reply (each may leave an orphan)
        self._cannot_read = 0  # refusals "cannot read the object" before any job was made
        self._lock = threading.Lock()
        self._probe = threading.Lock()  # one call at a time learns the server's clock (_server_time)

    def submit_all(self, items: Iterable[PlanItem], on_outcome: Callable[[PlanItem, Outcome], None]) -> None:
        """Submit every item, in jobs of up to ``objects_per_job`` objects (see
        :mod:`orchestrator.run.grouping`), at most ``concurrency`` calls in flight; stop early when
        asked."""
        most, max_bytes = self.policy.settings.objects_per_job, self.policy.max_job_bytes
        self.submit_groups(batches(items, most=most, max_bytes=max_bytes), on_outcome)

    def submit_groups(self, groups: Iterable[list[PlanItem]],
                      on_outcome: Callable[[PlanItem, Outcome], None]) -> None:
        """Submit each group as one job, at most ``concurrency`` calls in flight; stop early when asked."""
        slots = threading.BoundedSemaphore(self.policy.settings.concurrency * 2)
        crashed: list[BaseException] = []

        def done(future: Future[list[tuple[PlanItem, Outcome]]]) -> None:
            slots.release()
            error = future.exception()
            if error is not None:  # a bug or a broken ledger: stop cleanly, then let it surface
                crashed.append(error)
                self.stop.set()
                return
            for item, outcome in future.result():
                on_outcome(item, outcome)

        # the pre-flight reads of all groups share one pool: a group's files are read at once, and no
        # more than `concurrency` reads are in flight in all
        threads = self.policy.settings.concurrency
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="preflight") as checks, \
                ThreadPoolExecutor(max_workers=threads, thread_name_prefix="submit") as pool:
            for group in groups:
                slots.acquire()
                if self.stop.is_set():
                    slots.release()
                    for item in group:
                        on_outcome(item, Outcome.NOT_STARTED)
                    continue
                pool.submit(self.submit_group, group, checks).add_done_callback(done)
        if crashed:
            raise crashed[0]

    def submit_group(self, items: Sequence[PlanItem], checks: Executor) -> list[tuple[PlanItem, Outcome]]:
        """One create call for ``items`` (one object, or several of one destination): room in the job
        window, the pre-flight check of each, all at once on ``checks`` (a file that fails it is left
        out, never sinks the rest), their names, then the call. The window's slot is kept while the job
        may run; its end frees it."""
        if self.stop.is_set():
            return [(item, Outcome.NOT_STARTED) for item in items]
        if not self.window.acquire(wait=self.policy.drain):
            outcome = Outcome.NOT_STARTED if self.stop.is_set() else Outcome.QUEUED
            return [(item, outcome) for item in items]
        holds_job: bool | list[int] = False
        try:
            results, holds_job = self._named(items, checks)
            return results
        finally:
            if isinstance(holds_job, list):
                self.lost.add(holds_job)  # the slot is the lost reply's until a later look settles it
            elif holds_job:
                self.window.started()
            else:
                self.window.release(finished=False)

    def _named(self, items: Sequence[PlanItem], checks: Executor,
               ) -> tuple[list[tuple[PlanItem, Outcome]], bool | list[int]]:
        """The outcome of each item, and whether a job was made (True), or may have been (the rows of
        a lost reply whose job the list did not show yet: they stay ``submitting``)."""
        results: list[tuple[PlanItem, Outcome]] = []
        checked: list[Member] = []
        verdicts = [checks.submit(self._check, item) for item in items]
        for item, verdict in zip(items, verdicts, strict=True):
            stopped, rows = verdict.result()
            if stopped is not None:
                results.append((item, stopped))
            else:
                checked.append((item, rows))
        if not checked:
            return results, False
        keys = []
        for item, _ in checked:
            assert item.route is not None
            keys.append(name_key(item.route.collection, item.obj.url))
        taken = self.names.acquire(keys, self.stop)
        ready = [member for member, key in zip(checked, keys, strict=True) if key in taken]
        for (item, _), key in zip(checked, keys, strict=True):
            if key in taken:
                continue
            if self.stop.is_set():
                results.append((item, Outcome.NOT_STARTED))
                continue
            log.info("%s: waits its turn: another object the server would report under the same name is "
                     "unresolved", item.obj.url, extra={"event": "queued", "url": item.obj.url})
            results.append((item, Outcome.QUEUED))
        if not ready:
            return results, False
        outcome: Outcome | None = None
        try:
            outcome, sent, claimed = self._submit(ready)
            if outcome is Outcome.UNSURE and all(
                    r.state is ObjectState.SUBMITTING for r in self.ledger.rows(claimed)):
                return results + sent, claimed
            return results + sent, outcome in (Outcome.SUBMITTED, Outcome.ADOPTED)
        finally:
            self.names.release(taken, resolved=outcome not in (None, Outcome.UNSURE))

    def _submit(self, ready: list[Member]) -> tuple[Outcome, list[tuple[PlanItem, Outcome]], list[int]]:
        """Claim the objects together, then make the create call: the call's outcome, each object's
        (one listed twice, already claimed elsewhere, is not sent), and the rows claimed."""
        urls = [self.object_url(item) for item, _ in ready]
        claims = self.ledger.begin_group(
            [(item, rows, url) for (item, rows), url in zip(ready, urls, strict=True)],
            server_at=self._server_time(), load_id=self.load_id)
        skipped = [(item, Outcome.NOT_STARTED) for (item, _), claim in zip(ready, claims, strict=True)
                   if claim is None]
        sent = [(item, rows, url, claim) for (item, rows), url, claim in zip(ready, urls, claims, strict=True)
                if claim is not None]
        if not sent:
            return Outcome.NOT_STARTED, skipped, []
        first = sent[0][0]
        assert first.route is not None
        destination = f"{self.ledger.owner}\0{first.route.collection}\0{first.route.partition or ''}"
        request = ImportRequest(
            object_url=sent[0][2], collection=first.route.collection, partition=first.route.partition,
            credentials=self.credentials_for(first.source),
            idempotency_key=idempotency_key([(i.obj.url, i.obj.version, c.key_gen) for i, _, _, c in sent],
                                            destination),
            obj=first.obj, source=first.source, companions=tuple(url for _, _, url, _ in sent[1:]),
            timeout_s=self.policy.settings.job_timeout_s,
        )
        call = _Call([c.row for *_, c in sent], [i.obj.url for i, *_ in sent], first.route.collection,
                     [rows for _, rows, _, _ in sent], [i for i, *_ in sent])
        outcome = self._create(request, call)
        return outcome, skipped + [(item, outcome) for item, *_ in sent], call.rows

    def _create(self, request: ImportRequest, call: _Call) -> Outcome:
        """The create call, retried by error type, and the ledger after it."""
        attempt = 1
        while True:
            try:
                job_id = self.target.create(request)
            except ServerFullError as exc:
                if not self._room_after_full(call.label, exc):
                    message = f"the server holds all the jobs it takes ({exc}): queued for a later run"
                    self.ledger.refuse(call.rows, self.redact(message), permanent=False)
                    return Outcome.QUEUED
                continue
            except FatalTargetError as exc:
                self.state.fail(exc)
                self.ledger.refuse(call.rows, self.redact(str(exc)), permanent=False)
                return Outcome.DEFERRED
            except PermanentError as exc:
                message = self.redact(str(exc))
                if exc.code in CANNOT_READ and self._refused_for_everyone(exc):
                    self.ledger.refuse(call.rows, message, permanent=False)  # no failure counted
                    return Outcome.DEFERRED
                blamed = self._culprit(message, call)
                self.ledger.refuse(call.rows, message, permanent=True, culprit=blamed)
                for url in call.urls:
                    log.error("%s: refused: %s", url, message,
                                extra={"event": "refused", "url": url, "error": message})
                return Outcome.FAILED
            except AmbiguousError as exc:
                if self.target.two_phase and self.target.two_phase_proven:
                    # the lost call's job, if any, waits uncommitted: no row will own it, so it is never
                    # committed, and a later run aborts it; sending again is safe
                    log.info("%s: %s; sending again (two-phase: a job of the lost call stays uncommitted)",
                             call.label, self.redact(str(exc)),
                             extra={"event": "ambiguous", "url": call.urls[0]})
                    with self._lock:
                        self.resent += 1
                    found = None
                else:
                    found = self._look_for_job(call, exc)
                if found is not None:
                    return found  # adopted, or unsure: the rows stay `submitting` for a later look
                if attempt >= self.policy.settings.max_attempts or self.stop.is_set():
                    return self._defer(call, attempt, exc)  # proven: no job for it
                self.sleep(retrying(call.label, exc, attempt, self.policy.settings.max_attempts,
                                    self._backoff(attempt, exc)))
            except TransientError as exc:
                if attempt >= self.policy.settings.max_attempts or self.stop.is_set():
                    return self._defer(call, attempt, exc)
                self.sleep(retrying(call.label, exc, attempt, self.policy.settings.max_attempts,
                                    self._backoff(attempt, exc)))
            else:
                return self._record(call, job_id, "job created", Outcome.SUBMITTED)
            attempt += 1

    def _backoff(self, attempt: int, exc: TransientError) -> float:
        return backoff(attempt, retry_after=exc.retry_after, rng=self.rng,
                       max_retry_after_s=self.policy.settings.max_retry_after_s)

    def _record(self, call: _Call, job_id: str, detail: str, outcome: Outcome) -> Outcome:
        return outcome if self._recorded(call, job_id, detail, outcome) else self._uncertain(call)

    def _recorded(self, call: _Call, job_id: str, detail: str, outcome: Outcome) -> bool:
        """Record the job for the call's rows; False when it belongs to another object (the rows are
        then ``uncertain``)."""
        if not self.ledger.record_job(call.rows, job_id, detail):
            log.warning("%s: the server answered job id %s, which belongs to another object: not recorded, "
                        "marked uncertain", call.label, job_id,
                        extra={"event": "uncertain", "url": call.urls[0]})
            return False
        self._created(job_id, call)
        companions = f" with {len(call.urls) - 1} other object(s)" if len(call.urls) > 1 else ""
        for url, rows in zip(call.urls, call.counts, strict=True):
            log.info("%s: %s %s%s", url, "job" if outcome is Outcome.SUBMITTED else "adopted job", job_id,
                     companions, extra={"event": outcome.value, "url": url, "job_id": job_id,
                                        "collection": call.collection, "rows": rows})
        return True

    def _check(self, item: PlanItem) -> tuple[Outcome | None, int | None]:
        """The pre-flight check, if on: an outcome when the object must not be submitted, and the
        row count the footer gave."""
        if self.stop.is_set():
            return Outcome.NOT_STARTED, None
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
        text = listing(found.problems)
        if not self.policy.enforce:
            log.warning("%s: submitting despite: %s", url, text,
                        extra={"event": "preflight-warning", "url": url, "error": text})
            return None, found.rows
        if not self.ledger.mark_invalid(item, found.problems, rows=found.rows):
            return Outcome.NOT_STARTED, None
        log.error("%s: not submitted: %s", url, text, extra={"event": "invalid", "url": url, "error": text})
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

    def _defer(self, call: _Call, attempt: int, exc: TransientError) -> Outcome:
        """No job was created and retries ran out: back to pending for the next run. A server never
        reached in this run is the run's problem, not the objects': stop, naming the key to fix."""
        if isinstance(exc, UnreachableError) and self.reconciler.server_clock() is None:
            self.state.fail(FatalTargetError(
                f"{exc}: no call to the import API has worked in this run; check target.region or "
                "target.endpoint (and the network)"))
        message = self.redact(f"gave up after {attempt} attempts: {exc}")
        self.ledger.refuse(call.rows, message, permanent=False)
        for url in call.urls:
            log.error("%s: %s", url, message, extra={"event": "deferred", "url": url, "error": message})
        return Outcome.DEFERRED

    def _look_for_job(self, call: _Call, exc: AmbiguousError) -> Outcome | None:
        """After a lost reply: adopt the job if the server proves it (by the call's whole file set);
        None means proven absent (retry); otherwise the rows stay ``submitting`` (unsure) for a later
        look, or become ``uncertain``."""
        records = self.ledger.rows(call.rows)
        log.info("%s: %s; looking for its job before retrying", call.label, self.redact(str(exc)),
                 extra={"event": "ambiguous", "url": call.urls[0], "error": str(exc)})
        try:
            judged = self.reconciler.judge(records)
        except FatalTargetError as fatal:
            self.state.fail(fatal)
            return Outcome.UNSURE  # the rows stay `submitting`: looked at again
        except TargetError as list_error:
            log.error("%s: cannot read the job list (%s); looked at again later", call.label,
                        self.redact(str(list_error)), extra={"event": "unsure", "url": call.urls[0]})
            return Outcome.UNSURE  # the rows stay `submitting`: looked at again
        done = act(self.target, self.ledger, self.redact, judged, release=False,
                   adopt=lambda _, job: self._recorded(call, job.job_id, "adopted after a lost reply",
                                                       Outcome.ADOPTED))
        if done.verdict is Verdict.RELEASE:
            return None  # proven: no job; sent again
        if done.verdict is Verdict.ADOPT:
            return Outcome.ADOPTED
        if done.verdict is Verdict.UNCERTAIN:
            return self._uncertain(call)
        log.info("%s: %s", call.label, done.why, extra={"event": "unsure", "url": call.urls[0]})
        return Outcome.UNSURE  # the rows stay `submitting`: looked at again

    def _culprit(self, message: str, call: _Call) -> int | None:
        """The row of a call of several that a refusal names, if exactly one."""
        if len(call.rows) < 2:
            return None
        blamed = culprit(message, self.ledger.rows(call.rows))
        return blamed.id if blamed is not None else None

    def _room_after_full(self, url: str, exc: ServerFullError) -> bool:
        """The server refused a job as full: narrow the window to the jobs already running. Without
        ``drain`` the run submits nothing more (a later run takes the rest, having spent one call
        finding out); with it, wait for one of this manifest's jobs to end, then try again."""
        self.window.full()
        if not self.policy.drain:
            self.window.close()
            log.info("%s: the server is full (%s): the rest waits for a later run", url,
                     self.redact(str(exc)), extra={"event": "server-full", "url": url})
            return False
        log.info("%s: the server is full (%s): waiting for room", url, self.redact(str(exc)),
                 extra={"event": "server-full", "url": url})
        if self.window.running == 0:  # others' jobs fill it: look again after a pause
            self.sleep(self.policy.poll_interval_s)
        return self.window.requeue()

    def _server_time(self) -> float | None:
        """The server's clock, for the claim: what a later reconciliation weighs absence by. Before the
        run's first reply from the server it is unknown, and a crash then would leave an object no run
        can release: one cheap call (a page of the job list) learns it. Every claim waits for the call
        in flight, so none is made without a server time while another thread asks for it; a call
        that gets no reply (the server unreachable) is made again by the next claim."""
        now = self.reconciler.server_clock()
        if now is not None:
            return now
        with self._probe:
            now = self.reconciler.server_clock()
            if now is None and not self.stop.is_set():
                with contextlib.suppress(TargetError):
                    next(iter(self.target.list_jobs()), None)
                now = self.reconciler.server_clock()
        return now

    def _uncertain(self, call: _Call) -> Outcome:
        for _ in call.rows:
            self.state.uncertain()
        return Outcome.UNSURE

    def _created(self, job_id: str, call: _Call) -> None:
        with self._lock:
            self.job_ids.append(job_id)
        if self.on_sent is not None:
            self.on_sent(job_id, dict(zip(call.rows, call.items, strict=True)))
        if self.on_created is not None:
            self.on_created(job_id, len(call.rows))
