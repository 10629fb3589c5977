"""milvus-lite counts what the collection really holds: files whose ``id`` columns overlap both keep all
their rows in a collection ``create_collection`` made, and upserts into a user's collection do not claim
rows they may have replaced."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from milvus_lite import server_manager_instance
from pymilvus import DataType, MilvusClient

from tests.test_cli_run import invoke, status_json
from tests.test_milvus_lite import (
    DIM,
    ROUTED,
    client,
    count,
    lite_manifest,
    table,
    write,
)


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Path]:
    uri = tmp_path / "lake.db"
    yield uri
    server_manager_instance.release_server(str(uri))


def test_overlapping_ids_into_a_created_collection_keep_every_row(tmp_path: Path, lite: Path) -> None:
    write(tmp_path / "lake" / "articles" / "a.parquet", table(range(0, 300)))
    write(tmp_path / "lake" / "articles" / "b.parquet", table(range(200, 500)))  # ids 200..299 in both
    manifest = lite_manifest(tmp_path, lite, ROUTED, create_collection=True)
    result = invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    assert result.exit_code == 0, result.output
    assert count(lite, "articles") == 600  # 300 + 300: nothing overwritten
    ids = client(lite).query("articles", filter="id >= 200 and id < 300", output_fields=["id"], limit=1000)
    assert len(ids) == 200
    assert sorted(r["imported_rows"] for r in status_json(manifest)["objects"]) == [300, 300]


def test_upserts_into_a_user_collection_report_rows_as_unknown(tmp_path: Path, lite: Path) -> None:
    schema = MilvusClient.create_schema(auto_id=False)  # the user's: no _orch_object, key from the file
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    db = client(lite)
    index = db.prepare_index_params()
    index.add_index("vector", index_type="AUTOINDEX", metric_type="L2")
    db.create_collection("articles", schema=schema, index_params=index)
    write(tmp_path / "lake" / "articles" / "a.parquet", table(range(0, 300)))
    write(tmp_path / "lake" / "articles" / "b.parquet", table(range(200, 500)))
    manifest = lite_manifest(tmp_path, lite, ROUTED)
    result = invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    assert result.exit_code == 0, result.output
    assert count(lite, "articles") == 500  # upserted by choice: ids 200..299 replaced
    assert [r["imported_rows"] for r in status_json(manifest)["objects"]] == [None, None]
