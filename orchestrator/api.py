"""The library surface: ``validate``, ``ls``, ``plan``, ``run``, ``status``, ``retry``, ``show``,
``export``, ``write_metrics`` (a file, a Pushgateway), ``copy_ledger``. Wires the parts together.

Everything a command does happens here, so that it can be called from Python as well as from the CLI;
the CLI only parses, calls one of these, prints and maps errors to exit codes.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from .config import env, extras, pgurl, urls
from .config.document import ledger_file_problem
from .config.manifest import Manifest
from .errors import (
    ManifestError,
    OutputError,
    SourceError,
    UnknownObjectError,
)
from .jobs.evidence import Judgement, ServerClock, Verdict
from .jobs.lifecycle import settle
from .ledger import copy
from .ledger.factory import Location
from .ledger.factory import hold_ledger as hold_ledger
from .ledger.store import Ledger
from .models import Action, JobProgress, JobState, LedgerRecord, ObjectState, PlanItem
from .models import Outcome as Outcome
from .planning import planner
from .preflight.checks import Inspection as Inspection
from .preflight.checks import Preflight
from .report import metrics
from .run.grouping import batches
from .run.pipeline import make_reconciler, max_job_bytes, plan_source, refresh_all
from .run.pipeline import run as run
from .run.state import RunOptions as RunOptions
from .run.state import RunReport as RunReport
from .run.wiring import JobsHook as JobsHook
from .run.wiring import SourceFactory as SourceFactory
from .run.wiring import TargetFactory as TargetFactory
from .run.wiring import ledger_exists as ledger_exists
from .run.wiring import ledger_name as ledger_name
from .run.wiring import load_manifest
from .run.wiring import make_http_client as make_http_client
from .run.wiring import make_reader as make_reader
from .run.wiring import make_target as make_target
from .run.wiring import object_url as object_url
from .run.wiring import one_run as one_run
from .run.wiring import open_ledger as open_ledger
from .run.wiring import redacting as redacting
from .run.wiring import secrets_of as secrets_of
from .sources.base import Listed, judged
from .sources.registry import make_source
from .targets.pacing import RateLimiter
from .terminal import printable

log = logging.getLogger("orchestrator")


def validate(path: str | Path, environ: Mapping[str, str] | None = None) -> Manifest:
    """Load and check a manifest; raises :class:`ManifestError`."""
    return load_manifest(path, environ)


# -- wiring: real clients by default, replaceable by callers ------------------------------------

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

@dataclass
class PlanReport:
    """Counts only: the items stream through ``on_item``, so a million objects stay off the heap."""

    totals: Counter[str] = field(default_factory=Counter)
    source_errors: list[str] = field(default_factory=list)
    source_warnings: list[str] = field(default_factory=list)
    jobs: int = 0  # the import jobs the objects to submit make (settings.objects_per_job)


def plan(manifest: Manifest, *, source_factory: SourceFactory = make_source,
         on_item: Callable[[PlanItem], None] | None = None,
         on_job: Callable[[int, list[PlanItem]], None] | None = None,
         clock: Callable[[], float] = time.time) -> PlanReport:
    """List every source and decide, without submitting or writing anything. ``on_item`` sees every
    object not to submit as it is decided; the objects to submit go to ``on_job`` by import job (its
    number, its objects; grouped as ``run`` would group them, before the pre-flight check), or to
    ``on_item`` one by one when ``on_job`` is None."""
    report = PlanReport()
    ledger = open_ledger(manifest, read_only=True) if ledger_exists(manifest) else None
    now = clock()

    def counted(items: Iterable[PlanItem]) -> Iterable[PlanItem]:
        for item in items:
            report.totals[item.action.value] += 1
            if item.action in (Action.SUBMIT, Action.RETRY):
                yield item
            elif on_item is not None:
                on_item(item)

    try:
        for source in manifest.sources:
            try:
                lister = source_factory(source, manifest.settings)
                for group in batches(counted(plan_source(source, lister, manifest, ledger, now=now,
                                                         warn=report.source_warnings.append)),
                                     most=manifest.settings.objects_per_job,
                                     max_bytes=max_job_bytes(manifest)):
                    report.jobs += 1
                    if on_job is not None:
                        on_job(report.jobs, group)
                    elif on_item is not None:
                        for item in group:
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
    counts: Counter[str] = field(default_factory=Counter)  # ok, invalid, unreadable, not checked
    source_errors: list[str] = field(default_factory=list)


def check(manifest: Manifest, *, deep: bool = False,
          on_result: Callable[[PlanItem, Inspection | None, str | None], None],
          source_factory: SourceFactory = make_source, target_factory: TargetFactory = make_target,
          clock: Callable[[], float] = time.time) -> CheckReport:
    """Only the pre-flight check, on every listed object that has a collection: its footer (and a
    sample of its data) against the collection's schema, ``settings.concurrency`` objects at once.
    Writes nothing; ``on_result`` gets the inspection, or the reason the object could not be read, in
    listing order."""
    report = CheckReport()
    reader = make_reader(manifest, source_factory)
    most = manifest.settings.concurrency
    pending: deque[tuple[PlanItem, Future[Inspection]]] = deque()

    def hand_on(ahead: int) -> None:
        """Results in listing order: each one ready, and the oldest while more than ``ahead`` wait."""
        while pending and (pending[0][1].done() or len(pending) > ahead):
            item, future = pending.popleft()
            try:
                found = future.result()
            except SourceError as exc:
                report.counts["unreadable"] += 1
                on_result(item, None, str(exc))
                continue
            report.counts["invalid" if found.problems else "not checked" if found.unchecked else "ok"] += 1
            on_result(item, found, None)

    with redacting(manifest), \
            make_http_client(manifest, RateLimiter(manifest.settings.requests_per_second)) as client, \
            ThreadPoolExecutor(max_workers=most, thread_name_prefix="preflight") as pool:
        preflight = Preflight(target_factory(manifest, client, reader), manifest, reader, deep=deep)

        def inspect(item: PlanItem) -> None:
            if item.route is not None:
                pending.append((item, pool.submit(preflight.inspect, item)))
                hand_on(2 * most)

        planned = plan(manifest, source_factory=source_factory, on_item=inspect, clock=clock)
        hand_on(0)
    report.source_errors = planned.source_errors
    return report


# -- run ------------------------------------------------------------------------------------------

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
    job_sizes: dict[str, int] = field(default_factory=dict)  # objects per job shown, where more than one


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
            refresh_all(target, ledger, manifest, stop, redact, stop.wait)
    after = manifest.settings.stall_after_s
    if not ledger_exists(manifest):
        return StatusReport({}, [], Overview(clock(), after, [], [], 0, [], None))
    with open_ledger(manifest, read_only=True) as ledger:
        stalled = ledger.stalled(after)
        total, failing = ledger.failing(failing_limit)
        groups = _groups(ledger, stalled)
        shown = {r.job_id for r in [*(r for r, _ in stalled), *failing,
                                    *(g.oldest_running for g in groups if g.oldest_running)] if r.job_id}
        overview = Overview(clock(), after, groups, stalled, total, failing, ledger.last_success(),
                            {job: n for job, n in ledger.job_sizes(sorted(shown)).items() if n > 1})
        return StatusReport(ledger.counts(), list(ledger.records()) if objects else [], overview)


def health(manifest: Manifest, report: StatusReport, *, running_max_s: float | None = None) -> list[str]:
    """What ``status --check`` fails on, one line each: objects held (``uncertain``), failed or invalid,
    stalled jobs, and jobs submitted longer than ``running_max_s`` (default ``settings.stall_after_s``).
    Empty when the ledger is healthy."""
    counts, overview = report.counts, report.overview
    problems = [f"{counts[state]} object(s) {state}{why}" for state, why in (
        ("uncertain", ": held until a person decides (`orchestrator retry --uncertain`, after checking)"),
        ("failed", " (`orchestrator status` shows why; `orchestrator retry` re-arms them)"),
        ("invalid", " (the pre-flight check refused them; `orchestrator check` shows why)"))
        if counts.get(state)]
    if overview.stalled:
        problems.append(f"{len(overview.stalled)} object(s) in jobs stalled: progress unchanged for "
                        f"settings.stall_after_s ({overview.stall_after_s:g} s) or more")
    limit = manifest.settings.stall_after_s if running_max_s is None else running_max_s
    if ledger_exists(manifest):
        with open_ledger(manifest, read_only=True) as ledger:
            late = ledger.submitted_before(overview.now - limit)
        if late:
            problems.append(f"{late} object(s) submitted more than {limit:g} s ago and still running")
    return problems


def _groups(ledger: Ledger, stalled: list[tuple[LedgerRecord, JobProgress]]) -> list[GroupStatus]:
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for source, collection, state, n in ledger.group_counts():
        counts.setdefault((source, collection), {})[state] = n
    stuck = Counter((record.source, record.collection) for record, _ in stalled)
    oldest = ledger.oldest_submitted()
    rows = ledger.row_totals()
    return [GroupStatus(key[0], key[1], by_state, stuck[key], oldest.get(key),
                        rows.get(key) if rows else None) for key, by_state in counts.items()]


# -- the HTML report ------------------------------------------------------------------------------

def report(manifest: Manifest, *, clock: Callable[[], float] = time.time) -> str:
    """The HTML report of the manifest's ledger (:mod:`orchestrator.report.html`): one self-contained page.
    A ledger not made yet gives a page that says it is empty."""
    from .report import html as html_report
    title = manifest.path.name
    if not ledger_exists(manifest):
        return html_report.render(html_report.ReportData(title=title, ledger=ledger_name(manifest),
                                                         generated_at=clock()))
    with open_ledger(manifest, read_only=True) as ledger:
        data = html_report.gather(ledger, title=title, name=ledger_name(manifest), now=clock())
    return html_report.render(data)


def write_report(manifest: Manifest, path: Path, *, clock: Callable[[], float] = time.time) -> int:
    """Write the HTML report to ``path`` (replaced in one rename); returns its size in bytes. Raises
    :class:`OutputError` when it cannot be written."""
    page = report(manifest, clock=clock)
    metrics.write_atomic(path, page, what="the report", hint="")
    return len(page.encode("utf-8"))


# -- show and export ------------------------------------------------------------------------------

Event = tuple[float, str, str, str | None, str | None]  # (time, version, state, job id, detail)


@dataclass(frozen=True, slots=True)
class ObjectHistory:
    """Every version of one URL the ledger knows, every transition, and its jobs' last progress."""

    url: str
    versions: list[LedgerRecord]
    events: list[Event]
    progress: dict[str, JobProgress]
    companions: dict[int, list[LedgerRecord]] = field(default_factory=dict)  # by row id: its job's others


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
    path = ledger_name(manifest)
    if not ledger_exists(manifest):
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
                             ledger.job_progress(sorted({e[3] for e in events if e[3] is not None})),
                             {v.id: ledger.companions(v) for v in versions})


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
        if not ledger_exists(manifest):
            return 0
        with open_ledger(manifest, read_only=True) as ledger:
            for record in ledger.records():
                row = record_row(record)
                if writer is not None:
                    writer.writerow({k: csv_cell(v) for k, v in row.items()})
                else:
                    out.write(json.dumps(row) + "\n")
                count += 1
    except BrokenPipeError:
        raise  # the reader stopped (`| head`): not an error worth a message
    except OSError as exc:
        raise OutputError(f"cannot write the export: {exc.strerror or exc}") from exc
    return count


def csv_cell(value: object) -> object:
    r"""A CSV cell that a terminal or a spreadsheet cannot misread: control characters escaped as the text
    commands escape them (``\x1b``, ``\r``, ``\u202e``), and text that a spreadsheet would run as a
    formula (starting with ``=``, ``+``, ``-`` or ``@``) prefixed with ``'``, as OWASP advises. Numbers
    stay numbers."""
    if not isinstance(value, str):
        return value
    text = printable(value)
    return f"'{text}" if text.startswith(("=", "+", "-", "@")) else text


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


def final_metrics(manifest: Manifest, report: RunReport, *, seconds: float,
                  clock: Callable[[], float] = time.time) -> list[metrics.Metric]:
    """The run's metrics with the ledger's counts as the run left them."""
    objects: dict[str, int] = {}
    last_success = None
    if ledger_exists(manifest):
        with open_ledger(manifest) as ledger:
            objects, last_success = ledger.counts(), ledger.last_success()
    return run_metrics(manifest, report, objects=objects, seconds=seconds, now=clock(),
                       last_success_at=last_success)


def check_metrics_file(path: Path) -> None:
    """Before a run: refuse a ``--metrics-file`` that names anything but a regular file or a new name
    (a folder, a FIFO, a device such as ``/dev/null``, a symlink loop), as a usage error."""
    try:
        metrics.target(path)
    except OutputError as exc:
        raise ManifestError("", "--metrics-file", str(exc)) from None


def write_metrics(manifest: Manifest, report: RunReport, *, seconds: float, file: Path | None = None,
                  push_url: str | None = None, clock: Callable[[], float] = time.time) -> list[OutputError]:
    """The run's metrics, computed once: written for node_exporter's textfile collector to ``file``
    (atomically: temp + rename) and pushed to the Pushgateway at ``push_url`` (grouped by job and
    manifest file name). Each is tried; returns what failed."""
    if file is None and push_url is None:
        return []
    found = final_metrics(manifest, report, seconds=seconds, clock=clock)
    errors: list[OutputError] = []
    if file is not None:
        try:
            metrics.write_atomic(file, metrics.render(found))
        except OutputError as exc:
            errors.append(exc)
    if push_url is not None:
        try:
            metrics.push(push_url, found, grouping={"manifest": manifest.path.name})
        except OutputError as exc:
            errors.append(exc)
    return errors


# -- moving a ledger between SQLite and PostgreSQL ---------------------------------------------------

def ledger_location(text: str, environ: Mapping[str, str] | None = None) -> Location:
    """A SQLite path or a ``postgresql://`` URL (``schema=`` required; a password only as ``${VAR}``),
    as ``ledger copy`` takes them. Raises :class:`ManifestError` naming the argument."""
    variables = os.environ if environ is None else environ
    unsupported = env.UNSUPPORTED_REF.search(text)
    if unsupported is not None:
        raise ManifestError("", "ledger URL", env.unsupported_reference(unsupported.group(1)))
    if not pgurl.is_postgres(text):
        problem = ledger_file_problem(Path(text))
        if problem is not None:
            raise ManifestError("", "ledger", problem)
        return Path(text)

    def unset(name: str) -> str:
        raise ManifestError("", "ledger URL", f"environment variable {name} is not set")

    try:
        location = pgurl.parse(text, substitute=lambda part: env.substitute(part, variables, unset=unset),
                               default_schema=None)
    except ValueError as exc:
        raise ManifestError("", "ledger URL", str(exc)) from None
    why = extras.missing("postgres", needed_by="a PostgreSQL ledger")
    if why is not None:
        raise ManifestError("", "ledger URL", why)
    return location


def copy_ledger(source: Location, destination: Location, *, wait_lock_s: float = 0.0) -> dict[str, int]:
    """Copy a whole ledger (objects, events, job progress, run bookkeeping) into an empty one of either
    kind, in one transaction, holding both ledgers' run locks; returns the rows copied per table."""
    return copy.copy_ledger(source, destination, wait_lock_s=wait_lock_s)


@dataclass(frozen=True, slots=True)
class RetryReport:
    """The URLs re-armed, and the URLs or globs looked for (empty: every failed object); with
    ``uncertain``, the objects whose job the list proved (URL, job id), and those not re-armed because
    their job may exist (URL, why)."""

    rearmed: list[str]
    looked_for: list[str]
    adopted: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def retry(manifest: Manifest, *, url_glob: str | None = None, exact: str | None = None,
          uncertain: bool = False, force: bool = False, wait_lock_s: float = 0.0,
          target_factory: TargetFactory = make_target) -> RetryReport:
    """Re-arm failed and invalid (or uncertain) objects so that the next run submits them: all of them,
    those whose URL matches ``url_glob`` (``*``, ``?``, ``[...]``), or the one ``exact`` names (its URL
    as is, glob characters included). Both may be paths, as :func:`url_forms` reads them.

    An ``uncertain`` object is re-armed only once the server's job list proves it has no job: a job
    that proves to be its is adopted instead, and one whose job may exist is left as it is, with the
    reason (``force`` re-arms them all the same: each may then be imported twice)."""
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
        if uncertain and not force:
            return _retry_uncertain(manifest, ledger, match, looked, target_factory)
        return RetryReport(ledger.rearm(match=match, uncertain=uncertain), looked)


def _retry_uncertain(manifest: Manifest, ledger: Ledger, match: Callable[[str], bool] | None,
                     looked: list[str], target_factory: TargetFactory) -> RetryReport:
    """The job list decides each uncertain object first: adopt, release (re-armed), or refuse."""
    rows = [r for r in ledger.records([ObjectState.UNCERTAIN], own=True) if match is None or match(r.url)]
    refused = [(r.url, f"{r.error or 'uncertain'}; its job {r.job_id} may have imported it")
               for r in rows if r.job_id is not None]  # a recorded job the server forgot: nothing can tell
    decided: dict[int, Judgement] = {}
    server_clock = ServerClock()
    stop = threading.Event()
    limiter = RateLimiter(manifest.settings.requests_per_second)
    with redacting(manifest) as redact, make_http_client(manifest, limiter, server_clock) as client:
        target = target_factory(manifest, client, make_reader(manifest, make_source))
        reconciler = make_reconciler(manifest, target, ledger, server_clock, stop=stop, sleep=stop.wait)
        settle(reconciler, ledger, redact, [r for r in rows if r.job_id is None], adopted=[],
               detail="adopted by retry --uncertain", decided=decided)
    adopted, rearmed = [], []
    for verdict in decided.values():
        if verdict.verdict is Verdict.ADOPT and verdict.job is not None:
            adopted.append((verdict.record.url, verdict.job.job_id))
        elif verdict.verdict is Verdict.RELEASE:
            rearmed.append(verdict.record.url)
        else:
            refused.append((verdict.record.url, verdict.why))
    return RetryReport(rearmed, looked, adopted, sorted(refused))
