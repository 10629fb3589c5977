"""The command line: the only module that imports click. Parses, calls one ``api`` function, prints,
and maps errors to exit codes: 0 fine, 1 something failed, 2 manifest or usage error, 75 another run
holds the ledger, 130/143 stopped by Ctrl-C/SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from . import api
from .errors import LockHeldError, ManifestError, OrchestratorError
from .manifest import Manifest
from .models import PlanItem

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75


class JsonFormatter(logging.Formatter):
    """One JSON object per event, for log shippers."""

    _FIELDS = ("event", "url", "job_id", "error", "jobs")

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                               "message": record.getMessage()}
        for key in self._FIELDS:
            if hasattr(record, key):
                out[key] = getattr(record, key)
        return json.dumps(out, sort_keys=True)


def _setup_logging(verbose: bool, json_log: bool) -> None:
    logger = logging.getLogger("orchestrator")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_log else logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose or json_log else logging.WARNING)
    logger.propagate = False


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ManifestError as exc:
        _fail(str(exc), EXIT_USAGE)
    except LockHeldError as exc:
        _fail(str(exc), EXIT_LOCKED)
    except OrchestratorError as exc:
        _fail(str(exc), EXIT_FAILED)


@contextmanager
def _signals(stop: threading.Event) -> Iterator[list[int]]:
    """SIGINT/SIGTERM set ``stop``: calls in flight finish, nothing new starts."""
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        if received:  # a second signal: stop now; the ledger is consistent at every commit
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        received.append(signum)
        stop.set()
        logging.getLogger("orchestrator").warning(
            "signal %d: finishing the calls in flight, submitting nothing new", signum,
            extra={"event": "stopping"})

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _load(path: str) -> Manifest:
    return api.validate(path)


manifest_arg = click.argument("manifest", type=click.Path(dir_okay=False))


@click.group()
@click.version_option(package_name="orchestrator")
@click.option("-v", "--verbose", is_flag=True, help="Log every step to stderr.")
@click.option("--json-log", is_flag=True, help="Log one JSON object per event to stderr.")
def cli(verbose: bool, json_log: bool) -> None:
    """Bulk-load parquet files from object storage into Zilliz Cloud and Milvus, exactly once."""
    _setup_logging(verbose, json_log)


@cli.command()
@manifest_arg
def validate(manifest: str) -> None:
    """Check MANIFEST: exit 0 when valid, 2 with the first problem otherwise."""
    with _errors():
        m = _load(manifest)
    click.echo(f"{manifest}: valid ({len(m.sources)} source(s), target {m.target.type}, "
               f"ledger {m.ledger_path})")


def _report_sources(errors: list[str], warnings: list[str]) -> None:
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    for error in errors:
        click.echo(f"error: {error}", err=True)


@cli.command(name="ls")
@manifest_arg
@click.option("--source", "source", type=click.IntRange(min=0), default=None, metavar="N",
              help="Only sources[N] (counting from 0).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
def ls_command(manifest: str, source: int | None, as_json: bool) -> None:
    """Show every object the lister sees under each source's prefix, and the rule that kept or
    dropped it (or that settings.min_age_s holds it back)."""
    def show(entry: api.LsEntry) -> None:
        obj, verdict = entry.listed.obj, entry.listed.verdict
        if as_json:
            click.echo(json.dumps({
                "source": entry.source, "url": obj.url, "size": obj.size, "version": obj.version,
                "checksum": obj.checksum, "modified": obj.modified, "kept": verdict.kept,
                "rule": verdict.rule, "held_back": entry.held_back}))
            return
        state = "held" if entry.held_back else "kept" if verdict.kept else "dropped"
        why = f"{verdict.rule}; {entry.held_back}" if entry.held_back else verdict.rule
        click.echo(f"{state:8} {obj.url}  ({why})")

    with _errors():
        report = api.ls(_load(manifest), source=source, on_entry=show)
    _report_sources(report.source_errors, report.source_warnings)
    line = ", ".join(f"{n} {what}" for what, n in sorted(report.counts.items())) or "no objects"
    click.echo(f"ls: {line}", err=True)
    if report.source_errors:
        sys.exit(EXIT_FAILED)


@cli.command()
@manifest_arg
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
def plan(manifest: str, as_json: bool) -> None:
    """List the sources and show what `run` would do with each object, without submitting."""
    def show(item: PlanItem) -> None:
        route = item.route
        if as_json:
            click.echo(json.dumps({
                "url": item.obj.url, "version": item.obj.version, "size": item.obj.size,
                "action": item.action.value, "reason": item.reason,
                "collection": route.collection if route else None,
                "partition": route.partition if route else None}))
        else:
            where = f" -> {route.collection}" + (f"/{route.partition}" if route and route.partition else "") \
                if route else ""
            click.echo(f"{item.action.value:9} {item.obj.url}{where}  ({item.reason})")

    with _errors():
        report = api.plan(_load(manifest), on_item=show)
    _report_sources(report.source_errors, report.source_warnings)
    totals = report.totals
    line = ", ".join(f"{n} {action}" for action, n in sorted(totals.items())) or "no objects"
    click.echo(f"plan: {line}", err=True)
    if report.source_errors:
        sys.exit(EXIT_FAILED)


@cli.command()
@manifest_arg
@click.option("--deep", is_flag=True, help="Also read each file's first row group (vector lengths, nulls).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
def check(manifest: str, deep: bool, as_json: bool) -> None:
    """Only the pre-flight check: each file's parquet footer against its collection's schema, without
    submitting or recording anything. Exit 1 when any file has a problem."""
    def show(item: PlanItem, found: api.Inspection | None, error: str | None) -> None:
        problems = [error] if error is not None else found.problems if found is not None else []
        rows = found.rows if found is not None else None
        if as_json:
            click.echo(json.dumps({"url": item.obj.url, "collection": item.route.collection if item.route
                                   else None, "rows": rows, "problems": problems}))
        elif problems:
            click.echo(f"invalid   {item.obj.url}: " + "; ".join(problems))
        else:
            click.echo(f"ok        {item.obj.url} ({rows} rows)")

    with _errors():
        report = api.check(_load(manifest), deep=deep, on_result=show)
    for error in report.source_errors:
        click.echo(f"error: {error}", err=True)
    line = ", ".join(f"{n} {kind}" for kind, n in sorted(report.counts.items())) or "no objects"
    click.echo(f"check: {line}", err=True)
    if report.source_errors or report.counts["invalid"] or report.counts["unreadable"]:
        sys.exit(EXIT_FAILED)


@cli.command()
@manifest_arg
@click.option("--wait", is_flag=True, help="Poll until every job of this run has finished.")
@click.option("--max-submissions", type=click.IntRange(min=0), default=None,
              help="Submit at most N objects in this run.")
@click.option("--wait-lock", type=click.FloatRange(min=0), default=0.0, metavar="SECONDS",
              help="Wait up to SECONDS for another run on the same ledger to end (default: exit 75).")
@click.option("--poll-interval", type=click.FloatRange(min=0), default=5.0, metavar="SECONDS",
              help="Seconds between progress polls with --wait.")
@click.option("--deep", is_flag=True, help="The pre-flight check also reads each file's first row group.")
def run(manifest: str, wait: bool, max_submissions: int | None, wait_lock: float,
        poll_interval: float, deep: bool) -> None:
    """List, plan, submit and record; end with one summary line on stdout."""
    stop = threading.Event()
    options = api.RunOptions(wait=wait, max_submissions=max_submissions, wait_lock_s=wait_lock,
                             poll_interval_s=poll_interval, deep=deep)
    with _errors(), _signals(stop) as received:
        m = _load(manifest)
        started = time.monotonic()
        report = api.run(m, options, stop=stop)
        if received:
            report.interrupted = received[0]
    _report_sources(report.source_errors, report.source_warnings)
    if report.fatal:
        click.echo(f"error: {report.fatal}", err=True)
    if report.interrupted is not None:
        click.echo("stopped by a signal: the ledger is saved; the next run resumes", err=True)
    if report.nothing_new and report.exit_code() == 0:
        click.echo("nothing new to import: every object listed was imported before (or is importing)",
                   err=True)
    summary = f"{report.summary()} seconds={time.monotonic() - started:.1f}"
    logging.getLogger("orchestrator").info(summary, extra={"event": "summary"})
    click.echo(summary)
    sys.exit(report.exit_code())


@cli.command()
@manifest_arg
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--refresh", is_flag=True, help="Poll the import API for every submitted job first.")
def status(manifest: str, as_json: bool, refresh: bool) -> None:
    """Show what the ledger holds: counts by state and one line per object."""
    with _errors():
        report = api.status(_load(manifest), refresh_jobs=refresh)
    if as_json:
        click.echo(json.dumps({
            "counts": report.counts,
            "objects": [{"url": r.url, "etag": r.version, "collection": r.collection,
                         "partition": r.partition, "state": r.state.value, "job_id": r.job_id,
                         "attempts": r.attempts, "error": r.error, "rows": r.rows,
                         "imported_rows": r.imported_rows} for r in report.records],
        }, indent=2))
        return
    for r in report.records:
        job = r.job_id or "-"
        error = f"  {r.error}" if r.error else ""
        click.echo(f"{r.state.value:10} {job:28} {r.collection:20} {r.url}{error}")
    counts = ", ".join(f"{n} {state}" for state, n in sorted(report.counts.items())) or "empty ledger"
    click.echo(f"status: {counts}")


@cli.command()
@manifest_arg
@click.option("--url", "url_glob", default=None, metavar="GLOB",
              help="Only objects whose URL matches GLOB (e.g. 's3://lake/2024/*').")
@click.option("--uncertain", is_flag=True,
              help="Re-arm `uncertain` objects instead of failed ones (check the cluster first).")
def retry(manifest: str, url_glob: str | None, uncertain: bool) -> None:
    """Re-arm failed objects (with a fresh failure budget) so that the next run submits them."""
    with _errors():
        n = api.retry(_load(manifest), url_glob=url_glob, uncertain=uncertain)
    click.echo(f"re-armed {n} object(s); the next `run` submits them")


