"""Benchmark 5: what the pre-flight check reads of a 1 GB file, footer alone and with its sample.

  A 1 GB parquet file of 768-dim float vectors (340,000 rows and an int64 id; one row group, as
  pyarrow writes a file of under 1 Mi rows by default; snappy; dictionary encoding tried, then plain),
  written once into the temp dir and kept for later runs (about 20 s to write). Its rows repeat a
  block of 34,000 random vectors, which no page's compression can see (a page is 1 MB).
  ``Preflight.inspect`` of the file, as ``run`` makes it, through ranged reads of the bytes (each
  counted: bytes, round trips), against a saved describe output: with the footer alone
  (``preflight_sample_rows: 0``), with the default sample (1,000 rows) and with 10,000 rows. Time per
  file is the median of 5 inspections with the file in the page cache: CPU and copies, no network;
  over a store each round trip adds its latency (20 to 50 ms on S3).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.config.manifest import Manifest, Settings, SourceConfig, TargetConfig
from orchestrator.models import Action, PlanItem, Route, StoredObject
from orchestrator.preflight.checks import Preflight
from orchestrator.targets.registry import CAPABILITIES

DIM = 768
ROWS = 340_000
BLOCK = 34_000
FILE = Path(tempfile.gettempdir()) / "orchestrator-bench" / f"preflight-{ROWS}x{DIM}.parquet"
SCHEMA = {"collectionName": "bench", "fields": [
    {"name": "id", "type": "Int64", "primaryKey": True},
    {"name": "vector", "type": "FloatVector", "params": [{"key": "dim", "value": str(DIM)}]}]}


def write_file(path: Path) -> Path:
    """The 1 GB file, written once (a marker beside it says the write finished)."""
    done = path.with_suffix(".done")
    if done.exists() and path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    values = pa.array(np.random.default_rng(29).random(BLOCK * DIM, dtype=np.float32))
    offsets = pa.array(np.arange(0, (BLOCK + 1) * DIM, DIM, dtype=np.int32))
    block = pa.ListArray.from_arrays(offsets, values)
    vectors = pa.chunked_array([block] * (ROWS // BLOCK))
    table = pa.table({"id": pa.array(np.arange(ROWS, dtype=np.int64)), "vector": vectors})
    pq.write_table(table, path, row_group_size=ROWS)
    done.touch()
    return path


class _NoTarget:
    max_file_bytes = None

    def describe(self, collection: str) -> None:
        raise AssertionError("the bench names a schema file")


def inspect(path: Path, sample_rows: int) -> dict[str, Any]:
    schema = path.parent / "bench-schema.json"
    schema.write_text(json.dumps(SCHEMA))
    source = SourceConfig(index=0, url=str(path.parent), scheme="file", bucket="", prefix="",
                          collection="bench", partition=None, pattern=None, include=(path.name,), exclude=(),
                          endpoint_url=None, region=None, credentials=None, root=path.parent)
    manifest = Manifest(path=path.parent / "bench.yaml", target=TargetConfig(
        type="milvus", capabilities=CAPABILITIES["milvus"], base_url="http://x"),
                        credentials=None, sources=(source,), ledger_path=path.parent / "bench.sqlite",
                        settings=Settings(preflight_sample_rows=sample_rows), schema_files={"bench": schema})
    size = path.stat().st_size
    obj = StoredObject(url=path.as_uri(), bucket="", key=str(path), relative_key=path.name, size=size,
                       version="v", modified=0.0)
    reads: list[int] = []

    def read(_source: int, _obj: StoredObject, start: int, end: int | None) -> bytes:
        with path.open("rb") as f:  # a ranged read, as a store's ranged GET
            f.seek(start)
            data = f.read((end if end is not None else size) - start)
        reads.append(len(data))
        return data

    item = PlanItem(obj, 0, Action.SUBMIT, "new", Route("bench", None))
    times = []
    for _ in range(5):
        reads.clear()
        start = time.perf_counter()
        found = Preflight(_NoTarget(), manifest, read).inspect(item)  # type: ignore[arg-type]
        times.append(time.perf_counter() - start)
        assert found.problems == [], found.problems
    return {"sample_rows": sample_rows, "file_bytes": size, "bytes_read": sum(reads),
            "round_trips": len(reads), "fraction_read": sum(reads) / size,
            "ms": round(statistics.median(times) * 1000, 1)}


def main() -> dict[str, Any]:
    start = time.perf_counter()
    path = write_file(FILE)
    written = time.perf_counter() - start
    meta = pq.ParquetFile(path).metadata
    return {"file": str(path), "rows": meta.num_rows, "row_groups": meta.num_row_groups, "dim": DIM,
            "setup_s": round(written, 1),
            "runs": [inspect(path, rows) for rows in (0, Settings().preflight_sample_rows, 10_000)]}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
