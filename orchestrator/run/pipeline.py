"""The run: refresh known jobs, reconcile interrupted calls, then list, plan, submit and record; with
``--wait``, drain the backlog through the job window. The state it shares lives in
:class:`orchestrator.run.state.RunState`; how it submits, in one
:class:`~orchestrator.jobs.policy.SubmitPolicy` (:mod:`orchestrator.run.policy`); what it reports as it
goes, to one :class:`~orchestrator.run.observer.RunObserver`; the jobs' lifecycle is
:mod:`orchestrator.jobs`."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

from ..config.manifest import Manifest, PreflightMode, SourceConfig, Visibility
from ..errors import (
    FatalTargetError,
    LockHeldError,
    ManifestError,
    OrchestratorError,
    SourceError,
)
from ..jobs.drain import Drain
from ..jobs.evidence import LocalClock, ServerClock
from ..jobs.lost import LostReplies
from ..jobs.policy import SubmitPolicy
from ..jobs.reconcile import Reconciler, reconcile
from ..jobs.refresh import OnFinished, OnRegrouped, refresh
from ..jobs.two_phase import abort_orphans
from ..jobs.visibility import Load, settle_loads
from ..jobs.window import Window
from ..ledger.store import Ledger
from ..models import Action, ObjectState, Outcome, PlanItem
from ..preflight.checks import Preflight
from ..redact import Redactor
from ..sources.base import Source
from ..sources.registry import make_queue, make_source
from ..targets.base import Target
from ..targets.pacing import RateLimiter
from .observer import NullObserver, RunObserver
from .policy import submit_policy
from .resend import Resend
from .sourcing import Sourcing, listed, plan_objects
from .state import RunOptions, RunReport, RunState
from .submitter import Submitter
from .wiring import (
    QueueFactory,
    SourceFactory,
    TargetFactory,
    make_http_client,
    make_reader,
    make_target,
    object_url,
    one_run,
    redacting,
    secrets_of,
)

log = logging.getLogger("orchestrator")


def plan_source(source: SourceConfig, lister: Source, manifest: Manifest, ledger: Ledger | None, *,
                now: float, warn: Callable[[str], None]) -> Iterator[PlanItem]:
    """Stream the plan for one source: list, keep what include/exclude keep, look the history up in
    batches, decide."""
    return plan_objects(listed(source, lister, warn=warn), source, manifest, ledger, now=now)


def make_reconciler(target: Target, ledger: Ledger, policy: SubmitPolicy, server_clock: ServerClock, *,
                    stop: threading.Event, sleep: Callable[[float], object]) -> Reconciler:
    """The reconciler of this target: an in-process target's job list is judged on this machine's
    clock; a server's on the server's."""
    return Reconciler(target, ledger, policy, stop=stop, sleep=sleep,
                      server_clock=LocalClock().now if policy.local_clock else server_clock.now)


def run(
    manifest: Manifest,
    options: RunOptions | None = None,
    *,
    stop: threading.Event | None = None,
    source_factory: SourceFactory = make_source,
    target_factory: TargetFactory = make_target,
    sleep: Callable[[float], object] | None = None,
    observer: RunObserver | None = None,
    clock: Callable[[], float] = time.time,
    queue_factory: QueueFactory = make_queue,
    on_round: Callable[[RunReport], None] | None = None,
) -> RunReport:
    """One run, as :func:`orchestrator.api.run` tells it: what its threads share is one
    :class:`RunState`, a timer stops it at ``options.deadline_s``, and an error that ends it midway is
    its report's ``fatal``; only :class:`LockHeldError` and :class:`ManifestError` are raised."""
    options = options if options is not None else RunOptions()
    if options.follow:  # a service: its jobs are polled as they run, which frees the job window
        if not any(source.queue is not None for source in manifest.sources):
            raise ManifestError(str(manifest.path), "--follow", "no source reads a queue: give one "
                                "discovery: events and its queue (see the README's Discovery section)")
        if manifest.settings.visibility is Visibility.PER_RUN:
            raise ManifestError(str(manifest.path), "--follow", "settings.visibility: per_run commits a "
                                "run's load when the run ends, and a --follow run does not end: use per_job "
                                "with --follow, or run per_run loads from cron")
        options = dataclasses.replace(options, wait=True)
    if manifest.settings.visibility is Visibility.PER_RUN and not options.wait:
        log.info("settings.visibility is per_run: the run waits for its jobs, to commit them together",
                 extra={"event": "load-waits"})
        options = dataclasses.replace(options, wait=True)
    state = RunState(stop)
    timer: threading.Timer | None = None
    if options.deadline_s is not None:
        timer = threading.Timer(options.deadline_s, state.expire, (options.deadline_s,))
        timer.daemon = True
        timer.start()
        options = dataclasses.replace(options, wait_lock_s=min(options.wait_lock_s, options.deadline_s))
    try:
        _run(manifest, options, state, source_factory=source_factory, target_factory=target_factory,
             sleep=sleep, observer=observer, clock=clock, queue_factory=queue_factory, on_round=on_round)
    except (LockHeldError, ManifestError):
        raise
    except OrchestratorError as exc:
        state.stop.set()
        state.report.fatal = Redactor(secrets_of(manifest))(str(exc))
        log.error("%s", state.report.fatal, extra={"event": "fatal"})
    finally:
        if timer is not None:
            timer.cancel()
    return state.report


def _run(
    manifest: Manifest,
    options: RunOptions,
    state: RunState,
    *,
    source_factory: SourceFactory,
    target_factory: TargetFactory,
    sleep: Callable[[float], object] | None,
    observer: RunObserver | None,
    clock: Callable[[], float],
    queue_factory: QueueFactory,
    on_round: Callable[[RunReport], None] | None,
) -> None:
    shown = observer if observer is not None else NullObserver()
    stop = state.stop
    report = state.report
    pause: Callable[[float], object] = sleep if sleep is not None else stop.wait
    settings = manifest.settings
    policy = submit_policy(manifest, options)
    server_clock = ServerClock()

    def backoff(seconds: float) -> object:  # every pause before a retried call goes through here
        state.retried()
        return pause(seconds)

    with redacting(manifest) as redact, \
            one_run(manifest, wait_lock_s=options.wait_lock_s, clock=clock) as ledger, \
            make_http_client(manifest, RateLimiter(settings.requests_per_second), server_clock,
                             stop=stop) as client:
        reader = make_reader(manifest, source_factory)
        target = target_factory(manifest, client, reader)
        reconciler = make_reconciler(target, ledger, policy, server_clock, stop=stop, sleep=backoff)

        def poll(on_finished: OnFinished | None = None, polls: RunObserver | None = None,
                 on_regrouped: OnRegrouped | None = None) -> Counter[str]:
            return refresh_all(target, ledger, policy, stop=stop, redact=redact, pause=backoff,
                               observer=polls, on_finished=on_finished, on_regrouped=on_regrouped)

        drain: Drain | None = None
        load: Load | None = None
        resend = Resend(stop)  # with --wait: the parts of this run's failed jobs, sent again in this run
        try:
            report.refreshed.update(poll(polls=observer))  # the objects to poll are counted for an observer
            adopted: list[tuple[str, int]] = []  # jobs found for interrupted calls, and their objects
            report.reconciled.update(reconcile(reconciler, ledger, redact, adopted=adopted))
            report.reconciled["aborted"] += abort_orphans(reconciler, ledger, redact)
            adopted += settle_loads(target, ledger, redact)  # what killed runs left of their loads
            window = Window(policy.window, stop=stop, running=ledger.jobs_held())
            lost = LostReplies(reconciler, ledger, redact, window)
            if settings.visibility is Visibility.PER_RUN:
                load = Load(target, ledger, redact, window)
            if policy.drain:
                drain = Drain(lambda finished: _drained(lambda f: poll(f, on_regrouped=resend.regrouped),
                                                        finished, shown, drain, load), window, policy,
                              stop=stop, pause=pause,
                              held=ledger.job_states, lost=lost, on_end=resend.ended)
                for job_id, objects in adopted:
                    drain.add(job_id, objects)
                drain.start()
            submitter = Submitter(
                target, ledger, policy, reconciler=reconciler, window=window, lost=lost, state=state,
                redact=redact, credentials_for=lambda i: manifest.credentials_for(manifest.sources[i]),
                object_url=lambda item: target.object_ref(item.obj, object_url(item, manifest)),
                preflight=None if settings.preflight is PreflightMode.OFF else Preflight(
                    target, manifest, reader, deep=options.deep),
                sleep=backoff, on_created=drain.add if drain is not None else None,
                load_id=load.id if load is not None else None,
                on_sent=resend.sent if drain is not None else None,
            )
            budget = [options.max_submissions]

            def record(item: PlanItem, outcome: Outcome) -> None:
                state.outcome(outcome)
                shown.submitted(item, outcome)
                if load is not None:
                    load.submitted(outcome)

            def submit(items: Iterator[PlanItem], also: Callable[[PlanItem, Outcome], None]) -> None:
                def recorded(item: PlanItem, outcome: Outcome) -> None:
                    record(item, outcome)
                    also(item, outcome)

                submitter.submit_all(_to_submit(items, report, budget, stop, shown), recorded)

            sourcing = Sourcing(manifest, ledger, report, stop, clock, submit, queue_factory)
            listers: dict[int, Source] = {}
            while True:  # once; with --follow, until the run is stopped
                for source in manifest.sources:
                    if stop.is_set():
                        break
                    try:
                        if source.index not in listers:
                            listers[source.index] = source_factory(source, manifest.settings)
                        sourcing.take(source, listers[source.index], follow=options.follow)
                    except SourceError as exc:
                        report.source_errors.append(str(exc))
                        log.error("%s", exc, extra={"event": "source-error"})
                        if options.follow:  # a queue or store out of reach: look again a wait later
                            pause(settings.queue_wait_s)
                if not options.follow or stop.is_set():
                    break
                if on_round is not None:
                    on_round(report)
            shown.listed()
            if state.fatal is not None:
                raise state.fatal
            if not stop.is_set():  # this run's lost replies still unsettled: a last look
                lost.settle(wait=True, pause=pause, on_adopted=drain.add if drain is not None else None)
            if drain is not None:
                resend.drain_into(submitter.submit_groups, record)
                drain.finish()
                report.waited.update(drain.ended)
            if load is not None:
                load.finish(stopped=stop.is_set(), poll=lambda: report.waited.update(poll()), stop=stop,
                            pause=pause, interval_s=policy.poll_interval_s)
                if load.abandoned is not None and report.exit_code() == 0:  # nothing else says it failed
                    report.fatal = f"load {load.id} was not committed: {load.abandoned}"
            _orphans_left(submitter.resent, reconciler, ledger, redact, report,
                          look=drain is not None and not stop.is_set())
            report.reconciled.update(lost.counts)
            report.outcomes[Outcome.DEFERRED] += lost.counts["released"]  # no job: the next run submits
        except FatalTargetError as exc:
            if drain is not None:
                stop.set()
                with contextlib.suppress(OrchestratorError):
                    drain.finish()
            if load is not None:
                with contextlib.suppress(OrchestratorError):
                    load.abandon(f"the run stopped: {exc}")
            report.fatal = redact(str(exc))
            log.error("stopping: %s", report.fatal, extra={"event": "fatal"})
        except OrchestratorError:  # the run cannot go on (its ledger is lost): end the drain, then say so
            stop.set()
            if drain is not None:
                with contextlib.suppress(OrchestratorError):
                    drain.finish()
            raise
        report.stalled = _report_stalled(ledger, settings.stall_after_s)
        report.unresolved = ledger.count(ObjectState.SUBMITTING, own=True)
        report.made_uncertain += report.reconciled["uncertain"] + report.refreshed["uncertain"] + \
            report.waited["uncertain"]
        if report.exit_code() == 0 and not stop.is_set():
            ledger.note_success()


def _orphans_left(resent: int, reconciler: Reconciler, ledger: Ledger, redact: Redactor, report: RunReport,
                  *, look: bool) -> None:
    """Two-phase: the jobs of this run's lost replies, sent again, wait uncommitted, and Milvus never
    removes an uncommitted job (reference section 10): after a wait (``look``), abort those already
    uncommitted; say why any may be left."""
    if resent and look:
        aborted = abort_orphans(reconciler, ledger, redact)
        report.reconciled["aborted"] += aborted
        resent -= aborted
    if resent > 0:
        log.info("%d create call(s) of this run were sent again after a lost reply: a job of each may wait "
                 "uncommitted on the server (still importing, or not yet listed); the next run aborts it",
                 resent, extra={"event": "orphans-left"})


def _drained(poll: Callable[[OnFinished | None], Counter[str]], finished: OnFinished, observer: RunObserver,
             drain: Drain | None, load: Load | None) -> None:
    """One poll of the drain: its jobs, and this run's load (a job of it seen uncommitted has imported;
    one that failed abandons the load at once)."""
    _waited(poll(load.watch(finished) if load is not None else finished), observer, drain)
    if load is not None:
        load.check()


def _waited(counts: Counter[str], observer: RunObserver, drain: Drain | None) -> None:
    if drain is not None:
        ended = sum(drain.ended.values())
        observer.jobs("waiting", ended, ended + sum(drain.ours.values()))


def _report_stalled(ledger: Ledger, after_s: float) -> int:
    """Log every stalled job (left running: it is the server's to finish) and count them."""
    stalled = ledger.stalled(after_s)
    for record, seen in stalled:
        log.warning("%s: job %s stalled: progress %s unchanged for %.0f s", record.url, record.job_id,
                    "unknown" if seen.progress is None else f"{seen.progress:g}",
                    seen.seen_at - seen.changed_at,
                    extra={"event": "stalled", "url": record.url, "job_id": record.job_id})
    return len(stalled)


def _to_submit(items: Iterator[PlanItem], report: RunReport, budget: list[int | None],
               stop: threading.Event, observer: RunObserver) -> Iterator[PlanItem]:
    """Count every decision; yield the ones to submit, within the run's budget."""
    for item in items:
        report.planned[item.action] += 1
        observer.planned(item)
        if item.action in (Action.SUBMIT, Action.RETRY):
            if budget[0] is not None:
                if budget[0] <= 0:
                    report.left += 1
                    continue
                budget[0] -= 1
            yield item
        if stop.is_set():
            return


def refresh_all(target: Target, ledger: Ledger, policy: SubmitPolicy, *, stop: threading.Event,
                redact: Redactor, pause: Callable[[float], object], observer: RunObserver | None = None,
                on_finished: OnFinished | None = None,
                on_regrouped: OnRegrouped | None = None) -> Counter[str]:
    """Poll every job this target's ``submitted`` rows wait on (:func:`orchestrator.jobs.refresh.refresh`),
    telling ``observer`` of each object polled (phase ``refreshing``)."""
    polled_one: Callable[[], None] | None = None
    if observer is not None:
        shown = observer
        total, polled = ledger.counts().get(ObjectState.SUBMITTED.value, 0), 0

        def polled_one() -> None:
            nonlocal polled
            polled += 1
            shown.jobs("refreshing", polled, total)

    return refresh(target, ledger, ledger.records([ObjectState.SUBMITTED], own=True), policy, stop=stop,
                   redact=redact, sleep=pause, on_polled=polled_one, on_finished=on_finished,
                   on_regrouped=on_regrouped)
