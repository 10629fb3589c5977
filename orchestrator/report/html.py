"""The HTML report (``orchestrator report``): one self-contained file with charts of what the ledger
recorded: objects and rows imported over time, the jobs in flight (the queue), job durations, failures
by reason, and every source and collection by state.

Everything is aggregated by the database (GROUP BY, a fixed number of time buckets), so the data in
the page, and the time to make it, hardly depend on the ledger's size. The page needs no network: its
script and style are inline, and its Content-Security-Policy allows nothing else (no fetch, no image,
no font). Text from the ledger (keys, collection names, server messages) reaches the page only as JSON
inside a non-executed ``<script type="application/json">`` with ``<``, ``>`` and ``&`` escaped, and the
script puts it in the page as text nodes, never as HTML.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..ledger.store import Ledger
from .assets import SCRIPT, STYLE

BUCKETS = 72  # time buckets over the ledger's history
TOP_REASONS = 12
# job duration histogram: upper edges in seconds, and their labels
DURATION_EDGES = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
DURATION_LABELS = ("<10s", "10-30s", "30s-1m", "1-2m", "2-5m", "5-10m", "10-30m", "30m-1h", "1-2h",
                   "2-6h", "6-24h", ">1d")


@dataclass
class ReportData:
    """What the page draws: a few hundred numbers and labels, whatever the ledger's size."""

    title: str
    ledger: str
    generated_at: float
    start: float | None = None  # the first and last event recorded
    end: float | None = None
    bucket_s: float = 0.0
    # per time bucket: its start, objects submitted / completed / failed in a job / refused or invalid,
    # rows completed, jobs started and ended, and objects and jobs in flight at its end
    timeline: list[dict[str, float]] = field(default_factory=list)
    durations: list[dict[str, Any]] = field(default_factory=list)  # label, completed, failed
    duration_stats: dict[str, float] = field(default_factory=dict)  # jobs, mean_s, max_s
    reasons: list[dict[str, Any]] = field(default_factory=list)  # reason, state, objects
    groups: list[dict[str, Any]] = field(default_factory=list)  # source, collection, states, bytes, rows
    totals: dict[str, int] = field(default_factory=dict)


def gather(ledger: Ledger, *, title: str, name: str, now: float) -> ReportData:
    """Read the report's aggregates from ``ledger`` (a handful of GROUP BY queries)."""
    data = ReportData(title=title, ledger=name, generated_at=now)
    _groups(ledger, data)
    span = ledger.report_span()
    if span is None:
        return data
    data.start, data.end = span
    data.bucket_s = max(1.0, (data.end - data.start) / BUCKETS)
    _timeline(ledger, data)
    _durations(ledger, data)
    data.reasons = [{"reason": reason[:300], "state": state, "objects": n}
                    for reason, state, n in ledger.report_reasons(TOP_REASONS)]
    return data


def _groups(ledger: Ledger, data: ReportData) -> None:
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for source, collection, state, n, size, rows in ledger.report_groups():
        group = groups.setdefault((source, collection), {
            "source": source, "collection": collection, "states": {}, "bytes": 0, "rows": 0})
        group["states"][state] = n
        group["bytes"] += size
        group["rows"] += rows
        data.totals[state] = data.totals.get(state, 0) + n
    data.groups = list(groups.values())


def _timeline(ledger: Ledger, data: ReportData) -> None:
    assert data.start is not None
    buckets: list[dict[str, float]] = [
        {"t": data.start + i * data.bucket_s, "submitted": 0, "completed": 0, "job_failed": 0, "refused": 0,
         "rows": 0, "jobs_started": 0, "jobs_ended": 0} for i in range(BUCKETS + 1)]
    for b, state, n, jobs, with_job, rows_done in ledger.report_timeline(data.start, data.bucket_s):
        cell = buckets[min(b, BUCKETS)]
        if state == "submitted":
            cell["submitted"] += n
            cell["jobs_started"] += jobs
        elif state == "completed":
            cell["completed"] += n
            cell["rows"] += rows_done
            cell["jobs_ended"] += jobs
        elif state == "failed":
            cell["job_failed"] += with_job
            cell["refused"] += n - with_job
            cell["jobs_ended"] += jobs
        else:  # invalid
            cell["refused"] += n
    objects = jobs_open = 0.0
    for cell in buckets:
        objects += cell["submitted"] - cell["completed"] - cell["job_failed"]
        jobs_open += cell["jobs_started"] - cell["jobs_ended"]
        cell["objects_in_flight"] = max(0, objects)
        cell["jobs_in_flight"] = max(0, jobs_open)
    data.timeline = [dict(c) for c in buckets]


def _durations(ledger: Ledger, data: ReportData) -> None:
    bins: list[dict[str, Any]] = [{"label": label, "completed": 0, "failed": 0} for label in DURATION_LABELS]
    jobs, seconds, longest = 0, 0.0, 0.0
    for k, failed, n, total, most in ledger.report_durations(DURATION_EDGES):
        bins[k]["failed" if failed else "completed"] += n
        jobs += n
        seconds += total
        longest = max(longest, most)
    data.durations = bins
    data.duration_stats = {"jobs": jobs, "mean_s": seconds / jobs if jobs else 0.0, "max_s": longest}


# -- the page ---------------------------------------------------------------------------------------

def render(data: ReportData) -> str:
    """The whole page, self-contained (no network at view time)."""
    script, style = SCRIPT, STYLE
    policy = (f"default-src 'none'; script-src '{_sha256(script)}'; style-src '{_sha256(style)}'; "
              "img-src data:; base-uri 'none'; form-action 'none'")
    span = ("no events recorded yet" if data.start is None or data.end is None
            else f"{_when(data.start)} to {_when(data.end)}")
    total = sum(data.totals.values())
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(data.title)} - orchestrator report</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>{html.escape(data.title)}</h1>
<p class="meta">ledger {html.escape(data.ledger)} &middot; {total:,} object version(s) &middot; {span}
&middot; made {_when(data.generated_at)}</p>
</header>
<section id="tiles" class="tiles"></section>
<section class="grid">
<figure id="imported"><figcaption>Objects imported over time</figcaption></figure>
<figure id="rows"><figcaption>Rows imported (cumulative)</figcaption></figure>
<figure id="queue"><figcaption>Jobs and objects in flight (the queue)</figcaption></figure>
<figure id="durations"><figcaption>Job durations</figcaption></figure>
<figure id="reasons" class="wide"><figcaption>Failures by reason (last error of each object)</figcaption>
</figure>
<figure id="collections" class="wide"><figcaption>Per collection, by state</figcaption></figure>
<figure id="sources" class="wide"><figcaption>Per source, by state</figcaption></figure>
</section>
<section><h2>Sources and collections</h2><table id="groups"></table></section>
<footer>The ledger records an object when it is first submitted: the queue is what was submitted and not yet
finished. Times are UTC; each bar is {data.bucket_s:,.0f} s.</footer>
<script type="application/json" id="report-data">{_json(data)}</script>
<script>{script}</script>
</body>
</html>
"""


def _json(data: ReportData) -> str:
    """JSON that cannot end its ``<script>`` element or open a comment, whatever the ledger holds."""
    text = json.dumps(asdict(data), separators=(",", ":"), ensure_ascii=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _when(at: float) -> str:
    return f"{datetime.fromtimestamp(at, UTC):%Y-%m-%d %H:%M} UTC"
