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
_FINISHED_JOB = "e.state IN ('completed', 'failed') AND e.job_id IS NOT NULL"


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
    first, last = ledger.aggregate("SELECT MIN(at), MAX(at) FROM events")[0]
    if first is None:
        return data
    data.start, data.end = float(first), float(last)
    data.bucket_s = max(1.0, (data.end - data.start) / BUCKETS)
    _timeline(ledger, data)
    _durations(ledger, data)
    _reasons(ledger, data)
    return data


def _groups(ledger: Ledger, data: ReportData) -> None:
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for source, collection, state, n, size, rows in ledger.aggregate(
            "SELECT source, collection, state, COUNT(*), SUM(size), SUM(COALESCE(imported_rows, 0)) "
            "FROM objects GROUP BY source, collection, state ORDER BY source, collection, state"):
        group = groups.setdefault((str(source), str(collection)), {
            "source": str(source), "collection": str(collection), "states": {}, "bytes": 0, "rows": 0})
        group["states"][str(state)] = int(n)
        group["bytes"] += int(size or 0)
        group["rows"] += int(rows or 0)
        data.totals[str(state)] = data.totals.get(str(state), 0) + int(n)
    data.groups = list(groups.values())


def _timeline(ledger: Ledger, data: ReportData) -> None:
    assert data.start is not None
    bucket = ledger.floor("(e.at - ?) / ?")
    rows = ledger.aggregate(
        f"SELECT {bucket} AS b, e.state, COUNT(*), COUNT(DISTINCT e.job_id), "
        "SUM(CASE WHEN e.job_id IS NULL THEN 0 ELSE 1 END), "
        "SUM(CASE WHEN e.state = 'completed' THEN COALESCE(o.imported_rows, o.rows, 0) ELSE 0 END) "
        "FROM events e JOIN objects o ON o.id = e.object_id "
        "WHERE e.state IN ('submitted', 'completed', 'failed', 'invalid') GROUP BY b, e.state",
        (data.start, data.bucket_s))
    buckets: list[dict[str, float]] = [
        {"t": data.start + i * data.bucket_s, "submitted": 0, "completed": 0, "job_failed": 0, "refused": 0,
         "rows": 0, "jobs_started": 0, "jobs_ended": 0} for i in range(BUCKETS + 1)]
    for b, state, n, jobs, with_job, rows_done in rows:
        cell = buckets[min(int(b), BUCKETS)]
        if state == "submitted":
            cell["submitted"] += int(n)
            cell["jobs_started"] += int(jobs)
        elif state == "completed":
            cell["completed"] += int(n)
            cell["rows"] += int(rows_done or 0)
            cell["jobs_ended"] += int(jobs)
        elif state == "failed":
            cell["job_failed"] += int(with_job)
            cell["refused"] += int(n) - int(with_job)
            cell["jobs_ended"] += int(jobs)
        else:  # invalid
            cell["refused"] += int(n)
    objects = jobs_open = 0.0
    for cell in buckets:
        objects += cell["submitted"] - cell["completed"] - cell["job_failed"]
        jobs_open += cell["jobs_started"] - cell["jobs_ended"]
        cell["objects_in_flight"] = max(0, objects)
        cell["jobs_in_flight"] = max(0, jobs_open)
    data.timeline = [dict(c) for c in buckets]


def _durations(ledger: Ledger, data: ReportData) -> None:
    cases = " ".join(f"WHEN d < {edge} THEN {i}" for i, edge in enumerate(DURATION_EDGES))
    rows = ledger.aggregate(
        f"SELECT CASE {cases} ELSE {len(DURATION_EDGES)} END AS k, f, COUNT(*), SUM(d), MAX(d) FROM ("
        "SELECT e.job_id, MAX(CASE WHEN " + _FINISHED_JOB + " THEN e.at END) "
        "- MIN(CASE WHEN e.state = 'submitted' THEN e.at END) AS d, "
        "MAX(CASE WHEN e.state = 'failed' THEN 1 ELSE 0 END) AS f "
        "FROM events e WHERE e.job_id IS NOT NULL GROUP BY e.job_id) AS j "
        "WHERE d IS NOT NULL GROUP BY 1, 2")
    bins: list[dict[str, Any]] = [{"label": label, "completed": 0, "failed": 0} for label in DURATION_LABELS]
    jobs, seconds, longest = 0, 0.0, 0.0
    for k, failed, n, total, most in rows:
        bins[int(k)]["failed" if failed else "completed"] += int(n)
        jobs += int(n)
        seconds += float(total or 0)
        longest = max(longest, float(most or 0))
    data.durations = bins
    data.duration_stats = {"jobs": jobs, "mean_s": seconds / jobs if jobs else 0.0, "max_s": longest}


def _reasons(ledger: Ledger, data: ReportData) -> None:
    """The most common last errors of failing objects; a job failure's own job id is cut off its text
    (``job 123 failed: ...``), so that the same reason from many jobs counts as one."""
    reason = ("CASE WHEN job_id IS NOT NULL AND SUBSTR(error, 1, LENGTH(job_id) + 13) = "
              "'job ' || job_id || ' failed: ' THEN SUBSTR(error, LENGTH(job_id) + 14) ELSE error END")
    rows = ledger.aggregate(
        f"SELECT {reason} AS r, state, COUNT(*) FROM objects WHERE error IS NOT NULL AND "
        "(state IN ('failed', 'invalid', 'uncertain') OR state = 'pending') "
        "GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT ?", (TOP_REASONS,))
    data.reasons = [{"reason": str(r)[:300], "state": str(state), "objects": int(n)} for r, state, n in rows]


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
