"""The commands: each parses, calls one ``api`` function, prints, and ends with an exit code
(:mod:`.exits`): 0 fine, 1 something failed, 2 manifest or usage error, 75 another run holds the ledger,
124 `run --deadline` came, 130/143/129 stopped by Ctrl-C/SIGTERM/SIGHUP. click is imported in this
folder only; logging is set up by :mod:`.logs`, shared options live in :mod:`.options`."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from .. import api
from ..config import discovery, extras
from ..config.manifest import Manifest
from ..errors import OrchestratorError
from ..models import Action, PlanItem, StoredObject
from ..report.rows import iso_time, record_row
from ..run.wiring import ledger_name
from ..terminal import LIST_ITEMS, clip, listing
from . import views
from .exits import EXIT_FAILED, errors, fail, say, signals
from .logs import JSON_LOG, iso_stamp, log_options
from .options import Duration, manifest_arg, wait_lock_option

if TYPE_CHECKING:
    from .progress import RunBars

def _load(path: str) -> Manifest:
    return api.validate(path)


class _Group(click.Group):
    """Gives every command the logging options, so that they also work after the command's name."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        log_options(cmd)
        super().add_command(cmd, name)


@click.group(cls=_Group, context_settings={"show_default": True})
@click.version_option(package_name=extras.DISTRIBUTION)
@log_options
def cli() -> None:
    """Bulk-load parquet files from object storage into Zilliz Cloud and Milvus, exactly once."""


@cli.command()
@manifest_arg
def validate(manifest: str) -> None:
    """Check MANIFEST: exit 0 when valid, 2 otherwise, after printing every problem found (one line
    each)."""
    with errors():
        m = _load(manifest)
    click.echo(f"{manifest}: valid ({len(m.sources)} source(s), target {m.target.type}, "
               f"ledger {ledger_name(m)})")


def _report_sources(problems: list[str], warnings: list[str]) -> None:
    for warning in warnings:
        say(f"warning: {warning}", err=True)
    for problem in problems:
        say(f"error: {problem}", err=True)


def _nothing_found(m: Manifest) -> str:
    """What a run that planned no object says: a listing found none; or, where a source reads events
    or an inventory, none was new (the usual rerun of such a source)."""
    if all(s.discovery == discovery.LIST for s in m.sources):
        return ("nothing to import: the sources listed no object; check each source's url and prefix "
                "(`orchestrator ls MANIFEST` shows what is listed)")
    return "nothing new to import: no object was listed, announced by an event or named by a newer inventory"


@cli.command(name="ls")
@manifest_arg
@click.option("--source", "source", type=click.IntRange(min=0), default=None, metavar="N",
              help="Only sources[N] (counting from 0).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
@click.option("--problems-only", is_flag=True,
              help="Only the objects that will not be imported (dropped or held back); the counts still "
              "end the output.")
def ls_command(manifest: str, source: int | None, as_json: bool, problems_only: bool) -> None:
    """Show every object the lister sees under each source's prefix, and the rule that kept or
    dropped it (or that settings.min_age_s holds it back)."""
    def show(entry: api.LsEntry) -> None:
        obj, verdict = entry.listed.obj, entry.listed.verdict
        if problems_only and verdict.kept and not entry.held_back:
            return
        if as_json:
            click.echo(json.dumps({
                "source": entry.source, "url": obj.url, "size": obj.size, "version": obj.version,
                "checksum": obj.checksum, "modified": obj.modified, "kept": verdict.kept,
                "rule": verdict.rule, "held_back": entry.held_back, "found": obj.found}))
            return
        state = "held" if entry.held_back else "kept" if verdict.kept else "dropped"
        why = f"{verdict.rule}; {entry.held_back}" if entry.held_back else verdict.rule
        say(f"{state:8} {obj.url}  ({why}{_found(obj)})")

    with errors():
        report = api.ls(_load(manifest), source=source, on_entry=show)
    _report_sources(report.source_errors, report.source_warnings)
    line = ", ".join(f"{n} {what}" for what, n in sorted(report.counts.items())) or "no objects"
    click.echo(f"ls: {line}", err=True)
    if report.source_errors:
        sys.exit(EXIT_FAILED)


@cli.command()
@manifest_arg
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
@click.option("--problems-only", is_flag=True,
              help="Only the objects that need a person: held, changed, or with no collection (the "
              "pattern did not match); the counts still end the output.")
def plan(manifest: str, as_json: bool, problems_only: bool) -> None:
    """List the sources and show what `run` would do with each object, without submitting."""
    def show(item: PlanItem, job: int | None = None) -> None:
        route = item.route
        if problems_only and not _plan_problem(item):
            return
        if as_json:
            click.echo(json.dumps({
                "url": item.obj.url, "version": item.obj.version, "size": item.obj.size,
                "action": item.action.value, "reason": item.reason,
                "collection": route.collection if route else None,
                "partition": route.partition if route else None, "found": item.obj.found,
                **({"job": job} if job is not None else {})}))
        else:
            where = f" -> {route.collection}" + (f"/{route.partition}" if route and route.partition else "") \
                if route else ""
            say(f"{item.action.value:9} {item.obj.url}{where}  ({clip(item.reason, views.ERROR_CHARS)}"
                f"{_found(item.obj)})")

    def show_job(number: int, items: list[PlanItem]) -> None:
        if as_json:
            for item in items:
                show(item, job=number)
            return
        if not problems_only:
            route = items[0].route
            assert route is not None
            where = route.collection + (f"/{route.partition}" if route.partition else "")
            alone = " (alone: the cause of a failed job)" if items[0].alone else \
                f" (part {items[0].part} of a failed job)" if items[0].part is not None else ""
            say(f"job {number}: {len(items)} object(s), {views.size(sum(i.obj.size for i in items))} "
                 f"-> {where}{alone}")
        for item in items:
            show(item)

    with errors():
        m = _load(manifest)
        report = api.plan(m, on_item=show, on_job=show_job if m.settings.objects_per_job > 1 else None)
    _report_sources(report.source_errors, report.source_warnings)
    totals = report.totals
    line = ", ".join(f"{n} {action}" for action, n in sorted(totals.items())) or "no objects"
    jobs = f"; {report.jobs} import job(s) of up to {m.settings.objects_per_job} objects" \
        if m.settings.objects_per_job > 1 else ""
    click.echo(f"plan: {line}{jobs}", err=True)
    if report.source_errors:
        sys.exit(EXIT_FAILED)


def _plan_problem(item: PlanItem) -> bool:
    """Whether a planned object needs a person: held, changed under on_change: skip, or unroutable."""
    return item.action in (Action.HOLD, Action.CHANGED) or item.route is None


@cli.command()
@manifest_arg
@click.option("--deep", is_flag=True, help="Read each file's whole first row group, every column, not a "
              "sample of settings.preflight_sample_rows rows.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
@click.option("--problems-only", is_flag=True,
              help="Only the files with a problem; the counts still end the output.")
def check(manifest: str, deep: bool, as_json: bool, problems_only: bool) -> None:
    """Only the pre-flight check: each file's parquet footer and a sample of its rows against its
    collection's schema, without submitting or recording anything. Exit 1 when any file has a problem.
    A file whose collection has no known schema is read as parquet but "not checked" (the line says
    why; set schema_files)."""
    def show(item: PlanItem, found: api.Inspection | None, error: str | None) -> None:
        problems = [error] if error is not None else found.problems if found is not None else []
        rows = found.rows if found is not None else None
        warnings = found.warnings if found is not None else []
        if problems_only and not problems:
            return
        if as_json:
            click.echo(json.dumps({"url": item.obj.url, "collection": item.route.collection if item.route
                                   else None, "rows": rows, "problems": problems, "warnings": warnings,
                                   "not_checked": found.unchecked if found is not None else None}))
            return
        if problems:
            say(f"invalid   {item.obj.url}: " + listing(problems) + (
                " (check --json lists them all)" if len(problems) > LIST_ITEMS else ""))
        elif found is not None and found.unchecked:
            say(f"not checked {item.obj.url} ({rows} rows; read as parquet, but {found.unchecked})")
        else:
            say(f"ok        {item.obj.url} ({rows} rows)")
        for warning in warnings[:LIST_ITEMS]:
            say(f"  warning {clip(warning)}")
        if len(warnings) > LIST_ITEMS:
            say(f"  ... and {len(warnings) - LIST_ITEMS:,} more warnings (check --json lists them all)")

    with errors():
        report = api.check(_load(manifest), deep=deep, on_result=show)
    for error in report.source_errors:
        say(f"error: {error}", err=True)
    line = ", ".join(f"{n} {kind}" for kind, n in sorted(report.counts.items())) or "no objects"
    click.echo(f"check: {line}", err=True)
    if report.source_errors or report.counts["invalid"] or report.counts["unreadable"]:
        sys.exit(EXIT_FAILED)


@cli.command()
@manifest_arg
@click.option("--wait", is_flag=True, help="Poll until every job of this run has finished (implied by "
              "settings.visibility: per_run, which commits the run's jobs together).")
@click.option("--max-submissions", type=click.IntRange(min=0), default=None,
              help="Submit at most N objects in this run.")
@wait_lock_option
@click.option("--poll-interval", type=click.FloatRange(min=0), default=5.0, metavar="SECONDS",
              help="Seconds between progress polls with --wait.")
@click.option("--deep", is_flag=True, help="The pre-flight check reads each file's whole first row group, "
              "not a sample of settings.preflight_sample_rows rows.")
@click.option("--deadline", type=Duration(), default=None, metavar="DURATION",
              help="Stop after DURATION (3000, 50m, 1h30m): nothing new is submitted, the calls in flight "
              "are recorded, the jobs left are the next run's; exit 124 with the summary.")
@click.option("--metrics-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="PATH", help="At the end, write Prometheus metrics to PATH (node_exporter's "
              "textfile collector), atomically.")
@click.option("--metrics-push", default=None, metavar="URL",
              help="At the end, push the same metrics to the Prometheus Pushgateway at URL "
              "(job=orchestrator, grouped by manifest).")
@click.option("--follow", is_flag=True, help="Keep reading the sources' event queues (discovery: events) "
              "until SIGTERM or SIGINT, then end with the summary (exit 0 when nothing failed); jobs are "
              "polled as with --wait, and the metrics are written after every round.")
@click.pass_context
def run(ctx: click.Context, manifest: str, wait: bool, max_submissions: int | None, wait_lock: float,
        poll_interval: float, deep: bool, deadline: float | None, metrics_file: Path | None,
        metrics_push: str | None, follow: bool) -> None:
    """List, plan, submit and record; end with one summary line on stdout. Progress bars on stderr
    when it is a terminal."""
    stop = threading.Event()
    options = api.RunOptions(wait=wait, max_submissions=max_submissions, wait_lock_s=wait_lock,
                             poll_interval_s=poll_interval, deep=deep, deadline_s=deadline, follow=follow)
    with errors(), signals(stop) as received:
        m = _load(manifest)
        if metrics_file is not None:
            api.check_metrics_file(metrics_file)
        started = time.monotonic()
        bars = _bars(bool(ctx.meta.get(JSON_LOG)) or follow, max_submissions)

        def progress(so_far: api.RunReport) -> None:  # --follow: the metrics after every round
            for error in api.write_metrics(m, so_far, seconds=time.monotonic() - started, file=metrics_file,
                                           push_url=metrics_push):
                say(f"error: {error}", err=True)

        with bars or nullcontext():
            report = api.run(m, options, stop=stop, observer=bars, on_round=progress if follow else None)
        if received and not follow:  # a signal is how a service is told to end
            report.interrupted = received[0]
    # source errors and a fatal error were logged as they happened (api.run): not printed again
    _report_sources([], report.source_warnings)
    if report.interrupted is not None:
        click.echo(f"stopped by {signal.Signals(report.interrupted).name}: the ledger is saved; the next run "
                   "resumes", err=True)
    elif follow and received:
        click.echo(f"stopped following on {signal.Signals(received[0]).name}: the ledger is saved; messages "
                   "not yet settled come back to the next run", err=True)
    elif report.expired:
        click.echo(f"stopped at its deadline (--deadline {deadline:g} s): the ledger is saved; the next run "
                   "resumes", err=True)
    if report.nothing_new and report.exit_code() == 0:
        click.echo("nothing new to import: every object listed was imported before (or is importing)"
                   if sum(report.planned.values()) else _nothing_found(m), err=True)
    if report.stalled:
        click.echo(f"{report.stalled} job(s) stalled: no progress for settings.stall_after_s; left "
                   "running (`orchestrator status` lists them)", err=True)
    seconds = time.monotonic() - started
    code = report.exit_code()
    try:
        failed: list[OrchestratorError] = [*api.write_metrics(m, report, seconds=seconds, file=metrics_file,
                                                              push_url=metrics_push)]
    except OrchestratorError as exc:  # the ledger could not be read for the counts
        failed = [exc]
    for error in failed:
        say(f"error: {error}", err=True)
        code = code or EXIT_FAILED
    fields = {**report.fields(exit_code=code), "seconds": round(seconds, 1)}
    summary = f"{report.summary(exit_code=code)} seconds={seconds:.1f} at={iso_stamp(time.time())}"
    logging.getLogger("orchestrator").info(summary, extra={"event": "summary", "fields": fields})
    click.echo(summary)
    sys.exit(code)


def _found(obj: StoredObject) -> str:
    """How ``ls`` and ``plan`` say where an object was found, when not by the listing."""
    return "" if obj.found == "listing" else f"; found by {obj.found}"


def _bars(json_log: bool, max_submissions: int | None) -> RunBars | None:
    """Progress bars on stderr when it is a terminal that can redraw them, unless the logs are JSON
    (meant for a machine). rich is imported only then: cron runs start faster without it."""
    if json_log or not sys.stderr.isatty() or os.environ.get("TERM") == "dumb":
        return None
    from .progress import RunBars
    return RunBars(max_submissions=max_submissions)


@cli.command()
@manifest_arg
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--refresh", is_flag=True, help="Poll the import API for every submitted job first.")
@click.option("--check", is_flag=True,
              help="A health check: exit 1 when objects are uncertain, failed or invalid, or jobs are "
              "stalled or submitted longer than --running-max (the reasons on stderr); 0 otherwise.")
@click.option("--running-max", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="With --check: how long a job may stay submitted  [default: settings.stall_after_s]")
@wait_lock_option
def status(manifest: str, as_json: bool, refresh: bool, check: bool, running_max: float | None,
           wait_lock: float) -> None:
    """Show what the ledger holds, per source and collection: counts by state, rows, the oldest
    running job, stalled jobs (settings.stall_after_s) and the last error of each failing object.
    Exit 0 whatever it holds, unless --check finds a problem (exit 1)."""
    with errors():
        m = _load(manifest)
        report = api.status(m, refresh_jobs=refresh, objects=as_json, wait_lock_s=wait_lock)
        problems = api.health(m, report, running_max_s=running_max) if check else []
    _show_status(m, manifest, report, as_json)
    for problem in problems:
        say(f"error: {problem}", err=True)
    if problems:
        sys.exit(EXIT_FAILED)


def _show_status(m: Manifest, manifest: str, report: api.StatusReport, as_json: bool) -> None:
    overview = report.overview
    if as_json:
        jobs = Counter(r.job_id for r in report.records if r.job_id)
        click.echo(json.dumps({
            "counts": report.counts,
            "objects": [{"url": r.url, "etag": r.version, "collection": r.collection,
                         "partition": r.partition, "state": r.state.value, "job_id": r.job_id,
                         "job_objects": jobs[r.job_id] if r.job_id else None,
                         "attempts": r.attempts, "error": r.error, "rows": r.rows,
                         "imported_rows": r.imported_rows, "found": r.found or "listing"}
                        for r in report.records],
            "groups": [{"source": g.source, "collection": g.collection, "counts": g.counts,
                        "stalled": g.stalled, "rows_expected": g.rows[0] if g.rows else None,
                        "rows_imported": g.rows[1] if g.rows else None,
                        "oldest_running": None if g.oldest_running is None else {
                            "url": g.oldest_running.url, "job_id": g.oldest_running.job_id,
                            "since": iso_time(g.oldest_running.updated_at)}}
                       for g in overview.groups],
            "stalled": [{"url": r.url, "job_id": r.job_id, "progress": p.progress,
                         "unchanged_since": iso_time(p.changed_at),
                         "last_polled": iso_time(p.seen_at)} for r, p in overview.stalled],
            "last_success": None if overview.last_success_at is None else iso_time(
                overview.last_success_at),
        }, indent=2))
        return
    for line in views.status_lines(overview, report.counts, m.sources, ledger_name(m)):
        say(line)


@cli.command()
@manifest_arg
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              metavar="FILE", help="Where to write the page (replaced atomically).")
def report(manifest: str, output: Path) -> None:
    """Write an HTML report of the ledger: one self-contained page (no network needed to view it) with
    charts of objects and rows imported over time, the jobs in flight, job durations, failures by
    reason, and each source and collection by state."""
    with errors():
        size = api.write_report(_load(manifest), output)
    click.echo(f"report: {output} ({views.size(size)})", err=True)


@cli.command()
@manifest_arg
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def show(manifest: str, url: str, as_json: bool) -> None:
    """Show one object's whole history from the ledger: every version, attempt, job id, server
    message and timestamp. URL is the object's URL (s3://bucket/key, gs://..., file://...), an absolute
    path, or a path relative to a source (day=01/part-0.parquet)."""
    with errors():
        m = _load(manifest)
        history = api.show(m, url)
    if as_json:
        click.echo(json.dumps({
            "url": history.url,
            "versions": [{**record_row(v), "found": v.found or "listing", "companions": [
                {"url": c.url, "version": c.version, "state": c.state.value}
                for c in history.companions.get(v.id, [])], "events": [
                {"at": iso_time(at), "state": state, "job_id": job, "detail": detail}
                for at, version, state, job, detail in history.events if version == v.version]}
                for v in history.versions],
            "jobs": {job: {"progress": p.progress, "unchanged_since": iso_time(p.changed_at),
                           "last_polled": iso_time(p.seen_at)} for job, p in history.progress.items()},
        }, indent=2))
        return
    for line in views.history_lines(history, m.settings.stall_after_s):
        say(line)


@cli.command()
@manifest_arg
@click.option("--format", "fmt", type=click.Choice(api.EXPORT_FORMATS), default="jsonl", show_default=True,
              help="JSON lines, or CSV with a header row.")
@click.option("--output", type=click.File("w", encoding="utf-8", lazy=True), default="-", metavar="FILE",
              help="Write to FILE instead of stdout.")
def export(manifest: str, fmt: str, output: TextIO) -> None:
    """Write the ledger, one row per object version, for other tools (streamed: any size)."""
    with errors():
        try:
            n = api.export(_load(manifest), output, fmt=fmt)
        except BrokenPipeError:  # the reader stopped early (`| head`): leave quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(EXIT_FAILED)
    click.echo(f"export: {n} row(s)", err=True)


@cli.command()
@manifest_arg
@click.option("--url", "url_glob", default=None, metavar="GLOB",
              help="Only objects whose URL matches GLOB: * ? [...] match, so 's3://lake/2024/*'; a path "
              "relative to a source or an absolute path works too.")
@click.option("--exact", default=None, metavar="URL",
              help="Only the object at URL (or path), taken as written: for keys with * ? [ ] in them.")
@click.option("--uncertain", is_flag=True,
              help="Re-arm `uncertain` objects instead of failed ones: only those the server's job list "
              "proves have no job (a job proven to be one's is adopted instead).")
@click.option("--force", is_flag=True,
              help="With --uncertain: re-arm even objects whose job may exist (each may be imported "
              "twice: check the collection first).")
@wait_lock_option
def retry(manifest: str, url_glob: str | None, exact: str | None, uncertain: bool, force: bool,
          wait_lock: float) -> None:
    """Re-arm failed and invalid objects (with a fresh failure budget) so that the next run submits
    them; prints each URL re-armed. Exit 1 when --url or --exact matches no such object, or when an
    uncertain object is not re-armed because its job may exist."""
    if url_glob is not None and exact is not None:
        raise click.UsageError("--url and --exact: give one or the other")
    if force and not uncertain:
        raise click.UsageError("--force goes with --uncertain")
    with errors():
        report = api.retry(_load(manifest), url_glob=url_glob, exact=exact, uncertain=uncertain,
                           force=force, wait_lock_s=wait_lock)
    for url, job_id in report.adopted:
        say(f"adopted job {job_id} for {url}: the job list proves it is its import (not re-armed)")
    for url in report.rearmed:
        say(f"re-armed {url}")
    for url, why in report.refused:
        say(f"not re-armed {url}: {why}", err=True)
    if report.refused:
        n = len(report.refused)
        fail(f"{n} uncertain object{'' if n == 1 else 's'} not re-armed: a job may exist for "
              f"{'it' if n == 1 else 'each'}; check the collection, then `orchestrator retry --uncertain "
              "--force` re-arms them anyway (each may then be imported twice)", EXIT_FAILED)
    kind = "uncertain" if uncertain else "failed or invalid"
    if not report.rearmed and not report.adopted and report.looked_for:
        fail(f"no {kind} object matches {', '.join(report.looked_for)} (`orchestrator status` lists "
              "the failing ones)", EXIT_FAILED)
    n = len(report.rearmed)
    click.echo(f"re-armed {n} object{'' if n == 1 else 's'}; the next `run` submits them" if n
               else f"nothing to re-arm: no {kind} objects", err=not n)


@cli.group()
def ledger() -> None:
    """Move a ledger between SQLite and PostgreSQL."""


@ledger.command("copy")
@click.argument("source")
@click.argument("destination")
@click.option("--wait-lock", type=click.FloatRange(min=0), default=0.0, metavar="SECONDS",
              help="Wait up to SECONDS for runs on either ledger to end (0: exit 75 at once).")
def ledger_copy(source: str, destination: str, wait_lock: float) -> None:
    """Copy the ledger SOURCE, history included, into the empty ledger DESTINATION. Each is a SQLite
    file or postgresql://user@host:5432/db?schema=NAME (a password only as ${ENV_VAR}, quoted for the
    shell, or from PGPASSWORD). A destination that holds anything is refused."""
    with errors():
        counts = api.copy_ledger(api.ledger_location(source), api.ledger_location(destination),
                                 wait_lock_s=wait_lock)
    say("copied " + ", ".join(f"{n} {table}" for table, n in counts.items()))


def main() -> None:
    """The ``orchestrator`` command: :func:`cli`, then an exit a signal cannot turn into a traceback.

    What runs after the command (Python's shutdown: Milvus Lite stops its server and flushes its
    database) would otherwise meet a second Ctrl-C with a ``KeyboardInterrupt`` traceback from inside
    milvus_lite: from here on a signal ends the process at once, quietly."""
    try:
        cli()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) != signal.SIG_IGN:
                signal.signal(signum, signal.SIG_DFL)
