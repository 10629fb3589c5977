"""Benchmark: ``orchestrator report`` over a 1,000,000-object ledger (SQLite, and PostgreSQL at 100,000).

The ledger is filled directly (set-up, not measured) as a day of hourly runs would leave it: three
collections under two sources, jobs of one object that took 1 to 40 minutes, 2% failed jobs with a few
reasons, some invalid files, and the last hour's jobs still running: one object row and two or three
events (submitted, then completed or failed) each. Measured: the seconds to read the aggregates and
write the page, and the page's size.

``python -m bench.report_scale fill PATH COUNT`` fills a SQLite ledger only (the docs' screenshot).
"""

from __future__ import annotations

import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.api import ledger_location
from orchestrator.config.pgurl import PostgresLedger
from orchestrator.ledger.factory import open_ledger
from orchestrator.report import html as report
from tests.pgserver import PgServer

_OBJECT = ("id, url, version, target, source, collection, partition, size, state, job_id, attempts, "
           "failures, error, rows, imported_rows, created_at, updated_at")
_EVENT = "object_id, at, state, job_id, detail"
SOURCES = ("s3://lake/embeddings/", "gs://archive/vectors/")
COLLECTIONS = ("articles", "authors", "comments")
REASONS = ("field 'vector' type mis-match: expected FloatVector(768), got list<double>",
           "the file has 0 rows", "row 1812 of the file: VarChar field 'title' longer than 512",
           "import failed: segment flush timeout")


Row = tuple[Any, ...]


def rows(count: int, *, now: float, seed: int = 28) -> Iterator[tuple[Row, list[Row]]]:
    """One (object row, its events) per object, over the 24 hours before ``now``."""
    rng = random.Random(seed)
    day = 86_400.0
    for i in range(1, count + 1):
        source = SOURCES[i % 7 == 0]
        collection = COLLECTIONS[(i // 3) % 10 // 4]
        submitted = now - day + day * (i - 1) / count + rng.random()
        took = 60 + rng.expovariate(1 / 600)
        size = rng.randrange(50_000_000, 400_000_000)
        n_rows = size // 4000
        job = f"job-{i:08}"
        url = f"{source}day={i % 30:02}/part-{i:08}.parquet"
        events: list[tuple[Any, ...]] = [(i, submitted, "submitted", job, "job created")]
        if i % 331 == 0:
            state, error, job_id, imported = "invalid", REASONS[2], None, None
            events = [(i, submitted, "invalid", None, REASONS[2])]
        elif submitted + took > now:
            state, error, job_id, imported = "submitted", None, job, None
        elif i % 50 == 0:
            reason = REASONS[(i // 50) % 4 if (i // 50) % 4 != 2 else 3]
            state, error, job_id, imported = "failed", f"job {job} failed: {reason}", job, None
            events.append((i, submitted + took, "failed", job, error))
        else:
            state, error, job_id, imported = "completed", None, job, n_rows
            events.append((i, submitted + took, "completed", job, None))
        at = events[-1][1]
        yield ((i, url, f"etag-{i}", "zilliz-v2 https://api.cloud.zilliz.com inxx-bench", source, collection,
                None, size, state, job_id, 1, int(state == "failed"), error, n_rows, imported, submitted, at),
               events)


def fill(where: Path | PostgresLedger, count: int, *, now: float) -> None:
    """Set-up, not measured."""
    open_ledger(where).close()  # creates the schema
    objects: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    if isinstance(where, Path):
        db = sqlite3.connect(where)
        for obj, evs in rows(count, now=now):
            objects.append(obj)
            events.extend(evs)
            if len(objects) >= 50_000:
                _flush(db, objects, events)
        _flush(db, objects, events)
        db.close()
        return
    import psycopg
    from psycopg.conninfo import make_conninfo
    with psycopg.connect(make_conninfo("", **where.connect_kwargs())) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {where.schema}.objects ({_OBJECT}) FROM STDIN") as copy:
            for obj, evs in rows(count, now=now):
                copy.write_row(obj)
                events.extend(evs)
        with cur.copy(f"COPY {where.schema}.events ({_EVENT}) FROM STDIN") as copy:
            for event in events:
                copy.write_row(event)


def _flush(db: sqlite3.Connection, objects: list[tuple[Any, ...]], events: list[tuple[Any, ...]]) -> None:
    db.executemany(f"INSERT INTO objects ({_OBJECT}) VALUES ({','.join('?' * 17)})", objects)
    db.executemany(f"INSERT INTO events ({_EVENT}) VALUES (?,?,?,?,?)", events)
    db.commit()
    objects.clear()
    events.clear()


def measure(where: Path | PostgresLedger, count: int, out: Path) -> dict[str, Any]:
    now = time.time()
    fill(where, count, now=now)
    start = time.perf_counter()
    with open_ledger(where, read_only=True) as ledger:
        data = report.gather(ledger, title="bench", name=str(where), now=now)
    gathered = time.perf_counter() - start
    page = report.render(data)
    out.write_text(page, encoding="utf-8")
    seconds = time.perf_counter() - start
    assert sum(data.totals.values()) == count, data.totals
    return {"objects": count, "seconds": round(seconds, 2), "query_seconds": round(gathered, 2),
            "bytes": len(page.encode("utf-8"))}


def main() -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = measure(Path(tmp) / "bench.ledger.sqlite", 1_000_000, Path(tmp) / "r.html")
        server = PgServer(durable=True).start()
        try:
            where = ledger_location(f"{server.url()}?schema=report")
            assert isinstance(where, PostgresLedger)
            results["postgresql"] = measure(where, 100_000, Path(tmp) / "pg.html")
        finally:
            server.stop()
    return results


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "fill":
        fill(Path(sys.argv[2]), int(sys.argv[3]), now=time.time())
    else:
        import json
        print(json.dumps(main(), indent=2))
