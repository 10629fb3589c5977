"""The milvus-lite target for real: real parquet files, a real Milvus Lite database, through the CLI.

Crash tests run the orchestrator in a subprocess that dies hard (``os._exit``) in the middle of an
object's insert (``tests/crash_lite.py``), then rerun it and count the rows.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from milvus_lite import server_manager_instance
from pymilvus import DataType, MilvusClient

from tests.conftest import run_cli
from tests.crash_lite import CRASH
from tests.test_cli_run import invoke, status_json

ROOT = Path(__file__).resolve().parent.parent
DIM = 4


def table(ids: range, *, extra: dict[str, pa.Array] | None = None) -> pa.Table:
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "vector": pa.array([[float(i % 7), 1.0, 0.5, float(i % 3)] for i in ids], pa.list_(pa.float32())),
        **(extra or {}),
    })


def write(path: Path, data: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, path, row_group_size=100)


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Path]:
    """A Milvus Lite database path, its in-process server released afterwards."""
    uri = tmp_path / "lake.db"
    yield uri
    server_manager_instance.release_server(str(uri))


def client(uri: Path) -> MilvusClient:
    return MilvusClient(str(uri))


def loaded(uri: Path, collection: str) -> MilvusClient:
    db = client(uri)
    db.load_collection(collection)  # a database opened again starts with its collections released
    return db


def count(uri: Path, collection: str) -> int:
    rows = loaded(uri, collection).query(collection, filter="", output_fields=["count(*)"])
    return int(rows[0]["count(*)"])


def distinct_ids(uri: Path, collection: str) -> int:
    rows = loaded(uri, collection).query(collection, filter="id >= 0", output_fields=["id"], limit=16384)
    return len({r["id"] for r in rows})


def lite_manifest(tmp_path: Path, uri: Path, sources: list[dict[str, Any]], **target: Any) -> Path:
    doc = {"version": 1, "target": {"type": "milvus-lite", "uri": uri.name, **target}, "sources": sources,
           "settings": {"min_age_s": 0}}
    path = tmp_path / "lite.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """Two folders routed to two collections; authors carry scalar columns too."""
    folder = tmp_path / "lake"
    for n in range(3):
        write(folder / "articles" / f"part-{n}.parquet", table(range(n * 250, (n + 1) * 250)))
    for n in range(2):
        ids = range(n * 120, (n + 1) * 120)
        write(folder / "authors" / f"part-{n}.parquet", table(ids, extra={
            "name": pa.array([f"author {i}" for i in ids]),
            "score": pa.array([i / 10 for i in ids], pa.float64()),
            "active": pa.array([i % 2 == 0 for i in ids])}))
    return folder


ROUTED = [{"url": "lake", "pattern": "(?P<coll>[a-z]+)/", "collection": "{coll}"}]


def test_import_real_parquet_then_rerun_imports_nothing(tmp_path: Path, lite: Path, lake: Path) -> None:
    manifest = lite_manifest(tmp_path, lite, ROUTED, create_collection=True)
    first = invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    assert first.exit_code == 0, first.output
    assert "submitted=5 " in first.stdout and "jobs_completed=5" in first.stdout
    assert {"articles": count(lite, "articles"), "authors": count(lite, "authors")} == \
        {"articles": 750, "authors": 240}
    assert status_json(manifest)["counts"] == {"completed": 5}

    authors = client(lite).describe_collection("authors")
    types = {f["name"]: f["type"] for f in authors["fields"]}
    assert types == {"_orch_id": DataType.INT64, "id": DataType.INT64, "vector": DataType.FLOAT_VECTOR,
                     "name": DataType.VARCHAR, "score": DataType.DOUBLE, "active": DataType.BOOL,
                     "_orch_object": DataType.VARCHAR}
    hits = client(lite).search("articles", data=[[6.0, 1.0, 0.5, 2.0]], limit=3, output_fields=["id"])[0]
    assert len(hits) == 3 and all(h["id"] % 7 == 6 for h in hits)

    second = invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    assert second.exit_code == 0, second.output
    assert "submitted=0 " in second.stdout and "skipped=5" in second.stdout
    assert "nothing new to import" in second.stderr
    assert (count(lite, "articles"), count(lite, "authors")) == (750, 240)


def test_any_source_s3_with_partitions(
    tmp_path: Path, lite: Path, s3: Any, bucket: str,
) -> None:
    for year, start in (("2023", 0), ("2024", 500)):
        buf = io.BytesIO()
        pq.write_table(table(range(start, start + 300)), buf, row_group_size=64)
        s3.put_object(Bucket=bucket, Key=f"emb/{year}/a.parquet", Body=buf.getvalue())
    manifest = lite_manifest(tmp_path, lite, [{
        "url": f"s3://{bucket}/emb/", "collection": "events", "pattern": r"(?P<y>\d{4})/",
        "partition": "y{y}"}], create_collection=True, metric="L2")
    result = invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    assert result.exit_code == 0, result.output
    assert count(lite, "events") == 600
    in_2024 = client(lite).query("events", filter="id >= 0", output_fields=["id"], partition_names=["y2024"],
                                 limit=1000)
    assert sorted(r["id"] for r in in_2024) == list(range(500, 800))
    assert invoke("run", str(manifest)).exit_code == 0
    assert count(lite, "events") == 600


def test_collections_that_cannot_take_the_file_are_refused(tmp_path: Path, lite: Path) -> None:
    folder = tmp_path / "lake"
    write(folder / "missing" / "a.parquet", table(range(10)))
    write(folder / "autoid" / "a.parquet", table(range(10)).drop(["id"]))
    write(folder / "extra" / "a.parquet", table(range(10), extra={"colour": pa.array(["red"] * 10)}))
    (folder / "garbage").mkdir()
    (folder / "garbage" / "a.parquet").write_bytes(b"not parquet at all")
    db = client(lite)
    for name, auto_id in (("autoid", True), ("extra", False), ("garbage", False)):
        schema = MilvusClient.create_schema(auto_id=auto_id)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
        index = db.prepare_index_params()
        index.add_index("vector", index_type="AUTOINDEX", metric_type="L2")
        db.create_collection(name, schema=schema, index_params=index)
    manifest = lite_manifest(tmp_path, lite, ROUTED)
    result = invoke("run", str(manifest))
    assert result.exit_code == 1
    errors = {o["collection"]: o["error"] for o in status_json(manifest)["objects"]}
    assert "collection missing does not exist" in errors["missing"]
    assert "create_collection: true" in errors["missing"]
    assert "autoID primary key and no _orch_object field" in errors["autoid"]
    # the pre-flight check catches these two before any insert
    assert "column 'colour' is not a field of collection 'extra': drop it" in errors["extra"]
    assert "not a readable parquet file" in errors["garbage"]
    states = {o["collection"]: o["state"] for o in status_json(manifest)["objects"]}
    assert states["extra"] == states["garbage"] == "invalid" and states["missing"] == "failed"
    assert count(lite, "autoid") == 0 and count(lite, "extra") == 0


def crash(manifest: Path, mode: str) -> None:
    done = run_cli(str(manifest), mode, module="tests.crash_lite")
    assert done.returncode == CRASH, done.stdout + done.stderr


@pytest.fixture
def one_file(tmp_path: Path) -> Path:
    write(tmp_path / "lake" / "articles" / "a.parquet", table(range(300)))  # 3 batches of 100
    return tmp_path / "lake"


def test_crash_in_the_middle_of_a_file_then_rerun_imports_it_once(
    tmp_path: Path, lite: Path, one_file: Path,
) -> None:
    manifest = lite_manifest(tmp_path, lite, ROUTED, create_collection=True)
    crash(manifest, "write:2")
    assert status_json(manifest)["counts"] == {"submitting": 1}
    assert count(lite, "articles") == 100  # the first batch is in: the database recovered it

    result = invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    assert result.exit_code == 0, result.output
    assert "submitted=1 " in result.stdout and "jobs_completed=1" in result.stdout
    assert count(lite, "articles") == 300 and distinct_ids(lite, "articles") == 300
    assert status_json(manifest)["counts"] == {"completed": 1}


def test_crash_mid_file_into_a_user_collection_upserts_by_primary_key(
    tmp_path: Path, lite: Path, one_file: Path,
) -> None:
    schema = MilvusClient.create_schema(auto_id=False)  # made by the user: no _orch_object field
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    db = client(lite)
    index = db.prepare_index_params()
    index.add_index("vector", index_type="AUTOINDEX", metric_type="L2")
    db.create_collection("articles", schema=schema, index_params=index)
    server_manager_instance.release_server(str(lite))  # the subprocess needs the database to itself
    manifest = lite_manifest(tmp_path, lite, ROUTED)
    crash(manifest, "write:3")
    assert count(lite, "articles") == 200

    result = invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    assert result.exit_code == 0, result.output
    assert count(lite, "articles") == 300 and distinct_ids(lite, "articles") == 300


def test_crash_after_the_insert_adopts_the_recorded_job(tmp_path: Path, lite: Path, one_file: Path) -> None:
    manifest = lite_manifest(tmp_path, lite, ROUTED, create_collection=True)
    crash(manifest, "recorded")
    assert status_json(manifest)["counts"] == {"submitting": 1}

    result = invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    assert result.exit_code == 0, result.output
    assert "submitted=0 adopted=1 " in result.stdout
    assert count(lite, "articles") == 300
    assert invoke("status", str(manifest), "--refresh").exit_code == 0
    (record,) = status_json(manifest)["objects"]
    assert record["state"] == "completed" and record["job_id"].startswith("lite-")


def test_status_refresh_and_a_forgotten_job(tmp_path: Path, lite: Path, one_file: Path) -> None:
    manifest = lite_manifest(tmp_path, lite, ROUTED, create_collection=True)
    assert invoke("run", str(manifest)).exit_code == 0
    assert status_json(manifest)["counts"] == {"submitted": 1}
    client(lite).delete("orchestrator_jobs", filter='job_id != ""')  # the database lost its record
    assert invoke("status", str(manifest), "--refresh").exit_code == 0
    (record,) = status_json(manifest)["objects"]
    assert record["state"] == "uncertain" and "no longer knows job" in record["error"]


def test_missing_optional_packages_say_how_to_install(
    tmp_path: Path, lite: Path, one_file: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "orchestrator.targets.milvus_lite", None)
    result = invoke("run", str(lite_manifest(tmp_path, lite, ROUTED)))
    assert result.exit_code == 1
    assert "pip install 'milvus-import-orchestrator[milvus]'" in result.stderr

