"""Pre-flight end to end: real parquet through real S3, GCS and Azure servers with ranged reads, a describe
endpoint on the fake API, and a run that submits only the good files."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient
from click.testing import CliRunner

from orchestrator.cli.main import cli
from orchestrator.models import Action, PlanItem, Route
from orchestrator.preflight.checks import Preflight
from orchestrator.run.wiring import load_manifest
from orchestrator.sources.base import ObjectReader
from orchestrator.sources.registry import make_source
from tests.conftest import AZURE_ACCOUNT, HTTP_TARGETS
from tests.fakes.base import FakeImportAPI

DIM = 4
ARTICLES = {"collectionName": "articles", "autoID": False, "enableDynamicField": False, "fields": [
    {"name": "id", "type": "Int64", "primaryKey": True},
    {"name": "vector", "type": "FloatVector", "params": [{"key": "dim", "value": str(DIM)}]}]}


def parquet(rows: int = 3, dim: int = DIM, **columns: Any) -> bytes:
    data: dict[str, Any] = {"id": pa.array(range(rows), pa.int64()),
                            "vector": pa.array([[0.5] * dim] * rows, pa.list_(pa.float32()))}
    data.update(columns)
    buf = io.BytesIO()
    pq.write_table(pa.table({k: v for k, v in data.items() if v is not None}), buf, row_group_size=5_000)
    return buf.getvalue()


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def status(manifest: Path) -> dict[str, dict[str, Any]]:
    result = invoke("status", str(manifest), "--json")
    return {o["url"].rsplit("/", 1)[1]: o for o in json.loads(result.stdout)["objects"]}


@pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)
def test_a_mix_of_good_and_bad_files_submits_only_the_good_ones(
    s3: Any, bucket: str, write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    fake_api.collections["articles"] = ARTICLES
    files = {
        "good.parquet": parquet(),
        "extra.parquet": parquet(colour=pa.array(["red"] * 3)),
        "missing.parquet": parquet(vector=None),
        "ints.parquet": parquet(vector=pa.array([[1] * DIM] * 3, pa.list_(pa.int64()))),
    }
    for name, body in files.items():
        s3.put_object(Bucket=bucket, Key=f"embeddings/{name}", Body=body)
    manifest = write_manifest(settings={"milvus_version": "2.3"})  # integer vectors: refused before 2.4
    first = invoke("run", str(manifest))
    assert first.exit_code == 1
    assert "submitted=1 " in first.stdout and "invalid=3 " in first.stdout
    assert [u.rsplit("/", 1)[1] for u in fake_api.created_urls()] == ["good.parquet"]
    objects = status(manifest)
    assert objects["good.parquet"]["state"] == "submitted" and objects["good.parquet"]["rows"] == 3
    assert objects["extra.parquet"]["state"] == "invalid"
    assert objects["extra.parquet"]["error"] == \
        "column 'colour' is not a field of collection 'articles': drop it"
    assert objects["missing.parquet"]["error"] == \
        "collection field 'vector' (FloatVector(dim=4)) has no column: add a column 'vector'"
    assert objects["ints.parquet"]["error"] == (
        "column 'vector' is list<int64> of unknown length; collection field 'vector' is FloatVector(dim=4): "
        "integer vectors: Milvus before 2.4 refuses it (Milvus 2.3)")
    plan = invoke("plan", str(manifest)).stdout
    assert "invalid: column 'colour' is not a field" in plan

    again = invoke("run", str(manifest))
    assert "submitted=0 " in again.stdout and "invalid=0 " in again.stdout  # checked once per version
    s3.put_object(Bucket=bucket, Key="embeddings/extra.parquet", Body=parquet())  # fixed: a new version
    fixed = invoke("run", str(manifest))
    assert "submitted=1 " in fixed.stdout
    assert sorted(u.rsplit("/", 1)[1] for u in fake_api.created_urls()) == ["extra.parquet", "good.parquet"]


def test_check_reports_every_problem_and_writes_nothing(
    s3: Any, bucket: str, write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    fake_api.collections["articles"] = ARTICLES
    s3.put_object(Bucket=bucket, Key="embeddings/good.parquet", Body=parquet())
    s3.put_object(Bucket=bucket, Key="embeddings/short.parquet", Body=parquet(dim=DIM - 1))
    manifest = write_manifest(settings={"preflight_sample_rows": 0})
    shallow = invoke("check", str(manifest))
    assert shallow.exit_code == 0, shallow.output  # vector lengths need the data
    assert "ok        s3://" in shallow.stdout and "check: 2 ok" in shallow.stderr
    deep = invoke("check", str(manifest), "--deep", "--json")
    assert deep.exit_code == 1
    results = {r["url"].rsplit("/", 1)[1]: r for r in map(json.loads, deep.stdout.splitlines())}
    assert results["good.parquet"]["problems"] == [] and results["good.parquet"]["rows"] == 3
    assert results["short.parquet"]["problems"] == [
        "column 'vector' holds vectors of 3 values (first bad row 0, in the first row group); collection "
        "field 'vector' is FloatVector(dim=4): write 4 values per row"]
    sampled = invoke("check", str(write_manifest(name="sampled.yaml")))  # the default: a sample of rows
    assert sampled.exit_code == 1 and "check: 1 invalid, 1 ok" in sampled.stderr
    assert "short.parquet: column 'vector' holds vectors of 3 values (first bad row 0, in the first 3 rows " \
        "read)" in sampled.stdout
    assert not manifest.with_name("nightly.ledger.sqlite").exists()
    assert fake_api.creates() == []


def test_schema_files_stand_in_for_the_data_plane(
    s3: Any, bucket: str, write_manifest: Callable[..., Path], fake_api: FakeImportAPI, tmp_path: Path,
) -> None:
    (tmp_path / "articles.json").write_text(json.dumps({"code": 0, "data": ARTICLES}))
    s3.put_object(Bucket=bucket, Key="embeddings/extra.parquet", Body=parquet(colour=pa.array(["x"] * 3)))
    manifest = write_manifest(target={"cluster_endpoint": None})
    text = manifest.read_text() + "schema_files:\n  articles: articles.json\n"
    manifest.write_text(text.replace("  cluster_endpoint: null\n", ""))
    result = invoke("run", str(manifest))
    assert "invalid=1 " in result.stdout and fake_api.creates() == []


def test_warn_mode_submits_with_a_warning_and_off_reads_nothing(
    s3: Any, bucket: str, write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    fake_api.collections["articles"] = ARTICLES
    s3.put_object(Bucket=bucket, Key="embeddings/extra.parquet", Body=parquet(colour=pa.array(["x"] * 3)))
    warn = invoke("run", str(write_manifest(settings={"preflight": "warn"})))
    assert "submitted=1 " in warn.stdout and "submitting despite: column 'colour'" in warn.stderr
    s3.put_object(Bucket=bucket, Key="embeddings/other.parquet", Body=b"not parquet")
    off = invoke("run", str(write_manifest(settings={"preflight": "off"})))
    assert "submitted=1 " in off.stdout  # the server is left to find out


def test_v1_reports_no_row_count_so_its_rows_are_the_footers_and_nothing_is_compared(
    s3: Any, bucket: str, write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    s3.put_object(Bucket=bucket, Key="embeddings/seven.parquet", Body=parquet(rows=7))
    manifest = write_manifest()
    invoke("run", str(manifest))
    rerun = invoke("-v", "run", str(manifest))
    assert "jobs_completed=1" in rerun.stdout and "the file holds" not in rerun.stderr
    obj = status(manifest)["seven.parquet"]
    assert (obj["state"], obj["rows"], obj["imported_rows"]) == ("completed", 7, 7)  # the footer's count


@pytest.mark.parametrize("fake_api", ["zilliz-v2", "milvus"], indirect=True)
def test_row_mismatch_is_reported(
    s3: Any, bucket: str, write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    s3.put_object(Bucket=bucket, Key="embeddings/seven.parquet", Body=parquet(rows=7))
    manifest = write_manifest()
    invoke("run", str(manifest))
    rerun = invoke("-v", "run", str(manifest))  # refreshes: the fake says it imported 3 rows
    assert "imported 3 rows; the file holds 7" in rerun.stderr
    obj = status(manifest)["seven.parquet"]
    assert (obj["rows"], obj["imported_rows"]) == (7, 3)


def _inspect_through(source_url: str, key: str, manifest_dir: Path, options: str = "",
                     sample_rows: int = 0) -> tuple[int, int, int]:
    """Bytes and round trips the pre-flight read of one object, and its size, through the real source."""
    path = manifest_dir / "m.yaml"
    path.write_text(
        "version: 1\ntarget: {type: milvus, endpoint: 'http://127.0.0.1:9'}\n"
        f"sources: [{{url: '{source_url}', collection: articles{options}}}]\n"
        f"settings: {{preflight_sample_rows: {sample_rows}}}\n"
        "schema_files: {articles: a.json}\n")
    (manifest_dir / "a.json").write_text(json.dumps(ARTICLES))
    m = load_manifest(path, {})
    source = make_source(m.sources[0], m.settings)
    obj = next(o for o in source.list() if o.key.endswith(key))

    def read(_index: int, o: Any, start: int, end: int | None) -> bytes:
        return source.read(o, start, end)

    reader: ObjectReader = read
    preflight = Preflight(_NoTarget(), m, reader)
    found = preflight.inspect(PlanItem(obj, 0, Action.SUBMIT, "new", Route("articles", None)))
    assert found.problems == [] and found.rows == 60_000
    return found.bytes_read, found.round_trips, obj.size


class _NoTarget:
    max_file_bytes = None

    def describe(self, collection: str) -> None:
        raise AssertionError("schema_files must be used")


def test_footer_reads_are_ranged_on_s3_gcs_and_azure(
        s3: Any, bucket: str, gcs: Any, gcs_bucket: str, azure: BlobServiceClient, azure_container: str,
        azure_connection_string: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rng = random.Random(1)
    big = parquet(rows=60_000, vector=pa.array([[rng.random() for _ in range(DIM)] for _ in range(60_000)],
                                               pa.list_(pa.float32())))
    s3.put_object(Bucket=bucket, Key="big/file.parquet", Body=big)
    gcs.bucket(gcs_bucket).blob("big/file.parquet").upload_from_string(big)
    azure.get_container_client(azure_container).upload_blob("big/file.parquet", big)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_connection_string)
    for url, options in ((f"s3://{bucket}/big/", ""), (f"gs://{gcs_bucket}/big/", ""),
                         (f"az://{azure_container}/big/", f", account: {AZURE_ACCOUNT}")):
        read, trips, size = _inspect_through(url, "file.parquet", tmp_path, options)
        assert size == len(big) and read <= 64 * 1024 < size / 10 and trips == 1, (url, read, size)
        # a sample of 100 rows: one more ranged read, of part of the first vector column chunk
        sampled, trips, _ = _inspect_through(url, "file.parquet", tmp_path, options, sample_rows=100)
        assert read < sampled < read + size / 10 and trips == 2, (url, sampled, trips, size)
