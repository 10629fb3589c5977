"""Benchmark 2: submission throughput against the fake import API on a real socket.

  baseline:  a sequential loop, one create call per object (what people script with the SDK today)
  orchestrator: `run` at concurrency 16 through planner, ledger (durable commits) and pacing
  ceiling:   the same with zero server latency: submissions per second including the ledger writes
  each of these on both ledgers: SQLite, and PostgreSQL (a local server, fsync on)
  transitions: durable ledger transitions per second from 1 and from 16 threads, on each ledger: what
             the group commit (one commit for the transitions that queued behind it) buys
The fake API answers after ``latency`` seconds; the latency bound is concurrency / latency.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.synthetic import SyntheticSource
from orchestrator import api
from orchestrator.config.manifest import Manifest, PreflightMode, Settings, SourceConfig, TargetConfig
from orchestrator.config.pgurl import PostgresLedger
from orchestrator.ledger.factory import open_ledger
from orchestrator.models import Action, Credentials, PlanItem, Route, Secret
from orchestrator.targets.registry import CAPABILITIES
from tests.fakes.zilliz import FakeZilliz
from tests.pgserver import PgServer

KEY = "bench-api-key-0000"


def manifest(fake: RemoteFake, ledger: Path, *, concurrency: int, rps: float,
             ledger_url: PostgresLedger | None = None) -> Manifest:
    source = SourceConfig(index=0, url="s3://bench/data/", scheme="s3", bucket="bench", prefix="data/",
                          collection="bench", partition=None, pattern=None, include=("**/*.parquet",),
                          exclude=(), endpoint_url=None, region=None, credentials=None)
    return Manifest(
        path=ledger.with_suffix(".yaml"),
        target=TargetConfig(type="zilliz-v1", capabilities=CAPABILITIES["zilliz-v1"], base_url=fake.url,
                            cluster_id=fake.cluster_id, api_key=Secret(KEY)),
        credentials=Credentials(access_key=Secret("bench-ak"), secret_key=Secret("bench-sk")),
        sources=(source,),
        settings=Settings(concurrency=concurrency, requests_per_second=rps, max_attempts=3, min_age_s=0,
                          preflight=PreflightMode.OFF, max_jobs_in_flight=100_000),  # not the job window
        ledger_path=ledger, ledger_url=ledger_url)


class RemoteFake:
    """The fake import API in a process of its own, so that it does not share our GIL."""

    cluster_id = FakeZilliz.cluster_id

    def __init__(self, latency: float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.zilliz", KEY, str(latency)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def arrivals(self) -> list[float]:
        return list(httpx.get(f"{self.url}/_fake/received").json()["data"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def sequential(fake: RemoteFake, count: int) -> float:
    """Objects per second of a plain loop: one blocking create call per object."""
    with httpx.Client(timeout=30) as client:
        start = time.perf_counter()
        for obj in SyntheticSource(count).list():
            reply = client.post(f"{fake.url}/v1/vector/collections/import",
                                headers={"Authorization": f"Bearer {KEY}"},
                                json={"clusterId": fake.cluster_id, "collectionName": "bench",
                                      "objectUrl": obj.url, "accessKey": "ak", "secretKey": "sk"})
            assert reply.json()["code"] == 200
        return count / (time.perf_counter() - start)


def orchestrated(fake: RemoteFake, count: int, *, concurrency: int, rps: float,
                 pg: PostgresLedger | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        m = manifest(fake, Path(tmp) / "bench.ledger.sqlite", concurrency=concurrency, rps=rps, ledger_url=pg)
        first = len(fake.arrivals())
        start = time.perf_counter()
        report = api.run(m, source_factory=lambda _s, _settings: SyntheticSource(count))
        seconds = time.perf_counter() - start
        assert report.outcomes["submitted"] == count, report.summary()
        stamps = sorted(fake.arrivals()[first:])
    window = 0
    j = 0
    for i, t in enumerate(stamps):  # the most calls in any one-second window
        while stamps[j] <= t - 1.0:
            j += 1
        window = max(window, i - j + 1)
    return {"objects": count, "seconds": round(seconds, 2), "objects_per_s": round(count / seconds, 1),
            "max_calls_in_1s": window}


def transitions(where: Path | PostgresLedger, *, threads: int, count: int) -> float:
    """Durable transitions per second: each thread claims objects and records their jobs."""
    objects = list(SyntheticSource(count).list())
    with open_ledger(where, owner="bench") as ledger:
        def work(part: int) -> None:
            for obj in objects[part::threads]:
                claim = ledger.begin_submission(PlanItem(obj, 0, Action.SUBMIT, "new", Route("bench", None)))
                assert claim is not None
                ledger.record_job(claim.row, f"job-{obj.key}")

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        start = time.perf_counter()
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        return round(2 * count / (time.perf_counter() - start), 1)


def main(count: int = 2000) -> dict[str, object]:
    latency, concurrency, rps = 0.05, 16, 400.0
    server = PgServer(durable=True).start()
    schemas = iter(range(1, 100))

    def pg() -> PostgresLedger:
        where = api.ledger_location(f"{server.url()}?schema=bench{next(schemas)}")
        assert isinstance(where, PostgresLedger)
        return where

    try:
        fake = RemoteFake(latency)
        try:
            base = sequential(fake, 200)
            run = orchestrated(fake, count, concurrency=concurrency, rps=rps)
            run_pg = orchestrated(fake, count, concurrency=concurrency, rps=rps, pg=pg())
        finally:
            fake.stop()
        fake = RemoteFake(0.0)
        try:
            ceiling = orchestrated(fake, count, concurrency=concurrency, rps=100_000)
            ceiling_pg = orchestrated(fake, count, concurrency=concurrency, rps=100_000, pg=pg())
        finally:
            fake.stop()
        with tempfile.TemporaryDirectory() as tmp:
            commits = {f"{name}_{threads}_threads": transitions(
                Path(tmp) / f"t{threads}.sqlite" if name == "sqlite" else pg(), threads=threads, count=1000)
                for name in ("sqlite", "postgresql") for threads in (1, 16)}
    finally:
        server.stop()
    bound = concurrency / latency
    return {
        "latency_s": latency, "concurrency": concurrency, "requests_per_second": rps,
        "sequential_objects_per_s": round(base, 1),
        "orchestrator": run,
        "speedup_vs_sequential": round(run["objects_per_s"] / base, 1),
        "fraction_of_latency_bound": round(run["objects_per_s"] / bound, 2),
        "rate_cap_respected": run["max_calls_in_1s"] <= rps,
        "ceiling_zero_latency": ceiling,
        "postgresql": run_pg,
        "ceiling_zero_latency_postgresql": ceiling_pg,
        "transitions_per_s": commits,
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000), indent=2))
