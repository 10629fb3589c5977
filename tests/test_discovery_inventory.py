"""discovery: inventory on S3, end to end: deliveries written as AWS writes them (tests/inventories.py)
into moto's S3, the fake import API on a socket, the CLI. Each object of an inventory imported exactly
once and recorded as found by it; an inventory already read is not read again; a newer delivery brings
only what is new; the backfill listing finds what no inventory names yet."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import parquet_bytes
from tests.fakes.zilliz import FakeZilliz
from tests.inventories import rows_of, write_inventory
from tests.test_discovery_s3 import invoke, once_each

pytestmark = pytest.mark.timeout(60)

_destinations = itertools.count()


@pytest.fixture
def delivered(s3: Any, bucket: str) -> Callable[..., str]:
    """Writes a delivery of ``bucket``'s objects as they are now, made ``hours_ago``; the URL of the
    folder S3 Inventory delivers to (the same for every delivery of a test)."""
    destination = f"inventory-cli-{next(_destinations)}"
    s3.create_bucket(Bucket=destination)
    folder = f"lake/{bucket}/daily/"

    def deliver(*, hours_ago: float, file_format: str = "CSV") -> str:
        when = (datetime.now(UTC) - timedelta(hours=hours_ago)).replace(second=0, microsecond=0)
        write_inventory(s3, bucket=destination, folder=folder, source_bucket=bucket, rows=rows_of(s3, bucket),
                        file_format=file_format, when=when)
        return f"s3://{destination}/{folder}"
    return deliver


@pytest.fixture
def inventory_manifest(write_manifest: Callable[..., Path], bucket: str) -> Callable[..., Path]:
    def write(inventory: str, **source: Any) -> Path:
        return write_manifest(sources=[{"url": f"s3://{bucket}/embeddings/", "collection": "articles",
                                        "discovery": "inventory", "inventory": inventory, "backfill_every": 0,
                                        **source}])
    return write


def put(s3: Any, bucket: str, *keys: str) -> None:
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=parquet_bytes())


def events(result: Any) -> list[str]:
    """The events of a run's log (``--json-log``), in order."""
    return [json.loads(line).get("event", "") for line in result.stderr.splitlines() if line.startswith("{")]


def found_by(manifest: Path) -> dict[str, str]:
    """Each imported object's name -> how it was found, as ``status --json`` says."""
    status = json.loads(invoke("status", str(manifest), "--json").stdout)
    return {o["url"].rsplit("/", 1)[1]: o["found"] for o in status["objects"]}


def test_each_object_of_an_inventory_once_then_only_what_a_newer_delivery_adds(
    s3: Any, bucket: str, delivered: Callable[..., str], inventory_manifest: Callable[..., Path],
    fake_api: FakeZilliz,
) -> None:
    put(s3, bucket, "embeddings/a.parquet", "embeddings/day=01/b c.parquet", "embeddings/notes.txt",
        "other/x.parquet")
    manifest = inventory_manifest(inventory := delivered(hours_ago=2))
    first = invoke("run", str(manifest))
    assert first.exit_code == 0, first.output
    names = [f"s3://{bucket}/embeddings/a.parquet", f"s3://{bucket}/embeddings/day=01/b c.parquet"]
    once_each(fake_api, names)
    assert found_by(manifest) == {"a.parquet": "inventory", "b c.parquet": "inventory"}
    assert "found by    inventory" in invoke("show", str(manifest), names[1]).stdout
    exported = list(csv.DictReader(io.StringIO(invoke("export", str(manifest), "--format", "csv").stdout)))
    assert sorted((r["url"], r["found"]) for r in exported) == [(n, "inventory") for n in names]

    again = invoke("run", str(manifest), "--json-log")  # the same delivery: not read again, nothing listed
    assert again.exit_code == 0 and " submitted=0 " in again.stdout
    assert "nothing new to import: no object was listed, announced by an event or named by a newer " \
           "inventory" in again.stderr, again.stderr
    [seen] = [json.loads(line) for line in again.stderr.splitlines() if "inventory-seen" in line]
    assert seen["message"] == (f"sources[0] s3://{bucket}/embeddings/ (inventory {inventory}): not read: no "
                               "newer than the source's last full view"), seen
    assert len(fake_api.creates()) == 2

    put(s3, bucket, "embeddings/c.parquet")
    delivered(hours_ago=1, file_format="Parquet")  # the next day's delivery names c too
    newer = invoke("run", str(manifest), "--json-log")
    assert newer.exit_code == 0 and "inventory-seen" not in events(newer), newer.output
    assert " submitted=1 " in newer.stdout and " skipped=2 " in newer.stdout, newer.stdout
    once_each(fake_api, [*names, f"s3://{bucket}/embeddings/c.parquet"])
    assert found_by(manifest)["c.parquet"] == "inventory"


def test_an_object_newer_than_the_inventory_waits_for_the_backfill_unless_it_is_never(
    s3: Any, bucket: str, delivered: Callable[..., str], inventory_manifest: Callable[..., Path],
    fake_api: FakeZilliz,
) -> None:
    put(s3, bucket, "embeddings/a.parquet", "embeddings/b.parquet")
    inventory = delivered(hours_ago=48)
    put(s3, bucket, "embeddings/late.parquet")  # written after the inventory: not in it
    never = invoke("run", str(inventory_manifest(inventory)), "--json-log")  # backfill_every: 0
    assert never.exit_code == 0 and "backfill" not in events(never), never.output
    once_each(fake_api, [f"s3://{bucket}/embeddings/{k}.parquet" for k in "ab"])

    manifest = inventory_manifest(inventory, backfill_every="1d")  # the inventory is two days old
    due = invoke("run", str(manifest), "--json-log")
    assert due.exit_code == 0 and {"inventory-seen", "backfill"} <= set(events(due)), due.output
    assert " submitted=1 " in due.stdout and " skipped=2 " in due.stdout, due.stdout
    once_each(fake_api, [f"s3://{bucket}/embeddings/{k}.parquet" for k in ("a", "b", "late")])
    assert found_by(manifest) == {"a.parquet": "inventory", "b.parquet": "inventory",
                                  "late.parquet": "listing"}

    after = invoke("run", str(manifest), "--json-log")  # listed whole just now: no backfill due, nothing read
    assert after.exit_code == 0 and "backfill" not in events(after) and " submitted=0 " in after.stdout
    assert len(fake_api.creates()) == 3
