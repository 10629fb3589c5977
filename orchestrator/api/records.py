"""What the ledger holds, read only: ``status`` (and its health check), one object's history
(``show``), the whole ledger (``export``) and the HTML report."""

from __future__ import annotations

import csv
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..config import urls
from ..config.manifest import Manifest
from ..errors import OutputError, UnknownObjectError
from ..models import JobProgress, LedgerRecord
from ..report import metrics
from ..report.overview import Overview, overview
from ..report.rows import csv_cell, record_row
from ..run.pipeline import refresh_all
from ..run.policy import submit_policy
from ..run.wiring import (
    TargetFactory,
    ledger_exists,
    ledger_name,
    make_http_client,
    make_reader,
    make_target,
    manifest_ledger,
    one_run,
    redacting,
)
from ..sources.registry import make_source
from ..targets.pacing import RateLimiter


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
            refresh_all(target, ledger, submit_policy(manifest), stop=stop, redact=redact, pause=stop.wait)
    after = manifest.settings.stall_after_s
    if not ledger_exists(manifest):
        return StatusReport({}, [], Overview(clock(), after, [], [], 0, [], None))
    with manifest_ledger(manifest, read_only=True) as ledger:
        found = overview(ledger, stall_after_s=after, failing_limit=failing_limit, clock=clock)
        return StatusReport(ledger.counts(), list(ledger.records()) if objects else [], found)


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
        with manifest_ledger(manifest, read_only=True) as ledger:
            late = ledger.submitted_before(overview.now - limit)
        if late:
            problems.append(f"{late} object(s) submitted more than {limit:g} s ago and still running")
    return problems


def report(manifest: Manifest, *, clock: Callable[[], float] = time.time) -> str:
    """The HTML report of the manifest's ledger (:mod:`orchestrator.report.html`): one self-contained page.
    A ledger not made yet gives a page that says it is empty."""
    from ..report import html as html_report
    title = manifest.path.name
    if not ledger_exists(manifest):
        return html_report.render(html_report.ReportData(title=title, ledger=ledger_name(manifest),
                                                         generated_at=clock()))
    with manifest_ledger(manifest, read_only=True) as ledger:
        data = html_report.gather(ledger, title=title, name=ledger_name(manifest), now=clock())
    return html_report.render(data)


def write_report(manifest: Manifest, path: Path, *, clock: Callable[[], float] = time.time) -> int:
    """Write the HTML report to ``path`` (replaced in one rename); returns its size in bytes. Raises
    :class:`OutputError` when it cannot be written."""
    page = report(manifest, clock=clock)
    metrics.write_atomic(path, page, what="the report", hint="")
    return len(page.encode("utf-8"))


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
    with manifest_ledger(manifest, read_only=True) as ledger:
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
        with manifest_ledger(manifest, read_only=True) as ledger:
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
