"""Benchmark 1: planning at scale, through the real planner and ledger.

Each scenario runs in a fresh process so that its peak RSS is its own.
  empty:  1,000,000 new objects against an empty ledger (what a first run plans), listing synthetic
  noop:   1,000,000 objects against a ledger where all are completed (the cron rerun), listing synthetic
  noop-100k: the same at 100,000 objects, timed against the 5 s target
  noop-listed: the cron rerun of 1,000,000 completed objects *including the listing*: the real
          S3Source (list_concurrency as in a manifest) against the listing server of
          bench/list_fanout.py (64 sub-prefixes, 50 ms pages); the share of the time the planner's
          thread spent in the listing (waiting for pages, reading them) and the CPU time are reported
  noop-100k-pg: noop-100k with the ledger in PostgreSQL (a local server, fsync on)
"""

from __future__ import annotations

import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bench import list_fanout
from bench.synthetic import SyntheticSource
from orchestrator.api import ledger_location
from orchestrator.config.manifest import Manifest, Settings, SourceConfig, TargetConfig
from orchestrator.config.pgurl import PostgresLedger
from orchestrator.ledger.factory import open_ledger
from orchestrator.models import Action, Secret, StoredObject
from orchestrator.run.pipeline import plan_source
from orchestrator.sources.base import Source
from orchestrator.sources.registry import make_source
from orchestrator.targets.registry import CAPABILITIES, target_identity
from tests.pgserver import PgServer

_ROW = ("url, version, target, source, collection, partition, size, state, job_id, attempts, failures, "
        "created_at, updated_at")


def manifest(ledger: Path, endpoint_url: str | None = None) -> Manifest:
    source = SourceConfig(index=0, url="s3://bench/data/", scheme="s3", bucket="bench", prefix="data/",
                          collection="bench", partition=None, pattern=None, include=("**/*.parquet",),
                          exclude=(), endpoint_url=endpoint_url, region="us-east-1" if endpoint_url else None,
                          credentials=None, path_style=endpoint_url is not None)
    return Manifest(path=ledger.with_suffix(".yaml"), target=TargetConfig(
        type="zilliz-v1", capabilities=CAPABILITIES["zilliz-v1"], base_url="http://127.0.0.1:1",
        cluster_id="bench", api_key=Secret("x")),
        credentials=None, sources=(source,), settings=Settings(min_age_s=0), ledger_path=ledger)


OWNER = target_identity(manifest(Path("bench.ledger.sqlite")).target)


def fill_completed(where: Path | PostgresLedger, count: int) -> None:
    """Set-up, not measured: a ledger in which every synthetic object is completed."""
    fill(where, ((o.url, o.version) for o in SyntheticSource(count).list()))


def fill(where: Path | PostgresLedger, versions: Iterable[tuple[str, str]]) -> None:
    """Set-up, not measured: a ledger in which each (url, version) is completed (in the bench target)."""
    open_ledger(where).close()  # creates the schema
    now = time.time()
    rows = ((url, version, OWNER, "s3://bench/data/", "bench", None, 1048576, "completed", f"job-{i}", 1, 0,
             now, now) for i, (url, version) in enumerate(versions))
    if isinstance(where, Path):
        db = sqlite3.connect(where)
        db.executemany(f"INSERT INTO objects ({_ROW}) VALUES ({','.join('?' * 13)})", rows)
        db.commit()
        db.close()
        return
    import psycopg
    from psycopg.conninfo import make_conninfo
    with psycopg.connect(make_conninfo("", **where.connect_kwargs())) as conn, conn.cursor() as cur, \
            cur.copy(f"COPY {where.schema}.objects ({_ROW}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


class Waited:
    """A source whose ``list()`` counts the time its consumer spends getting the next object: waiting
    for a page, and reading it (pages are parsed on the consumer's thread)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.label = source.label
        self.seconds = 0.0

    def list(self) -> Iterator[StoredObject]:
        listing = self.source.list()
        clock = time.perf_counter
        while True:
            start = clock()
            obj = next(listing, None)
            self.seconds += clock() - start
            if obj is None:
                return
            yield obj

    def read(self, obj: StoredObject, start: int = 0, end: int | None = None) -> bytes:
        return self.source.read(obj, start, end)


def cpu_seconds() -> float:
    """CPU time of this process (all its threads): less at the mercy of the machine's load than the
    wall clock."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def listed_rerun(count: int) -> dict[str, Any]:
    """The no-op rerun of ``count`` completed objects, listed from the benchmark's S3 server."""
    with tempfile.TemporaryDirectory() as tmp, \
            list_fanout.server(count, list_fanout.PREFIXES, list_fanout.LATENCY) as url, \
            list_fanout.listing_credentials(url):
        path = Path(tmp) / "bench.ledger.sqlite"
        # rows in the order earlier runs record them: the listing's (key order), not the server's
        # round robin over the sub-prefixes, which put the rows of consecutive keys 64 rows apart
        served = list_fanout.keys_in_order(count, list_fanout.PREFIXES)
        fill(path, ((f"s3://bench/{k}", list_fanout.etag(k)) for k in served))
        m = manifest(path, endpoint_url=url)
        start = time.perf_counter()
        listed = sum(1 for _ in make_source(m.sources[0], m.settings).list())
        listing_alone = time.perf_counter() - start
        assert listed == count, listed
        lister = Waited(make_source(m.sources[0], m.settings))
        cpu = cpu_seconds()
        start = time.perf_counter()
        actions: dict[str, int] = {}
        with open_ledger(path, owner=OWNER) as ledger:
            for item in plan_source(m.sources[0], lister, m, ledger, now=time.time(), warn=print):
                actions[item.action] = actions.get(item.action, 0) + 1
        seconds = time.perf_counter() - start
        cpu = cpu_seconds() - cpu
    assert actions == {Action.SKIP: count}, actions
    return {"objects": count, "seconds": round(seconds, 2), "objects_per_s": round(count / seconds),
            "list_concurrency": m.settings.list_concurrency, "listing_alone_s": round(listing_alone, 2),
            "in_listing_s": round(lister.seconds, 2),
            "listing_share": round(lister.seconds / seconds, 2), "cpu_s": round(cpu, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def scenario(name: str, count: int, url: str | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.ledger.sqlite"
        where = ledger_location(f"{url}?schema=plan") if url else path
        if name.startswith("noop"):
            fill_completed(where, count)
        m = manifest(path)
        base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        actions: dict[str, int] = {}
        with open_ledger(where, owner=OWNER) as ledger:
            for item in plan_source(m.sources[0], SyntheticSource(count), m, ledger, now=time.time(),
                                    warn=print):
                actions[item.action] = actions.get(item.action, 0) + 1
        seconds = time.perf_counter() - start
        expected = Action.SUBMIT if name == "empty" else Action.SKIP
        assert actions == {expected: count}, actions
        return {"objects": count, "seconds": round(seconds, 3), "objects_per_s": round(count / seconds),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "rss_before_mb": round(base_rss / 1024, 1)}


def main() -> dict[str, dict[str, Any]]:
    results = {}
    server = PgServer(durable=True).start()
    try:
        for name, count, url in (("empty", 1_000_000, None), ("noop", 1_000_000, None),
                                 ("noop-100k", 100_000, None), ("noop-100k-pg", 100_000, server.url()),
                                 ("noop-listed", 1_000_000, None)):
            done = subprocess.run([sys.executable, "-m", "bench.plan_scale", name, str(count),
                                   *([url] if url else [])], capture_output=True, text=True, check=True)
            results[name] = json.loads(done.stdout)
    finally:
        server.stop()
    return results


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "noop-listed":
        print(json.dumps(listed_rerun(int(sys.argv[2]))))
    elif len(sys.argv) in (3, 4):
        print(json.dumps(scenario(sys.argv[1], int(sys.argv[2]), *sys.argv[3:])))
    else:
        print(json.dumps(main(), indent=2))
