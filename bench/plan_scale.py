"""Benchmark 1: planning at scale, through the real planner and ledger, without listing I/O.

Each scenario runs in a fresh process so that its peak RSS is its own.
  empty:  1,000,000 new objects against an empty ledger (what a first run plans)
  noop:   1,000,000 objects against a ledger where all are completed (the cron rerun)
  noop-100k: the same at 100,000 objects, timed against the 5 s target
"""

from __future__ import annotations

import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.synthetic import SyntheticSource
from orchestrator.api import plan_source
from orchestrator.ledger import Ledger
from orchestrator.manifest import Manifest, Settings, SourceConfig, TargetConfig
from orchestrator.models import Action, Secret


def manifest(ledger: Path) -> Manifest:
    source = SourceConfig(index=0, url="s3://bench/data/", scheme="s3", bucket="bench", prefix="data/",
                          collection="bench", partition=None, pattern=None, include=("**/*.parquet",),
                          exclude=(), endpoint_url=None, region=None, credentials=None)
    return Manifest(path=ledger.with_suffix(".yaml"), target=TargetConfig(
        type="zilliz-v1", base_url="http://127.0.0.1:1", cluster_id="bench", api_key=Secret("x")),
        credentials=None, sources=(source,), settings=Settings(min_age_s=0), ledger_path=ledger)


def fill_completed(ledger_path: Path, count: int) -> None:
    """Set-up, not measured: a ledger in which every synthetic object is completed."""
    Ledger(ledger_path).close()  # creates the schema
    db = sqlite3.connect(ledger_path)
    now = time.time()
    db.executemany(
        "INSERT INTO objects (url, version, source, collection, partition, size, state, job_id, attempts, "
        "failures, created_at, updated_at) VALUES (?,?,0,'bench',NULL,1048576,'completed',?,1,0,?,?)",
        ((o.url, o.version, f"job-{i}", now, now) for i, o in enumerate(SyntheticSource(count).list())))
    db.commit()
    db.close()


def scenario(name: str, count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.ledger.sqlite"
        if name.startswith("noop"):
            fill_completed(path, count)
        m = manifest(path)
        base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        actions: dict[str, int] = {}
        with Ledger(path) as ledger:
            for item in plan_source(m.sources[0], SyntheticSource(count), m, ledger, now=time.time(),
                                    warn=print):
                actions[item.action] = actions.get(item.action, 0) + 1
        seconds = time.perf_counter() - start
        expected = Action.SUBMIT if name == "empty" else Action.SKIP
        assert actions == {expected: count}, actions
        return {"objects": count, "seconds": round(seconds, 3), "objects_per_s": round(count / seconds),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "rss_before_mb": round(base_rss / 1024, 1)}


def main() -> dict[str, dict[str, float]]:
    results = {}
    for name, count in (("empty", 1_000_000), ("noop", 1_000_000), ("noop-100k", 100_000)):
        done = subprocess.run([sys.executable, "-m", "bench.plan_scale", name, str(count)],
                              capture_output=True, text=True, check=True)
        results[name] = json.loads(done.stdout)
    return results


if __name__ == "__main__":
    if len(sys.argv) == 3:
        print(json.dumps(scenario(sys.argv[1], int(sys.argv[2]))))
    else:
        print(json.dumps(main(), indent=2))
