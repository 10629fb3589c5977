"""Write the embedded demo's sample data: small parquet files of embeddings under two prefixes."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

DIM = 8
FILES_PER_PREFIX = 3
ROWS_PER_FILE = 500


def main(out: Path) -> None:
    rng = random.Random(42)
    for prefix in ("articles", "authors"):
        folder = out / prefix
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(FILES_PER_PREFIX):
            path = folder / f"part-{n:03}.parquet"
            if path.exists():
                continue  # the demo's data never changes once written: reruns import nothing new
            start = n * ROWS_PER_FILE
            table = pa.table({
                "id": pa.array(range(start, start + ROWS_PER_FILE), pa.int64()),
                "vector": pa.array([[rng.random() for _ in range(DIM)] for _ in range(ROWS_PER_FILE)],
                                   pa.list_(pa.float32())),
            })
            pq.write_table(table, path)
    print(f"demo data in {out}: {2 * FILES_PER_PREFIX} files of {ROWS_PER_FILE} rows")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo-data"))
