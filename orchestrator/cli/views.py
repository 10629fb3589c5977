"""Plain-text views for the terminal: the ``status`` table and one object's history (``show``).

Pure: report in, lines out; ``cli/main.py`` prints them. Plain text rather than rich tables, so that the
output is the same in a terminal, a pipe and a cron mail, and long URLs are never cut.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from ..api import ObjectHistory
from ..config.manifest import SourceConfig
from ..models import JobProgress, LedgerRecord, ObjectState
from ..report.overview import Overview
from ..terminal import clip

STATES = [s.value for s in ObjectState]
ERROR_CHARS = 1000  # the most of one stored error a line shows (`show --json` has it whole)


def status_lines(overview: Overview, counts: dict[str, int], sources: Sequence[SourceConfig],
                 ledger: str) -> list[str]:
    """The ledger per source and collection, then the oldest running jobs, stalled jobs and failing
    objects, ending with the one-line ``status:`` total."""
    now = overview.now
    last = overview.last_success_at
    lines = [f"ledger: {ledger}" + ("" if not overview.groups else "   last successful run: " + (
        f"{when(last)} ({ago(now - last)})" if last is not None else "never"))]
    if overview.groups:
        lines += ["", *_group_table(overview, sources)]
    running = sorted((g.oldest_running for g in overview.groups if g.oldest_running is not None),
                     key=lambda r: r.updated_at)
    if running:
        lines += ["", "oldest running job per collection:"]
        lines += [f"  {r.collection}: {r.job_id}{_of(overview, r.job_id)} since {when(r.updated_at)} "
                  f"({ago(now - r.updated_at, suffix='')})  {r.url}" for r in running]
    if overview.stalled:
        lines += ["", f"stalled: {_n(len(overview.stalled), 'job')} whose progress stood still for "
                      f"{age(overview.stall_after_s)} or more (settings.stall_after_s); left running:"]
        lines += [f"  {r.job_id}{_of(overview, r.job_id)}  progress {_progress(p)}  {r.url}"
                  for r, p in overview.stalled[:20]]
        if len(overview.stalled) > 20:
            lines.append(f"  ... and {len(overview.stalled) - 20} more (status --json lists them all)")
    if overview.failing_total:
        shown = len(overview.failing)
        more = f", the {shown} most recent below" if shown < overview.failing_total else ""
        lines += ["", f"failing: {_n(overview.failing_total, 'object')}{more} "
                      "(`orchestrator show MANIFEST URL` for one's history):"]
        for r in overview.failing:
            failed = r.job_id and r.state is ObjectState.FAILED
            job = f"  (job {r.job_id}{_of(overview, r.job_id)})" if failed else ""
            lines += [f"  {r.state.value:9}  {when(r.updated_at)}  {r.url}{job}",
                      f"             {clip(r.error or '', ERROR_CHARS)}"]
    total = ", ".join(f"{counts[s]} {s}" for s in STATES if counts.get(s)) or "empty ledger"
    return [*lines, "", f"status: {total}"]


def _of(overview: Overview, job_id: str | None) -> str:
    """`` of 10 objects`` for a job of several, else nothing."""
    n = overview.job_sizes.get(job_id or "", 1)
    return f" of {n} objects" if n > 1 else ""


def _group_table(overview: Overview, sources: Sequence[SourceConfig]) -> list[str]:
    groups = overview.groups
    states = [s for s in STATES if any(g.counts.get(s) for g in groups)]
    with_rows = any(g.rows is not None for g in groups)
    header = ["source", "collection", *states, "stalled"]
    header += ["rows expected", "rows imported"] if with_rows else []
    header.append("oldest running")
    body: list[list[str]] = []
    for g in groups:
        label = g.source
        row = [label, g.collection, *(_int(g.counts.get(s, 0)) for s in states), _int(g.stalled)]
        if with_rows:
            expected, imported = g.rows if g.rows is not None else (None, None)
            row += [_int(expected), _int(imported)]
        running = g.oldest_running
        row.append(ago(overview.now - running.updated_at, suffix="") if running is not None else "-")
        body.append(row)
    if len(groups) > 1:
        total = ["total", "", *(_int(sum(g.counts.get(s, 0) for g in groups)) for s in states),
                 _int(sum(g.stalled for g in groups))]
        if with_rows:
            total += [_int(_sum(g.rows[0] for g in groups if g.rows is not None)),
                      _int(_sum(g.rows[1] for g in groups if g.rows is not None))]
        body.append([*total, ""])
    return table(header, body, right=set(range(2, len(header) - 1)))


def history_lines(history: ObjectHistory, stall_after_s: float) -> list[str]:
    """Each version of the object (oldest first) with its state, then every transition it went
    through, and the last progress polled for each of its jobs."""
    lines = [history.url]
    for v in history.versions:
        lines += ["", f"version {v.version}: {v.state.value}", *(f"  {k:11} {val}" for k, val in (
            ("collection", v.collection + (f" / partition {v.partition}" if v.partition else "")),
            ("source", v.source), ("found by", v.found or "listing"), ("size", size(v.size)),
            ("job", v.job_id or "-"),
            ("attempts", f"{v.attempts} ({v.failures} failed on the server)"),
            ("updated", when(v.updated_at)),
            *((("last error", clip(v.error, ERROR_CHARS)),) if v.error else ())))]
        events = [e for e in history.events if e[1] == v.version]
        rows = [[when(at, millis=True), clip(state), clip(job or "-"), clip(detail or "", ERROR_CHARS)]
                for at, _, state, job, detail in events]
        if rows:
            history_table = table(["time", "state", "job", "detail"], rows, right=set())
            lines += ["  history:", *("    " + line for line in history_table)]
        lines += _companion_lines(history.companions.get(v.id, []), v.job_id)
        seen = history.progress.get(v.job_id or "")
        if seen is not None and v.state is ObjectState.SUBMITTED:
            stalled = seen.seen_at - seen.changed_at >= stall_after_s
            lines.append(f"  {'progress':11} {_progress(seen)}, last polled {when(seen.seen_at)}"
                         + ("  STALLED (settings.stall_after_s)" if stalled else ""))
    return lines


def _companion_lines(others: list[LedgerRecord], job_id: str | None) -> list[str]:
    """The other objects of the version's job (or of its create call, before a job id is known)."""
    if not others:
        return []
    what = f"job {job_id}" if job_id else "its create call"
    lines = [f"  {'companions':11} {_n(len(others), 'other object')} in {what} (all or nothing):"]
    lines += [f"    {r.state.value:10} {r.url}" for r in others[:10]]
    if len(others) > 10:
        lines.append(f"    ... and {len(others) - 10} more (show --json lists them all)")
    return lines


def table(header: list[str], rows: list[list[str]], *, right: set[int]) -> list[str]:
    """Columns two spaces apart, those numbered in ``right`` right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [line(header), *(line(r) for r in rows)]


def when(at: float, *, millis: bool = False) -> str:
    stamp = datetime.fromtimestamp(at, UTC)
    fraction = f".{stamp.microsecond // 1000:03}" if millis else ""
    return f"{stamp:%Y-%m-%d %H:%M:%S}{fraction} UTC"


def ago(seconds: float, *, suffix: str = " ago") -> str:
    """How long ago something happened, ``seconds`` before now: ``12m ago``; a time recorded by a
    machine whose clock was ahead (negative ``seconds``) is said to be in the future, with the skew."""
    if seconds <= -1:
        return f"in the future: clock skew of {age(-seconds)}"
    return age(seconds) + suffix


def age(seconds: float) -> str:
    """``45s``, ``12m``, ``2h13m``, ``3d4h`` (a duration: negative ones are 0s; see :func:`ago`)."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def size(n: int) -> str:
    """``812 B``, ``1.2 MB``: decimal units, as object stores count."""
    units = ("B", "KB", "MB", "GB", "TB")
    value, unit = float(n), 0
    while value >= 1000 and unit < len(units) - 1:
        value /= 1000
        unit += 1
    return f"{n} B" if unit == 0 else f"{value:.1f} {units[unit]}"


def _progress(p: JobProgress) -> str:
    value = "unknown" if p.progress is None else f"{p.progress:g}"
    return f"{value} since {when(p.changed_at)} ({age(p.seen_at - p.changed_at)} unchanged)"


def _int(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _sum(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"

