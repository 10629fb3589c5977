"""Benchmark 4: a backlog through a server that holds few jobs, and the cost of learning job states.

  backlog:  2,000 objects, ``run --wait``, against a Zilliz v2 fake (its own process) that holds 50
            unfinished jobs and finishes each 1 s after it was made. The job-slot bound is
            objects x job time / slots = 40 s; the figure is bound / wall time (target >= 0.9), and
            the create calls the server refused as full, per object (target <= 0.1).
  polling:  200 running jobs, one refresh: API calls per running job (target <= 0.05; one progress
            call each would be 1.0).
  groups:   500 objects, ``run --wait``, in jobs of 1, 10 and 100 objects (``objects_per_job``)
            against a server whose jobs cost a fixed overhead (0.5 s: scheduling, segment sealing) plus
            time per file (0.005 s), 20 slots, with the client held to Zilliz's 20 calls/s: wall time
            and API calls per object, side by side.
The run polls every 0.05 s: 5% of the job time, as the default 5 s is for jobs of minutes. The fake
lists jobs newest first, in pages of 100. ``requests_per_second`` is 200 here: at Zilliz's
documented 20 calls/s per endpoint, one object per job is bound by the create endpoint alone (20
objects/s, 100 s for this backlog whatever the slots); several objects per job lift that.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import httpx

from bench.synthetic import SyntheticSource
from orchestrator import api
from orchestrator.config.manifest import Manifest, PreflightMode, Settings, SourceConfig, TargetConfig
from orchestrator.models import Credentials, Secret
from orchestrator.targets.registry import CAPABILITIES

KEY = "bench-api-key-0000"
CLUSTER = "inxx-bench000000002"


class Server:
    """The fake in a process of its own, so that it does not share our GIL."""

    def __init__(self, *, max_jobs: int, job_s: float, per_file_s: float = 0.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.backlog", "serve", str(max_jobs), str(job_s), str(per_file_s)],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def calls(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/_fake/calls", timeout=30).json()["data"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


class Served(Protocol):
    url: str  # where a fake import API answers


def manifest(server: Served, ledger: Path, *, concurrency: int = 8, rps: float = 200,
             per_job: int = 1, max_job_failures: int = 3) -> Manifest:
    source = SourceConfig(index=0, url="s3://bench/data/", scheme="s3", bucket="bench", prefix="data/",
                          collection="bench", partition=None, pattern=None, include=("**/*.parquet",),
                          exclude=(), endpoint_url=None, region=None, credentials=None)
    return Manifest(
        path=ledger.with_suffix(".yaml"),
        target=TargetConfig(type="zilliz-v2", capabilities=CAPABILITIES["zilliz-v2"], base_url=server.url,
                            cluster_id=CLUSTER, api_key=Secret(KEY)),
        credentials=Credentials(access_key=Secret("bench-ak"), secret_key=Secret("bench-sk")),
        sources=(source,),
        settings=Settings(concurrency=concurrency, requests_per_second=rps, max_attempts=3, min_age_s=0,
                          preflight=PreflightMode.OFF, job_list_lag_s=0, objects_per_job=per_job,
                          max_job_failures=max_job_failures),
        ledger_path=ledger)


def creates(calls: dict[str, Any]) -> int:
    return sum(1 for p in calls["paths"] if p.endswith("/create"))


def drained(server: Server, count: int, *, poll_s: float, rps: float = 200,
            per_job: int = 1) -> tuple[float, dict[str, Any]]:
    """``run --wait`` over ``count`` synthetic objects against ``server`` (stopped after): the
    seconds it took, and the calls the server received."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            m = manifest(server, Path(tmp) / "bench.ledger.sqlite", rps=rps, per_job=per_job)
            start = time.perf_counter()
            report = api.run(m, api.RunOptions(wait=True, poll_interval_s=poll_s),
                             source_factory=lambda _s, _settings: SyntheticSource(count))
            seconds = time.perf_counter() - start
        calls = server.calls()
    finally:
        server.stop()
    assert report.waited["completed"] == count, report.summary()
    return seconds, calls


def backlog(count: int = 2000, slots: int = 50, job_s: float = 1.0) -> dict[str, Any]:
    seconds, calls = drained(Server(max_jobs=slots, job_s=job_s), count, poll_s=0.05)
    bound = count * job_s / slots
    refused = creates(calls) - calls["jobs"]
    return {"objects": count, "slots": slots, "job_s": job_s, "seconds": round(seconds, 1),
            "bound_s": bound, "fraction_of_bound": round(bound / seconds, 2),
            "refused_per_object": round(refused / count, 3),
            "calls_per_object": round(len(calls["paths"]) / count, 2)}


def polling(running: int = 200) -> dict[str, Any]:
    server = Server(max_jobs=100_000, job_s=3600.0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            m = manifest(server, Path(tmp) / "bench.ledger.sqlite")
            api.run(m, source_factory=lambda _s, _settings: SyntheticSource(running))
            before = len(server.calls()["paths"])
            api.status(m, refresh_jobs=True, objects=False)
            spent = len(server.calls()["paths"]) - before
    finally:
        server.stop()
    return {"running_jobs": running, "calls": spent, "calls_per_running_job": round(spent / running, 3)}


def groups(count: int = 500, slots: int = 20, overhead_s: float = 0.5, per_file_s: float = 0.005,
           sizes: tuple[int, ...] = (1, 10, 100)) -> list[dict[str, Any]]:
    out = []
    for size in sizes:
        seconds, calls = drained(Server(max_jobs=slots, job_s=overhead_s, per_file_s=per_file_s), count,
                                 poll_s=0.1, rps=20, per_job=size)
        out.append({"objects": count, "objects_per_job": size, "jobs": calls["jobs"],
                    "seconds": round(seconds, 1), "calls_per_object": round(len(calls["paths"]) / count, 3)})
    return out


def main() -> dict[str, Any]:
    return {"backlog": backlog(), "polling": polling(), "groups": groups()}


def serve(max_jobs: int, job_s: float, per_file_s: float) -> None:
    import threading

    from tests.fakes.zilliz_v2 import FakeZillizV2

    fake = FakeZillizV2(api_key=KEY, cluster_id=CLUSTER, max_jobs=max_jobs, complete_after=job_s,
                        per_file_s=per_file_s, newest_first=True).start()
    print(fake.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
    else:
        print(json.dumps(main(), indent=2))
