"""``python -m bench`` (``make bench``): run the benchmarks, print one table, and write every
figure with the machine it ran on to ``bench/results/latest.json``. ``python -m bench NAME ...`` runs
only those (``group_isolation``, ``backlog``, ...), prints their rows and writes their figures to
``bench/results/selected.json`` (``latest.json``, which the docs' table is made from, stays whole)."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    backlog,
    events_rerun,
    group_isolation,
    inventory_scale,
    list_fanout,
    plan_scale,
    preflight_sample,
    report_scale,
    submit_throughput,
)
from orchestrator.config.manifest import Settings

RESULTS = Path(__file__).parent / "results" / "latest.json"
SELECTED = RESULTS.with_name("selected.json")  # the figures of ``python -m bench NAME ...``
Row = tuple[str, str, float | str, str, bool | None]  # benchmark, measure, value, target, met


def rows(results: dict[str, Any]) -> list[Row]:
    plan, submit, listing = results["plan_scale"], results["submit_throughput"], results["list_fanout"]
    out: list[Row] = []
    for name, what in (("empty", "1M new objects"), ("noop", "1M completed (no-op rerun)")):
        p = plan[name]
        out += [("plan", f"{what}: objects/s", p["objects_per_s"], ">= 50,000", p["objects_per_s"] >= 50_000),
                ("plan", f"{what}: peak RSS MB", p["peak_rss_mb"], "<= 300", p["peak_rss_mb"] <= 300)]
    out.append(("plan", "no-op rerun of 100k: seconds", plan["noop-100k"]["seconds"], "< 5",
                plan["noop-100k"]["seconds"] < 5))
    out.append(("plan", "no-op rerun of 100k, PostgreSQL ledger: seconds", plan["noop-100k-pg"]["seconds"],
                "< 5", plan["noop-100k-pg"]["seconds"] < 5))
    run = submit["orchestrator"]
    out += [
        ("submit", "sequential loop: objects/s", submit["sequential_objects_per_s"], "", None),
        ("submit", f"concurrency {submit['concurrency']}: objects/s", run["objects_per_s"], "", None),
        ("submit", "speedup vs sequential", submit["speedup_vs_sequential"], ">= 12x",
         submit["speedup_vs_sequential"] >= 12),
        ("submit", "fraction of latency bound", submit["fraction_of_latency_bound"], ">= 0.8",
         submit["fraction_of_latency_bound"] >= 0.8),
        ("submit", "most calls in any 1 s", run["max_calls_in_1s"], f"<= {submit['requests_per_second']:g}",
         submit["rate_cap_respected"]),
        ("submit", "zero latency: objects/s (ledger writes)", submit["ceiling_zero_latency"]["objects_per_s"],
         "", None),
        ("submit", f"PostgreSQL ledger, concurrency {submit['concurrency']}: objects/s",
         submit["postgresql"]["objects_per_s"], "", None),
        ("submit", "PostgreSQL ledger, zero latency: objects/s",
         submit["ceiling_zero_latency_postgresql"]["objects_per_s"], "", None),
    ]
    for key, value in submit["transitions_per_s"].items():
        ledger, threads = key.split("_", 1)
        out.append(("ledger", f"{ledger}, {threads.replace('_', ' ')}: durable transitions/s", value, "",
                    None))
    listed = plan["noop-listed"]
    out += [("plan", "no-op rerun of 1M, listing included: seconds", listed["seconds"], "< 15",
             listed["seconds"] < 15),
            ("plan", "  of which listing (waiting, parsing)", f"{listed['listing_share']:.0%}", "reported",
             None),
            ("plan", "  CPU seconds (all threads)", listed["cpu_s"], "reported", None),
            # the same listing, nothing planned: fan-out over sub-prefixes of 15.6 pages (the listing
            # rows below have 3.1); 1,000 pages at 55 ms, 8 at a time, take 6.9 s at best
            ("plan", "  the listing alone (fan-out 8, 1,000 pages): seconds", listed["listing_alone_s"],
             "reported", None),
            ("plan", "  peak RSS MB", listed["peak_rss_mb"], "<= 300", listed["peak_rss_mb"] <= 300)]
    return (out + listing_rows(listing) + backlog_rows(results["backlog"])
            + preflight_rows(results["preflight_sample"]) + report_rows(results["report_scale"])
            + isolation_rows(results.get("group_isolation", []))
            + inventory_scale.rows(results.get("inventory_scale"))
            + events_rows(results.get("events_rerun")))


def isolation_rows(runs: list[dict[str, Any]]) -> list[Row]:
    """One bad file among 100 objects: the jobs made (and how many more than without it), the runs
    and the seconds until every good object completed; the aim, about ``2 * log2(n)`` extra jobs in
    one ``run --wait``."""
    out: list[Row] = []
    for r in runs:
        n = r["objects_per_job"]
        what = f"{r['objects']} objects, one bad file, {n} per job"
        aim = 2 * math.ceil(math.log2(n)) if n > 1 else 0
        out += [("isolation", f"{what}: jobs made", r["jobs"], "reported", None),
                ("isolation", f"{what}: extra jobs", r["extra_jobs"], f"<= {aim}", r["extra_jobs"] <= aim),
                ("isolation", f"{what}: runs until every good object completed", r["runs"], "1",
                 r["runs"] == 1),
                ("isolation", f"{what}: seconds", r["seconds"], "reported", None)]
    return out


def events_rows(results: dict[str, Any] | None) -> list[Row]:
    """discovery: events: the rerun of a ledger of 1M completed objects and 1,000 new ones announced on
    SQS, against the full-listing rerun of 1M; the same messages each delivered twice."""
    if results is None:  # results recorded before this benchmark
        return []
    e, d, listed = results["events"], results["duplicates"], results["listing"]
    what = f"{e['ledger_objects']:,} completed + {e['new']:,} new by events"
    calls = e["list_calls"] + e["head_calls"] + e["receive_calls"] + e["delete_calls"]
    cost = results["duplicate_cost"]
    return [
        ("events", f"{what}: seconds", e["seconds"], "reported", None),
        ("events", "  at SQS's latency (moto's receive scans its queue): seconds",
         e["seconds_at_sqs_latency"], "reported", None),
        ("events", f"  against the full-listing rerun ({listed['seconds']} s): time ratio",
         results["time_ratio_at_sqs_latency"], "<= 0.05", results["time_ratio_at_sqs_latency"] <= 0.05),
        ("events", "  S3 and SQS calls per new object (list, HEAD, receive, delete)",
         round(calls / e["new"], 2), "<= 1.5", calls / e["new"] <= 1.5),
        ("events", f"  S3 list calls (the listing's: >= {listed['list_calls_at_least']:,})", e["list_calls"],
         "0", e["list_calls"] == 0),
        ("events", "  import creates", e["creates"], f"= {e['new']:,}", e["creates"] == e["new"]),
        ("events", "each message twice, shuffled: creates (exactly once)", d["creates"], f"= {d['new']:,}",
         d["creates"] == d["new"]),
        ("events", "  duplicates' cost: extra seconds at SQS's latency",
         round(d["seconds_at_sqs_latency"] - e["seconds_at_sqs_latency"], 2), "reported", None),
        ("events", "  duplicates' cost: extra receive / HEAD / delete calls",
         f"{cost['extra_receive_calls']} / {cost['extra_head_calls']} / {cost['extra_delete_calls']}",
         "reported", None),
    ]


def preflight_rows(results: dict[str, Any]) -> list[Row]:
    """What the pre-flight check reads of one 1 GB file: the footer alone, then with samples of rows;
    the default sample against its targets (1% of the bytes, the footer's round trips plus one)."""
    runs = results["runs"]
    footer = runs[0]["round_trips"]
    out: list[Row] = []
    for r in runs:
        what = f"1 GB, {results['dim']}-dim, " + (f"sample {r['sample_rows']:,} rows" if r["sample_rows"]
                                                   else "footer only")
        default = r["sample_rows"] == Settings().preflight_sample_rows
        share = round(r["fraction_read"] * 100, 3)
        out += [("preflight", f"{what}: MB read", round(r["bytes_read"] / 1e6, 2), "reported", None),
                ("preflight", f"{what}: % of the file read", share, "<= 1" if default else "reported",
                 share <= 1 if default else None),
                ("preflight", f"{what}: round trips", r["round_trips"],
                 f"<= {footer + 1}" if default else "reported",
                 r["round_trips"] <= footer + 1 if default else None),
                ("preflight", f"{what}: ms per file (CPU, warm cache)", r["ms"], "reported", None)]
    return out


def report_rows(results: dict[str, Any]) -> list[Row]:
    """``orchestrator report``: the seconds to aggregate and write the page, and the page's size."""
    out: list[Row] = []
    for ledger, name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        r = results[ledger]
        what = f"{r['objects']:,} objects, {name} ledger"
        out += [("report", f"{what}: seconds", r["seconds"], "reported", None),
                ("report", f"{what}: page KB", round(r["bytes"] / 1000, 1), "reported", None)]
    return out


def backlog_rows(results: dict[str, Any]) -> list[Row]:
    b, p = results["backlog"], results["polling"]
    return [
        ("backlog", f"{b['objects']:,} objects, {b['slots']} slots, {b['job_s']:g} s jobs: seconds",
         b["seconds"], f"bound {b['bound_s']:g}", None),
        ("backlog", "fraction of the job-slot bound", b["fraction_of_bound"], ">= 0.9",
         b["fraction_of_bound"] >= 0.9),
        ("backlog", "refused creates per object", b["refused_per_object"], "<= 0.1",
         b["refused_per_object"] <= 0.1),
        ("backlog", "API calls per object", b["calls_per_object"], "reported", None),
        ("backlog", f"refresh of {p['running_jobs']} running jobs: calls per job", p["calls_per_running_job"],
         "<= 0.05", p["calls_per_running_job"] <= 0.05),
        *group_rows(results.get("groups", [])),
    ]


def group_rows(groups: list[dict[str, Any]]) -> list[Row]:
    """The same backlog in jobs of 1, 10 and 100 objects: wall time and calls per object, and the
    speed-up over one object per job."""
    if not groups:
        return []
    one = groups[0]
    out: list[Row] = []
    for g in groups:
        what = f"groups  {g['objects']:,} objects, {g['objects_per_job']} per job"
        out += [("backlog", f"{what}: seconds", g["seconds"], "reported", None),
                ("backlog", f"{what}: calls per object", g["calls_per_object"], "reported", None)]
        if g is not one:
            speedup = round(one["seconds"] / g["seconds"], 1)
            out.append(("backlog", f"{what}: speed-up over 1 per job", speedup, "reported", None))
    return out


def listing_rows(listing: dict[str, Any]) -> list[Row]:
    """Per store: one stream and fan-out beside rclone (S3) with 50 ms pages and with none, against the
    way we listed before, and fan-out against its bound."""
    n = listing["concurrency"]
    out: list[Row] = []
    for store, name in (("s3", "S3"), ("gcs", "GCS")):
        r = listing[store]
        for phase, what in (("latency", f"{listing['page_latency_s'] * 1000:g} ms pages"),
                            ("no_latency", "no latency")):
            runs = r[phase]
            for run, label, peer, flags in (("one_stream", "one stream", "rclone_one_stream", "--fast-list"),
                                            (f"fan_out_{n}", f"fan-out {n}", f"rclone_checkers_{n}",
                                             f"--checkers {n}")):
                out.append(("list", f"{name} {what}, {label}: seconds", runs[run]["seconds"], "", None))
                if store == "s3":
                    out.append(rclone_row(f"{name} {what}, {label}: rclone {flags} / ours", runs[run],
                                          runs[peer]))
        before = "boto3 paginator" if store == "s3" else "list_blobs"
        out += [("list", f"{name} no latency, one stream: objects/s",
                 r["no_latency"]["one_stream"]["objects_per_s"], "", None),
                ("list", f"{name} no latency, before ({before}): objects/s",
                 r["no_latency"]["before"]["objects_per_s"], "", None),
                ("list", f"{name} one stream vs before", r["vs_before"], ">= 5x", r["vs_before"] >= 5),
                ("list", f"{name} fan-out {n}: speedup (bound {r['bound']:g})", r["fan_out_speedup"], "",
                 None),
                ("list", f"{name} fan-out {n}: fraction of bound", r["fraction_of_bound"], ">= 0.8",
                 r["fraction_of_bound"] >= 0.8),
                ("list", f"{name} every listing gives the same objects", "yes" if r["identical"] else "NO",
                 "identical", r["identical"])]
    parse = listing["parse_only"]
    out += [("list", "parsing one S3 page: botocore keys/s", parse["botocore_keys_per_s"], "", None),
            ("list", "parsing one S3 page: ours keys/s", parse["ours_keys_per_s"], "", None),
            ("list", "parsing: ours vs botocore", parse["ratio"], ">= 5x", parse["ratio"] >= 5)]
    return out


def rclone_row(measure: str, ours: dict[str, Any], peer: dict[str, Any] | None) -> Row:
    """rclone's time over ours (above 1: we are ahead), or a note that rclone is not installed."""
    if peer is None:
        return ("list", measure, "rclone absent", "> 1", None)
    ratio = round(peer["seconds"] / ours["seconds"], 2)
    return ("list", measure, ratio, "> 1", ratio > 1)


def table(lines: list[Row]) -> str:
    def cell(value: float | str) -> str:
        if isinstance(value, float) and not value.is_integer():
            return f"{value:,.2f}"
        return f"{value:,}" if isinstance(value, int | float) else value

    cells = [["benchmark", "measure", "value", "target", "met"]] + [
        [b, m, cell(v), t, "" if ok is None else "yes" if ok else "NO"] for b, m, v, t, ok in lines]
    widths = [max(len(r[i]) for r in cells) for i in range(5)]
    return "\n".join("  ".join(c.rjust(w) if i == 2 else c.ljust(w) for i, (c, w) in
                               enumerate(zip(r, widths, strict=True))).rstrip() for r in cells)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}


STEPS: dict[str, Callable[[], Any]] = {
    "plan_scale": plan_scale.main, "submit_throughput": submit_throughput.main,
    "list_fanout": list_fanout.main, "backlog": backlog.main,
    "preflight_sample": preflight_sample.main, "report_scale": report_scale.main,
    "group_isolation": group_isolation.main,
    "inventory_scale": inventory_scale.main, "events_rerun": events_rerun.main}
# the rows of a benchmark run alone (``python -m bench NAME``)
ROWS_OF: dict[str, Callable[[Any], list[Row]]] = {"group_isolation": isolation_rows,
                                                  "inventory_scale": inventory_scale.rows,
                                                  "events_rerun": events_rows}


def main(names: list[str]) -> None:
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        sys.exit(f"unknown benchmark(s) {', '.join(unknown)}: choose among {', '.join(STEPS)}")
    steps = [(name, STEPS[name]) for name in (names or STEPS)]
    results: dict[str, Any] = {"machine": machine(),
                               "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for name, step in steps:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        results[name] = step()
        print(f"  {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    written = SELECTED if names else RESULTS
    written.parent.mkdir(exist_ok=True)
    written.write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    print(f"{m['cpu']}, {m['cores']} cores, {m['system']}, Python {m['python']}")
    if names:
        print(table([row for name in names for row in ROWS_OF.get(name, lambda _r: [])(results[name])]))
    else:
        print(table(rows(results)))
    print(f"(every figure: {written})")


if __name__ == "__main__":
    main(sys.argv[1:])
