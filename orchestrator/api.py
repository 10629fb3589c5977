"""The library surface: ``validate``, ``ls``, ``plan``, ``run``, ``status``, ``retry``, ``show``,
``export``, ``write_metrics``. Wires the parts together.

Everything a command does happens here, so that it can be called from Python as well as from the CLI;
the CLI only parses, calls one of these, prints and maps errors to exit codes.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import TextIO

import httpx

from . import lock, metrics, planner, urls
from .checks import Inspection as Inspection
from .checks import Preflight
from .errors import (
    FatalTargetError,
    ManifestError,
    OrchestratorError,
    OutputError,
    SourceError,
    UnknownObjectError,
)
from .evidence import LocalClock, ServerClock, name_key
from .jobs import Drain, OnFinished, Reconciler, Window, abort_orphans, look_again, reconcile, refresh
from .ledger import Ledger
from .manifest import TARGET_RULES, Manifest, PreflightMode, Settings, SourceConfig, TargetConfig, load
from .models import Action, JobProgress, JobState, LedgerRecord, ObjectState, PlanItem, Secret, StoredObject
from .models import Outcome as Outcome
from .pacing import RateLimiter
from .redact import Redactor
from .run import RunOptions as RunOptions
from .run import RunReport as RunReport
from .run import RunState
from .sources.base import Listed, Source, judged
from .sources.registry import make_source
from .submit import NameGuard, Submitter
from .targets.base import ObjectReader, Target
from .targets.milvus import MilvusTarget
from .targets.zilliz_v1 import ZillizV1Target
from .targets.zilliz_v2 import ZillizV2Target

log = logging.getLogger("orchestrator")
BATCH = 500
JOB_MEMORY_S = 3 * 3600  # how long servers remember finished jobs (Milvus: about 3 hours)


def validate(path: str | Path, environ: Mapping[str, str] | None = None) -> Manifest:
    """Load and check a manifest; raises :class:`ManifestError`."""
    return load(path, environ)


# -- wiring: real clients by default, replaceable by callers ------------------------------------

SourceFactory = Callable[[SourceConfig, Settings], Source]
JobsHook = Callable[[str, int, int], None]  # (phase, jobs polled or finished, jobs in all)
TargetFactory = Callable[[Manifest, httpx.Client, ObjectReader], Target]


def make_http_client(manifest: Manifest, limiter: RateLimiter | None = None,
                     server_clock: ServerClock | None = None,
                     clock: Callable[[], float] = time.monotonic) -> httpx.Client:
    hooks: dict[str, list[Callable[..., object]]] = {"request": [], "response": []}
    if limiter is not None:
        hooks["request"].append(lambda _request: limiter.acquire())
    hooks["request"].append(lambda request: request.extensions.update(orchestrator_sent=clock()))
    hooks["response"].append(lambda response: log_http(response, clock()))
    if server_clock is not None:
        hooks["response"].append(lambda response: server_clock.observe(response.headers.get("Date")))
    return httpx.Client(timeout=manifest.settings.timeout_s, event_hooks=hooks,
                        headers={"User-Agent": "orchestrator/0.1"})


def log_http(response: httpx.Response, now: float) -> None:
    """One DEBUG line (``-v``) per HTTP call: method, path, status, time to the headers, and the
    server's Retry-After when it gives one. Never the query, the headers or the body (secrets)."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    request = response.request
    sent = request.extensions.get("orchestrator_sent")
    elapsed_ms = round((now - sent) * 1000) if isinstance(sent, float) else None
    retry_after = response.headers.get("Retry-After")
    log.debug("HTTP %s %s -> %d in %s ms%s", request.method, request.url.path, response.status_code,
              elapsed_ms, f" (Retry-After: {retry_after})" if retry_after else "",
              extra={"event": "http", "method": request.method, "path": request.url.path,
                     "status": response.status_code, "elapsed_ms": elapsed_ms,
                     "retry_after": retry_after})


def target_identity(t: TargetConfig) -> str:
    """Where imports land, as the ledger records it: the API, the cluster or endpoint, the database.
    Jobs are only ever polled or judged by the target that owns them."""
    db = t.db_name or "default"
    if t.type in ("zilliz-v1", "zilliz-v2"):
        return f"{t.type} cluster={t.cluster_id} db={db}"
    if t.uri is not None:
        return f"{t.type} {t.uri.resolve()}"
    url = httpx.URL(t.base_url)
    return f"{t.type} {url.scheme}://{url.netloc.decode().lower()} db={db}"


def source_key(source: SourceConfig) -> str:
    """A source as the ledger names it: its URL, which stays when sources are reordered."""
    if source.root is not None:
        return urls.file_url(source.root) + "/"
    return f"{source.scheme}://{source.bucket}/{source.prefix}"


def open_ledger(manifest: Manifest, *, clock: Callable[[], float] = time.time,
                read_only: bool = False) -> Ledger:
    """The manifest's ledger; ``read_only`` for commands that only read it (nothing written)."""
    return Ledger(manifest.ledger_path, clock=clock, owner=target_identity(manifest.target),
                  sources=[source_key(s) for s in manifest.sources], read_only=read_only)


@contextlib.contextmanager
def one_run(manifest: Manifest, *, wait_lock_s: float = 0.0,
            clock: Callable[[], float] = time.time) -> Iterator[Ledger]:
    """The ledger, held by this process alone: the lock file beside the ledger's real path (symlinks
    resolved), and a run record inside the database, so two runs never both write to one ledger,
    whatever paths reached it."""
    path = manifest.ledger_path.resolve()
    with lock.hold(path, wait_s=wait_lock_s) as lock_path, open_ledger(manifest, clock=clock) as ledger:
        ledger.claim_run(lock_path, holder_alive=lock.is_held)
        try:
            yield ledger
        finally:
            ledger.end_run()


# One line per import API: how its manifest section becomes a target. Milvus Lite is imported on use,
# since it needs the optional ``local`` extra.
TARGETS: dict[str, Callable[[TargetConfig, httpx.Client, ObjectReader], Target]] = {
    "zilliz-v1": lambda t, client, _read: ZillizV1Target(
        client, base_url=t.base_url, cluster_id=t.cluster_id, api_key=_key(t),
        cluster_endpoint=t.cluster_endpoint),
    "zilliz-v2": lambda t, client, _read: ZillizV2Target(
        client, base_url=t.base_url, cluster_id=t.cluster_id, api_key=_key(t), db_name=t.db_name,
        cluster_endpoint=t.cluster_endpoint),
    "milvus": lambda t, client, _read: MilvusTarget(
        client, base_url=t.base_url, token=t.api_key, db_name=t.db_name, two_phase=t.two_phase),
    "milvus-lite": lambda t, _client, read: _milvus_lite(t, read),
    "milvus-grpc": lambda t, client, _read: _milvus_grpc(t, client),
}


def make_target(manifest: Manifest, client: httpx.Client, read: ObjectReader | None = None) -> Target:
    """The target ``target.type`` names; ``read`` reads objects for targets that import them themselves
    (by default, through sources made by :func:`make_source`)."""
    t = manifest.target
    return TARGETS[t.type](t, client, read if read is not None else make_reader(manifest, make_source))


def make_reader(manifest: Manifest, source_factory: SourceFactory) -> ObjectReader:
    """Reads objects through the manifest's sources, each made once, on first use."""
    made: dict[int, Source] = {}
    lock = threading.Lock()

    def read(index: int, obj: StoredObject, start: int, end: int | None) -> bytes:
        with lock:
            if index not in made:
                made[index] = source_factory(manifest.sources[index], manifest.settings)
            source = made[index]
        return source.read(obj, start, end)

    return read


def _key(t: TargetConfig) -> Secret:
    if t.api_key is None:
        raise ManifestError("", "target.api_key", f"the {t.type} target needs an API key")
    return t.api_key


def _milvus_lite(t: TargetConfig, read: ObjectReader) -> Target:
    try:
        from .targets.milvus_lite import MilvusLiteTarget
    except ImportError as exc:
        raise FatalTargetError(f"the milvus-lite target needs pymilvus and milvus-lite ({exc}): install "
                               "them with pip install 'orchestrator[local]'") from exc
    if t.uri is None:
        raise ManifestError("", "target.uri", "the milvus-lite target needs a database path")
    return MilvusLiteTarget(t.uri, read=read, create_collection=t.create_collection, metric=t.metric)


def _milvus_grpc(t: TargetConfig, client: httpx.Client) -> Target:
    try:
        from .targets.milvus_grpc import MilvusGrpcTarget
    except ImportError as exc:
        raise FatalTargetError(f"the milvus-grpc target needs pymilvus ({exc}): install it with pip "
                               "install 'orchestrator[local]'") from exc
    return MilvusGrpcTarget(t.base_url, token=t.api_key, db_name=t.db_name,
                            timeout_s=client.timeout.read or 30.0)  # settings.timeout_s, as for HTTP


@contextlib.contextmanager
def redacting(manifest: Manifest) -> Iterator[Redactor]:
    """While it lasts, every record of the ``orchestrator`` logger is cleaned of the manifest's
    secrets, whichever code logged it; the redactor is also for texts bound for the ledger."""
    redact = Redactor(secrets_of(manifest))
    log.addFilter(redact)
    try:
        yield redact
    finally:
        log.removeFilter(redact)


def secrets_of(manifest: Manifest) -> list[Secret]:
    found = [manifest.target.api_key] if manifest.target.api_key is not None else []
    for source in manifest.sources:
        found += [s for s in (source.connection_string, source.sas_token) if s is not None]
    for creds in [manifest.credentials, *(s.credentials for s in manifest.sources)]:
        if creds is not None:
            found += [creds.access_key, creds.secret_key, *([creds.token] if creds.token else [])]
    return found


def object_url(item: PlanItem, manifest: Manifest) -> str:
    """The URL the import call names for ``item``, in its source's ``object_url_style``."""
    s = manifest.sources[item.source]
    return urls.object_url(item.obj, scheme=s.scheme, style=s.object_url_style, region=s.region,
                           endpoint_url=s.endpoint_url)


# -- ls -------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LsEntry:
    """One listed object, the rule that kept or dropped it, and whether ``min_age_s`` holds it back."""

    source: int
    listed: Listed
    held_back: str | None


@dataclass
class LsReport:
    counts: Counter[str] = field(default_factory=Counter)  # kept, dropped, held back
    source_errors: list[str] = field(default_factory=list)
    source_warnings: list[str] = field(default_factory=list)


def ls(manifest: Manifest, *, source: int | None = None, on_entry: Callable[[LsEntry], None],
       source_factory: SourceFactory = make_source, clock: Callable[[], float] = time.time) -> LsReport:
    """Every object each source's lister sees under its prefix, with the rule that kept or dropped it."""
    if source is not None and not 0 <= source < len(manifest.sources):
        raise ManifestError(str(manifest.path), "--source",
                            f"no source {source}: the manifest has sources 0 to {len(manifest.sources) - 1}")
    report = LsReport()
    now = clock()
    for config in manifest.sources if source is None else [manifest.sources[source]]:
        try:
            for listed in judged(source_factory(config, manifest.settings), config.include, config.exclude,
                                 warn=report.source_warnings.append):
                held = planner.too_new(listed.obj, manifest.settings, now) if listed.verdict.kept else None
                report.counts["held back" if held else "kept" if listed.verdict.kept else "dropped"] += 1
                on_entry(LsEntry(config.index, listed, held))
        except SourceError as exc:
            report.source_errors.append(str(exc))
    return report


# -- plan -----------------------------------------------------------------------------------------

def plan_source(source: SourceConfig, lister: Source, manifest: Manifest, ledger: Ledger | None, *,
                now: float, warn: Callable[[str], None]) -> Iterator[PlanItem]:
    """Stream the plan for one source: list, keep what include/exclude keep, look the history up in
    batches, decide."""
    objects = (e.obj for e in judged(lister, source.include, source.exclude, warn=warn) if e.verdict.kept)
    owner = target_identity(manifest.target)
    while batch := list(islice(objects, BATCH)):
        history = ledger.history([o.url for o in batch]) if ledger is not None else {}
        for obj in batch:
            yield planner.decide(obj, source, history.get(obj.url, ()), manifest.settings, now=now,
                                 owner=owner)


@dataclass
class PlanReport:
    """Counts only: the items stream through ``on_item``, so a million objects stay off the heap."""

    totals: Counter[str] = field(default_factory=Counter)
    source_errors: list[str] = field(default_factory=list)
    source_warnings: list[str] = field(default_factory=list)


def plan(manifest: Manifest, *, source_factory: SourceFactory = make_source,
         on_item: Callable[[PlanItem], None] | None = None,
         clock: Callable[[], float] = time.time) -> PlanReport:
    """List every source and decide, without submitting or writing anything."""
    report = PlanReport()
    ledger = open_ledger(manifest, read_only=True) if manifest.ledger_path.exists() else None
    now = clock()
    try:
        for source in manifest.sources:
            try:
                lister = source_factory(source, manifest.settings)
                for item in plan_source(source, lister, manifest, ledger, now=now,
                                        warn=report.source_warnings.append):
                    report.totals[item.action.value] += 1
                    if on_item is not None:
                        on_item(item)
            except SourceError as exc:
                report.source_errors.append(str(exc))
    finally:
        if ledger is not None:
            ledger.close()
    return report


# -- check ----------------------------------------------------------------------------------------

@dataclass
class CheckReport:
    counts: Counter[str] = field(default_factory=Counter)  # ok, invalid, unreadable
    source_errors: list[str] = field(default_factory=list)


def check(manifest: Manifest, *, deep: bool = False,
          on_result: Callable[[PlanItem, Inspection | None, str | None], None],
          source_factory: SourceFactory = make_source, target_factory: TargetFactory = make_target,
          clock: Callable[[], float] = time.time) -> CheckReport:
    """Only the pre-flight check, on every listed object that has a collection: its footer against
    the collection's schema. Writes nothing; ``on_result`` gets the inspection, or the reason the
    object could not be read."""
    report = CheckReport()
    reader = make_reader(manifest, source_factory)
    with redacting(manifest), \
            make_http_client(manifest, RateLimiter(manifest.settings.requests_per_second)) as client:
        preflight = Preflight(target_factory(manifest, client, reader), manifest, reader, deep=deep)

        def inspect(item: PlanItem) -> None:
            if item.route is None:
                return
            try:
                found = preflight.inspect(item)
            except SourceError as exc:
                report.counts["unreadable"] += 1
                on_result(item, None, str(exc))
                return
            report.counts["invalid" if found.problems else "ok"] += 1
            on_result(item, found, None)

        planned = plan(manifest, source_factory=source_factory, on_item=inspect, clock=clock)
    report.source_errors = planned.source_errors
    return report


# -- run ------------------------------------------------------------------------------------------

def make_reconciler(manifest: Manifest, target: Target, ledger: Ledger, server_clock: ServerClock, *,
                    stop: threading.Event, sleep: Callable[[float], object]) -> Reconciler:
    """The reconciler with the evidence rules of this target: an in-process target's list neither lags
    nor forgets; a server's is judged on the server's clock."""
    settings = manifest.settings
    if TARGET_RULES[manifest.target.type].in_process:
        return Reconciler(target, ledger, max_attempts=settings.max_attempts, stop=stop,
                          server_clock=LocalClock().now, lag_s=0.0, memory_s=float("inf"), sleep=sleep)
    return Reconciler(target, ledger, max_attempts=settings.max_attempts, stop=stop,
                      server_clock=server_clock.now, lag_s=settings.job_list_lag_s, memory_s=JOB_MEMORY_S,
                      sleep=sleep)


def run(
    manifest: Manifest,
    options: RunOptions | None = None,
    *,
    stop: threading.Event | None = None,
    source_factory: SourceFactory = make_source,
    target_factory: TargetFactory = make_target,
    sleep: Callable[[float], object] | None = None,
    on_outcome: Callable[[PlanItem, Outcome], None] | None = None,
    on_item: Callable[[PlanItem], None] | None = None,
    on_jobs: JobsHook | None = None,
    on_listed: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> RunReport:
    """Refresh known jobs, reconcile interrupted calls, then list, plan, submit and record; with
    ``options.wait``, keep submitting as jobs end until every planned object's job has ended.

    Hooks for progress displays: ``on_item`` sees every planned object, ``on_outcome`` every
    submission, ``on_jobs(phase, done, total)`` the job polls (phase ``refreshing`` or ``waiting``),
    ``on_listed()`` the end of the listing (totals are known from then on).
    """
    options = options if options is not None else RunOptions()
    state = RunState(stop)
    stop = state.stop
    report = state.report
    pause: Callable[[float], object] = sleep if sleep is not None else stop.wait
    settings = manifest.settings
    server_clock = ServerClock()

    def backoff(seconds: float) -> object:  # every pause before a retried call goes through here
        state.retried()
        return pause(seconds)

    with redacting(manifest) as redact, \
            one_run(manifest, wait_lock_s=options.wait_lock_s, clock=clock) as ledger, \
            make_http_client(manifest, RateLimiter(settings.requests_per_second), server_clock) as client:
        reader = make_reader(manifest, source_factory)
        target = target_factory(manifest, client, reader)
        reconciler = make_reconciler(manifest, target, ledger, server_clock, stop=stop, sleep=backoff)

        def poll(on_finished: OnFinished | None = None, hook: JobsHook | None = None) -> Counter[str]:
            return _refresh(target, ledger, manifest, stop, redact, backoff, hook, on_finished)

        drain: Drain | None = None
        try:
            report.refreshed.update(poll(hook=on_jobs))
            adopted: list[str] = []
            report.reconciled.update(reconcile(reconciler, ledger, redact, adopted=adopted))
            report.reconciled["aborted"] += abort_orphans(reconciler, ledger, redact)
            most = settings.max_jobs_in_flight or TARGET_RULES[manifest.target.type].window
            window = Window(most, stop=stop, running=ledger.count(ObjectState.SUBMITTED, own=True)
                            + ledger.count(ObjectState.SUBMITTING, own=True))
            if options.wait:
                drain = Drain(lambda finished: _waited(poll(finished), on_jobs, drain), window,
                              interval=options.poll_interval_s, stop=stop, pause=pause)
                for job_id in adopted:
                    drain.add(job_id)
                drain.start()
            submitter = Submitter(
                target, ledger, concurrency=settings.concurrency, max_attempts=settings.max_attempts,
                credentials_for=lambda i: manifest.credentials_for(manifest.sources[i]),
                object_url=lambda item: target.object_ref(item.obj, object_url(item, manifest)),
                reconciler=reconciler, names=NameGuard(_unresolved_names(ledger)), window=window,
                state=state, redact=redact, drain=options.wait, full_pause_s=options.poll_interval_s,
                sleep=backoff, on_created=drain.add if drain is not None else None,
                preflight=None if settings.preflight is PreflightMode.OFF else Preflight(
                    target, manifest, reader, deep=options.deep),
                enforce=settings.preflight is PreflightMode.ENFORCE,
            )
            budget = [options.max_submissions]

            def record(item: PlanItem, outcome: Outcome) -> None:
                state.outcome(outcome)
                if on_outcome is not None:
                    on_outcome(item, outcome)

            for source in manifest.sources:
                if stop.is_set():
                    break
                try:
                    lister = source_factory(source, manifest.settings)
                    submitter.submit_all(
                        _to_submit(plan_source(source, lister, manifest, ledger, now=clock(),
                                               warn=report.source_warnings.append),
                                   report, budget, stop, on_item),
                        record)
                except SourceError as exc:
                    report.source_errors.append(str(exc))
                    log.error("%s", exc, extra={"event": "source-error"})
            if on_listed is not None:
                on_listed()
            if state.fatal is not None:
                raise state.fatal
            if submitter.unresolved and not stop.is_set():  # this run's lost replies: a second look
                looked = look_again(reconciler, ledger, redact, submitter.unresolved, pause=pause,
                                    adopted=adopted)
                report.reconciled.update(looked)
                report.outcomes[Outcome.DEFERRED] += looked["released"]  # no job: the next run submits
                if drain is not None:
                    for job_id in adopted:
                        drain.add(job_id)
            if drain is not None:
                drain.finish()
                report.waited.update(drain.ended)
        except FatalTargetError as exc:
            if drain is not None:
                stop.set()
                with contextlib.suppress(OrchestratorError):
                    drain.finish()
            report.fatal = redact(str(exc))
            log.error("stopping: %s", report.fatal, extra={"event": "fatal"})
        report.stalled = _report_stalled(ledger, settings.stall_after_s)
        report.unresolved = ledger.count(ObjectState.SUBMITTING, own=True)
        report.made_uncertain += report.reconciled["uncertain"] + report.refreshed["uncertain"]
        if report.exit_code() == 0 and not stop.is_set():
            ledger.note_success()
    return report


def _waited(counts: Counter[str], on_jobs: JobsHook | None, drain: Drain | None) -> None:
    if on_jobs is not None and drain is not None:
        ended = sum(drain.ended.values())
        on_jobs("waiting", ended, ended + len(drain.ours))


def _unresolved_names(ledger: Ledger) -> list[tuple[str, str]]:
    """The names of imports whose job is in doubt: no object with one of them is submitted this run."""
    return [name_key(r.collection, r.url)
            for r in ledger.records([ObjectState.SUBMITTING, ObjectState.UNCERTAIN], own=True)]


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
               stop: threading.Event, on_item: Callable[[PlanItem], None] | None) -> Iterator[PlanItem]:
    """Count every decision; yield the ones to submit, within the run's budget."""
    for item in items:
        report.planned[item.action] += 1
        if on_item is not None:
            on_item(item)
        if item.action in (Action.SUBMIT, Action.RETRY):
            if budget[0] is not None:
                if budget[0] <= 0:
                    report.left += 1
                    continue
                budget[0] -= 1
            yield item
        if stop.is_set():
            return


def _refresh(target: Target, ledger: Ledger, manifest: Manifest, stop: threading.Event,
             redact: Redactor, pause: Callable[[float], object], on_jobs: JobsHook | None = None,
             on_finished: OnFinished | None = None) -> Counter[str]:
    polled_one: Callable[[], None] | None = None
    if on_jobs is not None:
        total, polled = ledger.counts().get(ObjectState.SUBMITTED.value, 0), 0

        def polled_one() -> None:
            nonlocal polled
            polled += 1
            on_jobs("refreshing", polled, total)

    return refresh(target, ledger, ledger.records([ObjectState.SUBMITTED], own=True),
                   max_attempts=manifest.settings.max_attempts, stop=stop, redact=redact, sleep=pause,
                   concurrency=manifest.settings.concurrency, on_polled=polled_one, on_finished=on_finished)


# -- status and retry -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class GroupStatus:
    """One source and collection: counts by state, stalled jobs, the job running longest, and rows
    (expected, imported) when the ledger records them (``None`` when it does not)."""

    source: str  # the source's URL
    collection: str
    counts: dict[str, int]
    stalled: int
    oldest_running: LedgerRecord | None
    rows: tuple[int | None, int | None] | None


@dataclass(frozen=True, slots=True)
class Overview:
    """What ``status`` shows, aggregated by the ledger: never the whole ledger in memory."""

    now: float
    stall_after_s: float
    groups: list[GroupStatus]
    stalled: list[tuple[LedgerRecord, JobProgress]]
    failing_total: int
    failing: list[LedgerRecord]  # the most recent ones, each with its last error
    last_success_at: float | None


@dataclass
class StatusReport:
    counts: dict[str, int]
    records: list[LedgerRecord]
    overview: Overview


def status(manifest: Manifest, *, refresh_jobs: bool = False,
           target_factory: TargetFactory = make_target, objects: bool = True, failing_limit: int = 20,
           wait_lock_s: float = 0.0, clock: Callable[[], float] = time.time) -> StatusReport:
    """What the ledger holds; with ``refresh_jobs``, poll submitted jobs first (under the run lock,
    waiting up to ``wait_lock_s`` for another run to end). ``objects=False`` leaves ``records`` empty
    (the overview alone stays small at any ledger size)."""
    if refresh_jobs:
        stop = threading.Event()
        with redacting(manifest) as redact, \
                one_run(manifest, wait_lock_s=wait_lock_s, clock=clock) as ledger, \
                make_http_client(manifest, RateLimiter(manifest.settings.requests_per_second)) as client:
            target = target_factory(manifest, client, make_reader(manifest, make_source))
            _refresh(target, ledger, manifest, stop, redact, stop.wait)
    after = manifest.settings.stall_after_s
    if not manifest.ledger_path.exists():
        return StatusReport({}, [], Overview(clock(), after, [], [], 0, [], None))
    with open_ledger(manifest, read_only=True) as ledger:
        stalled = ledger.stalled(after)
        total, failing = ledger.failing(failing_limit)
        overview = Overview(clock(), after, _groups(ledger, stalled), stalled, total, failing,
                            ledger.last_success())
        return StatusReport(ledger.counts(), list(ledger.records()) if objects else [], overview)


def _groups(ledger: Ledger, stalled: list[tuple[LedgerRecord, JobProgress]]) -> list[GroupStatus]:
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for source, collection, state, n in ledger.group_counts():
        counts.setdefault((source, collection), {})[state] = n
    stuck = Counter((record.source, record.collection) for record, _ in stalled)
    oldest = ledger.oldest_submitted()
    rows = ledger.row_totals()
    return [GroupStatus(key[0], key[1], by_state, stuck[key], oldest.get(key),
                        rows.get(key) if rows else None) for key, by_state in counts.items()]


# -- show and export ------------------------------------------------------------------------------

Event = tuple[float, str, str, str | None, str | None]  # (time, version, state, job id, detail)


@dataclass(frozen=True, slots=True)
class ObjectHistory:
    """Every version of one URL the ledger knows, every transition, and its jobs' last progress."""

    url: str
    versions: list[LedgerRecord]
    events: list[Event]
    progress: dict[str, JobProgress]


def url_forms(manifest: Manifest, text: str, *, glob: bool = False) -> list[str]:
    """The ledger URLs (or URL globs) ``text`` may name, as people type them: a URL (a ``file://`` one
    in any encoding), an absolute local path, or a path relative to a source (one form per source).
    A glob is also matched as written, so ``*/bad.parquet`` finds that name under any source."""
    if "://" in text:
        return [urls.canonical_file_url(text, glob=glob) if text.startswith("file://") else text]
    if text.startswith("/"):
        return [urls.file_url(text, glob=glob)]
    relative = text.removeprefix("./")
    forms = [urls.file_url(s.root / relative, glob=glob) if s.root is not None
             else f"{s.scheme}://{s.bucket}/{s.prefix}{relative}" for s in manifest.sources]
    return list(dict.fromkeys([*forms, *([text] if glob else [])]))


def show(manifest: Manifest, url: str) -> ObjectHistory:
    """One object's whole history; ``url`` as :func:`url_forms` reads it. Raises
    :class:`UnknownObjectError` when the ledger has no row."""
    path = manifest.ledger_path
    if not path.exists():
        raise UnknownObjectError(f"{path}: no ledger yet (a run creates it when it first submits)")
    forms = url_forms(manifest, url)
    with open_ledger(manifest, read_only=True) as ledger:
        found = ledger.history(forms)
        url, versions = next(((f, found[f]) for f in forms if found.get(f)), (url, []))
        if not versions:
            looked = "" if forms == [url] else " (looked for " + ", ".join(forms) + ")"
            raise UnknownObjectError(
                f"{url}: not in the ledger {path}{looked}; an object gets a row when first submitted: "
                "`plan` shows what the next run would do with it. Give the URL (s3://bucket/key, "
                "gs://..., file://...), an absolute path, or a path relative to a source")
        events = ledger.events(url)
        return ObjectHistory(url, versions, events,
                             ledger.job_progress(sorted({e[3] for e in events if e[3] is not None})))


EXPORT_FORMATS = ("jsonl", "csv")


def export(manifest: Manifest, out: TextIO, *, fmt: str) -> int:
    """Write every ledger row (one per object version) to ``out`` as JSON lines or CSV, streaming
    page by page; return how many. Times are ISO 8601 in UTC."""
    fields = LedgerRecord._fields
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n") if fmt == "csv" else None
    count = 0
    try:
        if writer is not None:
            writer.writeheader()
        if not manifest.ledger_path.exists():
            return 0
        with open_ledger(manifest, read_only=True) as ledger:
            for record in ledger.records():
                row = record_row(record)
                if writer is not None:
                    writer.writerow(row)
                else:
                    out.write(json.dumps(row) + "\n")
                count += 1
    except BrokenPipeError:
        raise  # the reader stopped (`| head`): not an error worth a message
    except OSError as exc:
        raise OutputError(f"cannot write the export: {exc.strerror or exc}") from exc
    return count


def record_row(record: LedgerRecord) -> dict[str, object]:
    """A ledger row as plain values: its fields, the state's name, the time in ISO 8601."""
    return {**record._asdict(), "state": record.state.value, "updated_at": iso_time(record.updated_at)}


def iso_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")


# -- metrics --------------------------------------------------------------------------------------

def run_metrics(manifest: Manifest, report: RunReport, *, objects: Mapping[str, int], seconds: float,
                now: float, last_success_at: float | None) -> list[metrics.Metric]:
    """The Prometheus metrics of one run (gauges; every sample labelled with the manifest's file name)."""
    label = {"manifest": manifest.path.name}

    def one(name: str, help_text: str, value: float) -> metrics.Metric:
        return metrics.Metric(name, help_text, [(label, value)])

    def by(name: str, help_text: str, key: str, values: Mapping[str, float], keys: Iterable[str],
           ) -> metrics.Metric:
        return metrics.Metric(name, help_text, [({**label, key: k}, values.get(k, 0)) for k in keys])

    jobs = {state: report.refreshed[state] + report.waited[state]
            for state in (JobState.COMPLETED.value, JobState.FAILED.value)}
    return [
        by("orchestrator_objects", "Object versions in the ledger at the end of the run, by state.",
           "state", objects, [s.value for s in ObjectState]),
        by("orchestrator_run_planned_objects", "Objects listed by the run, by the planner's decision.",
           "action", report.planned, [a.value for a in Action]),
        by("orchestrator_run_submissions", "Submissions made by the run, by outcome.",
           "outcome", report.outcomes, [o.value for o in Outcome]),
        one("orchestrator_run_retries",
            "Calls repeated after a transient error (429, 5xx, busy, lost reply).", report.retries),
        one("orchestrator_run_failures", "Objects refused by the server plus jobs that failed, in the run.",
            report.outcomes[Outcome.FAILED] + jobs[JobState.FAILED.value]),
        by("orchestrator_run_jobs_finished", "Jobs seen finishing during the run, by result.",
           "result", jobs, list(jobs)),
        one("orchestrator_jobs_stalled",
            "Running jobs whose progress stood still for settings.stall_after_s.", report.stalled),
        one("orchestrator_run_source_errors", "Sources that could not be listed in the run.",
            len(report.source_errors)),
        one("orchestrator_run_exit_code", "The run's exit code (0: nothing failed).", report.exit_code()),
        one("orchestrator_run_duration_seconds", "How long the run took.", round(seconds, 3)),
        one("orchestrator_run_end_timestamp_seconds", "When the run ended (Unix time).", round(now, 3)),
        one("orchestrator_last_success_timestamp_seconds",
            "When a run last ended with nothing failed (Unix time; 0: never).",
            round(last_success_at, 3) if last_success_at is not None else 0),
    ]


def write_metrics(manifest: Manifest, report: RunReport, path: Path, *, seconds: float,
                  clock: Callable[[], float] = time.time) -> None:
    """Write the run's metrics for node_exporter's textfile collector (atomically: temp + rename)."""
    objects: dict[str, int] = {}
    last_success = None
    if manifest.ledger_path.exists():
        with open_ledger(manifest) as ledger:
            objects, last_success = ledger.counts(), ledger.last_success()
    metrics.write_atomic(path, metrics.render(run_metrics(
        manifest, report, objects=objects, seconds=seconds, now=clock(), last_success_at=last_success)))


@dataclass(frozen=True, slots=True)
class RetryReport:
    """The URLs re-armed, and the URLs or globs looked for (empty: every failed object)."""

    rearmed: list[str]
    looked_for: list[str]


def retry(manifest: Manifest, *, url_glob: str | None = None, exact: str | None = None,
          uncertain: bool = False, wait_lock_s: float = 0.0) -> RetryReport:
    """Re-arm failed and invalid (or uncertain) objects so that the next run submits them: all of them,
    those whose URL matches ``url_glob`` (``*``, ``?``, ``[...]``), or the one ``exact`` names (its URL
    as is, glob characters included). Both may be paths, as :func:`url_forms` reads them."""
    if url_glob is not None and exact is not None:
        raise ManifestError("", "--url, --exact", "give one or the other")
    match: Callable[[str], bool] | None = None
    looked: list[str] = []
    if exact is not None:
        looked = url_forms(manifest, exact)
        wanted = set(looked)
        match = wanted.__contains__
    elif url_glob is not None:
        looked = url_forms(manifest, url_glob, glob=True)
        match = lambda url: any(fnmatch.fnmatchcase(url, g) for g in looked)  # noqa: E731
    with one_run(manifest, wait_lock_s=wait_lock_s) as ledger:
        return RetryReport(ledger.rearm(match=match, uncertain=uncertain), looked)


