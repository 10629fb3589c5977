"""Benchmark 7: one bad file among 100 objects (issue 25): the jobs made and the time until every good
object is completed, in jobs of 1, 10 and 100 objects (``objects_per_job``).

The Zilliz v2 fake (on a socket in this process) fails every job that holds the bad file, with a
reason that names no file, and its describe ``details[]`` give every file the job's reason, so they do
not tell which file failed it: the run finds it by sending the failed job's objects again in halves.
Each job takes 0.05 s on the server; the run polls every 0.02 s. One ``run --wait``; the figures are
that run's create calls (the jobs made), the extra ones over a run without a bad file, and its wall
time; ``runs`` is how many ``run --wait`` it took until every good object was completed (the aim: one).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.backlog import CLUSTER, KEY, manifest
from bench.synthetic import SyntheticSource
from orchestrator import api
from orchestrator.ledger.factory import open_ledger
from tests.fakes.zilliz_v2 import FakeZillizV2

BAD = "part-00000042.parquet"


def isolate(count: int, per_job: int, *, job_s: float = 0.05, poll_s: float = 0.02) -> dict[str, Any]:
    """``run --wait`` until every good object is completed (at most three runs)."""
    fake = FakeZillizV2(api_key=KEY, cluster_id=CLUSTER, complete_after=job_s, fail_objects={BAD: "field "
                        "'vector' type mis-match"}, reason_names_file=False, file_details="job").start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            m = manifest(fake, Path(tmp) / "bench.ledger.sqlite", per_job=per_job, max_job_failures=1)
            start, runs, left = time.perf_counter(), 0, count - 1
            while left and runs < 3:
                runs += 1
                api.run(m, api.RunOptions(wait=True, poll_interval_s=poll_s),
                        source_factory=lambda _s, _settings: SyntheticSource(count))
                with open_ledger(Path(tmp) / "bench.ledger.sqlite", read_only=True) as ledger:
                    left = count - 1 - sum(1 for r in ledger.records() if r.state.value == "completed")
            seconds = time.perf_counter() - start
        jobs = len(fake.creates())
    finally:
        fake.stop()
    assert left == 0, f"{left} good objects not completed after {runs} runs"
    clean = math.ceil(count / per_job)
    return {"objects": count, "objects_per_job": per_job, "jobs": jobs, "extra_jobs": jobs - clean,
            "runs": runs, "seconds": round(seconds, 2)}


def main(count: int = 100, sizes: tuple[int, ...] = (1, 10, 100)) -> list[dict[str, Any]]:
    return [isolate(count, size) for size in sizes]


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
