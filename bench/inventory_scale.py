"""Benchmark: 1,000,000 keys discovered through S3 Inventory against the same keys listed, each
object planned (``planner.decide`` over an empty history: what a first run decides).

  inventory CSV / Parquet: a delivery of the keys in 4 data files (CSV gzip'd, keys URL-encoded;
          Parquet as AWS writes it) in moto's server, read by the real reader
          (``sources/s3_inventory.py``: manifest, download with MD5 check, record batches)
  listing: the same keys, sizes and ETags served by the listing server of bench/list_fanout.py
          (64 sub-prefixes, 50 ms a page like a store across a network, and with none), listed by
          the real S3Source with the manifest's default list_concurrency (fan-out)

Each measurement runs in a process of its own so that its peak RSS is its own; the servers run
apart (moto in this process, the listing server in its own). ``python -m bench.inventory_scale``
runs this benchmark alone and prints its rows.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench import list_fanout
from orchestrator.config.manifest import Settings, SourceConfig
from orchestrator.models import Action, StoredObject
from orchestrator.planning.planner import decide
from orchestrator.sources.registry import make_source
from orchestrator.sources.s3_inventory import make_inventory

KEYS = 1_000_000
FILES = 4
DEST = "inventory-dest"
MODIFIED_MS = 1_704_067_200_000  # list_fanout.MODIFIED


def config(endpoint_url: str) -> SourceConfig:
    return SourceConfig(index=0, url=f"s3://{list_fanout.BUCKET}/data/", scheme="s3",
                        bucket=list_fanout.BUCKET, prefix="data/", collection="bench", partition=None,
                        pattern=None, include=("**/*.parquet",), exclude=(), endpoint_url=endpoint_url,
                        region="us-east-1", credentials=None, path_style=True)


def planned(built: Callable[[], Callable[[], Iterator[StoredObject]]], source: SourceConfig,
            settings: Settings) -> dict[str, Any]:
    """Keys/s of discovering every object, then of discovering and planning every object (the
    planner's verdicts checked), and the peak RSS. Each pass has a source ``built`` afresh (its client
    made, nothing read: the inventory's manifest is read again) before its clock starts."""
    discover = built()
    start = time.perf_counter()
    read = sum(1 for _ in discover())
    read_s = time.perf_counter() - start
    discover = built()
    start = time.perf_counter()
    now = time.time()
    count = 0
    for obj in discover():
        assert decide(obj, source, (), settings, now=now, owner="bench").action == Action.SUBMIT
        count += 1
    seconds = time.perf_counter() - start
    assert read == count, (read, count)
    return {"keys": count, "seconds": round(seconds, 2), "keys_per_s": round(count / seconds),
            "read_seconds": round(read_s, 2), "read_keys_per_s": round(read / read_s),
            "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident memory. ``VmHWM``, not ``ru_maxrss``: Linux keeps the latter
    across ``exec``, so a child started by the parent holding moto's copy of the inventories would
    report the parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def measure(kind: str, endpoint_url: str) -> dict[str, Any]:
    """One measurement, in this (child) process: ``inventory-CSV``, ``inventory-Parquet`` or
    ``listing`` (the listing server at ``endpoint_url``)."""
    source, settings = config(endpoint_url), Settings(min_age_s=0)
    with list_fanout.listing_credentials(endpoint_url):
        if kind == "listing":
            return planned(lambda: make_source(source, settings).list, source, settings)
        url = f"s3://{DEST}/{kind}/"
        return planned(lambda: make_inventory(url, source, settings).objects, source, settings)


def child(kind: str, endpoint_url: str, count: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.inventory_scale", kind, endpoint_url],
                          capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["keys"] == count, result
    return result


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server in this process (the parent: the measuring children stay light)."""
    from moto.server import ThreadedMotoServer

    from tests.conftest import free_port

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def deliver(endpoint_url: str, count: int) -> None:
    """Set-up, not measured: the keys the listing server serves, delivered as CSV and as Parquet."""
    import boto3

    from tests.inventories import Row, write_inventory

    rows = [Row(list_fanout.BUCKET, k, 1048576, MODIFIED_MS, list_fanout.etag(k))
            for k in list_fanout.keys_in_order(count, list_fanout.PREFIXES)]
    with list_fanout.listing_credentials(endpoint_url):
        s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1")
        s3.create_bucket(Bucket=DEST)
        for file_format in ("CSV", "Parquet"):
            write_inventory(s3, bucket=DEST, folder=f"inventory-{file_format}/",
                            source_bucket=list_fanout.BUCKET, rows=rows, file_format=file_format, files=FILES)


def main(count: int = KEYS) -> dict[str, Any]:
    results: dict[str, Any] = {"keys": count, "data_files": FILES,
                               "load_average_before": round(os.getloadavg()[0], 2)}
    with moto_server() as moto:
        deliver(moto, count)
        for file_format in ("CSV", "Parquet"):
            results[f"inventory_{file_format.lower()}"] = child(f"inventory-{file_format}", moto, count)
    with list_fanout.server(count, list_fanout.PREFIXES, list_fanout.LATENCY) as url:
        results["listing"] = child("listing", url, count)
        list_fanout.set_latency(url, 0.0)
        results["listing_no_latency"] = child("listing", url, count)
    results["load_average_after"] = round(os.getloadavg()[0], 2)
    results["list_concurrency"] = Settings().list_concurrency
    results["page_latency_s"] = list_fanout.LATENCY
    return results


def rows(results: dict[str, Any] | None) -> list[tuple[str, str, float | str, str, bool | None]]:
    """Keys/s (discovered and planned; discovered alone) and peak RSS of each way, and the inventory's
    speed over the listing's; none from results recorded before this benchmark was."""
    if results is None:
        return []
    n = results["keys"]
    latency = f"{results['page_latency_s'] * 1000:g} ms pages, fan-out {results['list_concurrency']}"
    ways = {"inventory_csv": f"inventory CSV.gz ({results['data_files']} files)",
            "inventory_parquet": f"inventory Parquet ({results['data_files']} files)",
            "listing": f"listing, {latency}", "listing_no_latency": "listing, no latency"}
    out: list[tuple[str, str, float | str, str, bool | None]] = []
    for name, what in ways.items():
        r = results[name]
        out += [("inventory", f"{n:,} keys, {what}: planned keys/s", r["keys_per_s"], "reported", None),
                ("inventory", f"{n:,} keys, {what}: read alone keys/s", r["read_keys_per_s"], "reported",
                 None),
                ("inventory", f"{n:,} keys, {what}: peak RSS MB", r["peak_rss_mb"], "<= 300",
                 r["peak_rss_mb"] <= 300)]
    for name in ("inventory_csv", "inventory_parquet"):
        for baseline in ("listing", "listing_no_latency"):
            for measure, field in (("planned", "keys_per_s"), ("read alone", "read_keys_per_s")):
                ratio = round(results[name][field] / results[baseline][field], 2)
                out.append(("inventory", f"{ways[name]} / {ways[baseline]}, {measure}", ratio, "reported",
                            None))
    return out


if __name__ == "__main__":
    if len(sys.argv) == 3:
        print(json.dumps(measure(sys.argv[1], sys.argv[2])))
    else:
        from bench.__main__ import table

        figures = main()
        print(table(rows(figures)))
        print(f"load average {figures['load_average_before']} before, {figures['load_average_after']} after")
