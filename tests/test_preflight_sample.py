"""The pre-flight sample: `run` reads the first rows of each new file's data (the columns the rules
need, through ranged reads) and holds a file whose sampled rows the server would refuse, before any
import call, while the good files of the same job still go. A bad row past the sample is not caught,
and nothing claims it is."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator import api
from orchestrator.config.manifest import Settings, SourceConfig
from orchestrator.models import StoredObject
from orchestrator.preflight.footer import read_footer
from orchestrator.preflight.rules import check
from orchestrator.preflight.schema import from_describe
from orchestrator.run.wiring import load_manifest
from orchestrator.sources.base import Source
from orchestrator.sources.registry import make_source
from tests.conftest import AZURE_ACCOUNT
from tests.fakes.base import FakeImportAPI
from tests.test_preflight_e2e import invoke, status

ROWS = 40
SAMPLE = 20  # settings.preflight_sample_rows in these tests: rows 0-19 are read, 20-39 are not
SCHEMA = {"collectionName": "articles", "autoID": False, "enableDynamicField": True, "fields": [
    {"name": "id", "type": "Int64", "primaryKey": True},
    {"name": "vector", "type": "FloatVector", "params": [{"key": "dim", "value": "8"}]},
    {"name": "bits", "type": "BinaryVector", "params": [{"key": "dim", "value": "16"}]},  # 2 bytes a row
    {"name": "half", "type": "Float16Vector", "params": [{"key": "dim", "value": "4"}]},  # 8 bytes a row
    {"name": "doc", "type": "JSON"}]}


def rows(bad: dict[str, tuple[int, Any]] | None = None, n: int = ROWS) -> bytes:
    """A parquet file of ``n`` good rows, one row group, except ``bad``: column -> (row, value)."""
    columns: dict[str, list[Any]] = {
        "id": list(range(n)), "vector": [[0.5] * 8] * n, "bits": [[1, 2]] * n, "half": [b"\x00" * 8] * n,
        "doc": ['{"a": 1}'] * n, "$meta": ['{"m": 1}'] * n}
    for name, (row, value) in (bad or {}).items():
        columns[name][row] = value
    types = {"id": pa.int64(), "vector": pa.list_(pa.float32()), "bits": pa.list_(pa.uint8()),
             "half": pa.binary(), "doc": pa.string(), "$meta": pa.string()}
    buf = io.BytesIO()
    pq.write_table(pa.table({k: pa.array(v, types[k]) for k, v in columns.items()}), buf)
    return buf.getvalue()


BAD = {  # file -> (its rows, the problem `run` records)
    "float-dim.parquet": ({"vector": (7, [0.5] * 9)},
                          "column 'vector' holds vectors of 8 to 9 values (first bad row 7, in the first 20 "
                          "rows read); collection field 'vector' is FloatVector(dim=8): write 8 values per "
                          "row"),
    "binary-dim.parquet": ({"bits": (3, [1, 2, 3])},
                           "column 'bits' holds vectors of 2 to 3 values (first bad row 3, in the first 20 "
                           "rows read); collection field 'bits' is BinaryVector(dim=16): write 2 values per "
                           "row"),
    "float16-dim.parquet": ({"half": (5, b"\x00" * 6)},
                            "column 'half' holds vectors of 6 to 8 bytes (first bad row 5, in the first 20 "
                            "rows read); collection field 'half' is Float16Vector(dim=4): write 8 bytes per "
                            "row"),
    "null-vector.parquet": ({"vector": (4, None)},
                            "column 'vector' has 1 null vector(s) (first bad row 4, in the first 20 rows "
                            "read): every row needs a vector"),
    "bad-json.parquet": ({"doc": (11, "{nope")},
                         "column 'doc' has 1 text(s) that are not valid JSON (first bad row 11, in the first "
                         "20 rows read), e.g. '{nope'"),
    "bad-meta.parquet": ({"$meta": (19, "{")},
                         "column '$meta' has 1 text(s) that are not valid JSON (first bad row 19, in the "
                         "first 20 rows read), e.g. '{'"),
}
LATE = {"vector": (SAMPLE, [0.5] * 9)}  # the first row past the sample


@pytest.mark.parametrize("fake_api", ["zilliz-v2", "milvus"], indirect=True)
def test_run_holds_files_whose_sampled_rows_are_bad_and_sends_their_good_companions(
    s3: Any, bucket: str, write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    fake_api.collections["articles"] = SCHEMA
    for name, (bad, _) in BAD.items():
        s3.put_object(Bucket=bucket, Key=f"embeddings/{name}", Body=rows(bad))
    for name in ("good-1.parquet", "good-2.parquet"):
        s3.put_object(Bucket=bucket, Key=f"embeddings/{name}", Body=rows())
    s3.put_object(Bucket=bucket, Key="embeddings/late.parquet", Body=rows(LATE))
    manifest = write_manifest(settings={"objects_per_job": 100, "preflight_sample_rows": SAMPLE})
    result = invoke("run", str(manifest))
    assert result.exit_code == 1, result.output
    assert f"invalid={len(BAD)} " in result.stdout and "submitted=3 " in result.stdout
    [create] = fake_api.creates()  # one job: the good files and the one whose bad row is past the sample
    assert sorted(u.rsplit("/", 1)[1] for u in fake_api.urls_of(create.body)) == \
        ["good-1.parquet", "good-2.parquet", "late.parquet"]
    objects = status(manifest)
    for name, (_, problem) in BAD.items():
        assert (objects[name]["state"], objects[name]["error"]) == ("invalid", problem), name
    # not claimed caught: the sample did not read row 20, the server will judge it
    assert objects["late.parquet"]["state"] == "submitted" and objects["late.parquet"]["error"] is None
    deep = invoke("check", str(manifest), "--deep", "--json")  # the whole first row group: found there
    found = {r["url"].rsplit("/", 1)[1]: r["problems"] for r in map(json.loads, deep.stdout.splitlines())}
    assert found["late.parquet"] == [
        "column 'vector' holds vectors of 8 to 9 values (first bad row 20, in the first row group); "
        "collection field 'vector' is FloatVector(dim=8): write 8 values per row"]


def test_a_sample_of_zero_rows_reads_the_footer_only(
    s3: Any, bucket: str, write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    fake_api.collections["articles"] = SCHEMA
    s3.put_object(Bucket=bucket, Key="embeddings/float-dim.parquet", Body=rows(BAD["float-dim.parquet"][0]))
    result = invoke("run", str(write_manifest(settings={"preflight_sample_rows": 0})))
    assert "submitted=1 " in result.stdout and "invalid=0 " in result.stdout  # the server finds out


@pytest.mark.parametrize("fake_api", ["milvus"], indirect=True)
def test_gcs_and_azure_sources_hold_a_bad_sample_too(
    gcs: Any, gcs_bucket: str, azure: Any, azure_container: str, azure_connection_string: str,
    write_manifest: Callable[..., Path], fake_api: FakeImportAPI, monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_api.collections["articles"] = SCHEMA
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_connection_string)
    bad, good = rows(BAD["float-dim.parquet"][0]), rows()
    gcs.bucket(gcs_bucket).blob("g/bad.parquet").upload_from_string(bad)
    gcs.bucket(gcs_bucket).blob("g/good.parquet").upload_from_string(good)
    container = azure.get_container_client(azure_container)
    container.upload_blob("a/bad.parquet", bad)
    container.upload_blob("a/good.parquet", good)
    manifest = write_manifest(
        sources=[{"url": f"gs://{gcs_bucket}/g/", "collection": "articles"},
                 {"url": f"az://{azure_container}/a/", "collection": "articles", "account": AZURE_ACCOUNT}],
        settings={"objects_per_job": 10, "preflight_sample_rows": SAMPLE})
    result = invoke("run", str(manifest))
    assert "invalid=2 " in result.stdout and "submitted=2 " in result.stdout, result.output
    assert sorted(u.rsplit("/", 2)[1] + "/" + u.rsplit("/", 1)[1] for u in fake_api.created_urls()) == \
        ["a/good.parquet", "g/good.parquet"]


def test_a_local_folder_into_milvus_lite_holds_a_bad_sample(tmp_path: Path) -> None:
    from milvus_lite import server_manager_instance
    from pymilvus import MilvusClient

    from tests.test_milvus_lite import count, lite_manifest

    folder = tmp_path / "lake"
    folder.mkdir()
    vectors = pa.list_(pa.float32())
    for name, short_row in (("good", None), ("short", 2)):
        values = [[0.5] * 4 if i != short_row else [0.5] * 3 for i in range(10)]
        pq.write_table(pa.table({"id": pa.array(range(10), pa.int64()), "vector": pa.array(values, vectors)}),
                       folder / f"{name}.parquet")
    uri = tmp_path / "lake.db"
    try:
        MilvusClient(str(uri)).create_collection("articles", dimension=4)
        manifest = lite_manifest(tmp_path, uri, [{"url": "lake", "collection": "articles"}])
        result = invoke("run", str(manifest), "--wait", "--poll-interval", "0")
        assert "invalid=1 " in result.stdout and "submitted=1 " in result.stdout, result.output
        assert count(uri, "articles") == 10  # the good file only: the short one was never inserted
        assert status(manifest)["short.parquet"]["error"] == (
            "column 'vector' holds vectors of 3 to 4 values (first bad row 2, in the first 10 rows read); "
            "collection field 'vector' is FloatVector(dim=4): write 4 values per row")
    finally:
        server_manager_instance.release_server(str(uri))


# -- what a sample reads ------------------------------------------------------------------------------

def test_a_sample_reads_part_of_a_large_row_group_in_one_more_round_trip() -> None:
    n, dim = 20_000, 64  # one row group of 5 MB of vectors
    values = pa.array(np.random.default_rng(7).random(n * dim, dtype=np.float32))
    table = pa.table({"id": pa.array(range(n), pa.int64()),
                      "vector": pa.ListArray.from_arrays(pa.array(range(0, n * dim + 1, dim), pa.int32()),
                                                         values),
                      "title": pa.array([f"t{i}" for i in range(n)])})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=n)
    data = buf.getvalue()
    asked: list[tuple[int, int]] = []

    def read(start: int, end: int) -> bytes:
        asked.append((start, end))
        return data[start:end]

    footer = read_footer(read, len(data), rows=100, columns=lambda schema: ["vector"])
    assert footer.first_rows is not None and footer.first_rows.column_names == ["vector"]
    assert footer.first_rows.num_rows == 100 and footer.round_trips == len(asked) == 2
    assert footer.first_rows.column("vector").to_pylist() == table.column("vector").to_pylist()[:100]
    # the dictionary page (1 MB), 100 rows, and a page of slack: not the whole column chunk
    assert footer.bytes_fetched == sum(e - s for s, e in asked) < len(data) / 2.5


def test_a_column_written_as_one_huge_page_is_left_out_of_the_sample_not_read_whole() -> None:
    n, dim = 40_000, 64  # pages of 5 MB (20,000 rows each): no sample of them reads less than 5 MB
    values = pa.array(np.random.default_rng(8).random(n * dim, dtype=np.float32))
    vectors = pa.ListArray.from_arrays(pa.array(range(0, n * dim + 1, dim), pa.int32()), values)
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": pa.array(range(n), pa.int64()), "vector": vectors}), buf,
                   use_dictionary=False, data_page_size=1 << 30)
    data = buf.getvalue()
    footer = read_footer(lambda s, e: data[s:e], len(data), rows=100, columns=lambda schema: ["vector"])
    assert footer.unsampled == ("vector",) and footer.first_rows is None
    assert footer.bytes_fetched < len(data) / 2  # the tail, and at most four reads of its guess
    schema = from_describe({"fields": [{"name": "id", "type": "Int64", "primaryKey": True},
                                       {"name": "vector", "type": "FloatVector", "params": {"dim": dim}}]},
                           where="test")
    found = check(footer, schema, size=len(data), size_limit=None)
    assert found.problems == [] and found.warnings == [
        "column 'vector': its first rows are in pages too large for a sample (a page of the whole column?): "
        "its values are not checked (check --deep reads them)"]


# -- a group's files are read at once -----------------------------------------------------------------

class _HeldReads:
    """Wraps a real source: the first read of each object waits until ``together`` such reads are in
    flight at once (a barrier with a deadline), counting the most seen at once."""

    def __init__(self, source: Source, together: int) -> None:
        self.source = source
        self.label = source.label
        self.barrier = threading.Barrier(together, timeout=20)
        self.lock = threading.Lock()
        self.first: set[str] = set()
        self.in_flight = self.most = 0

    def list(self) -> Iterator[StoredObject]:
        return self.source.list()

    def read(self, obj: StoredObject, start: int = 0, end: int | None = None) -> bytes:
        with self.lock:
            first = obj.url not in self.first
            self.first.add(obj.url)
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            if first:
                self.barrier.wait()
            return self.source.read(obj, start, end)
        finally:
            with self.lock:
                self.in_flight -= 1


def _holding(held: list[_HeldReads], *, together: int) -> Callable[[SourceConfig, Settings], Source]:
    """A source factory whose sources hold first reads (see :class:`_HeldReads`), kept in ``held``."""
    def sources(config: SourceConfig, settings: Settings) -> Source:
        held.append(_HeldReads(make_source(config, settings), together=together))
        return held[-1]
    return sources


@pytest.mark.parametrize("fake_api", ["zilliz-v2"], indirect=True)
def test_the_files_of_one_job_are_checked_at_once_within_concurrency(
    s3: Any, bucket: str, write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    fake_api.collections["articles"] = SCHEMA
    for i in range(6):
        s3.put_object(Bucket=bucket, Key=f"embeddings/{i}.parquet", Body=rows())
    manifest = load_manifest(write_manifest(settings={"objects_per_job": 6, "concurrency": 3}), None)
    held: list[_HeldReads] = []
    sources = _holding(held, together=3)

    report = api.run(manifest, source_factory=sources)
    assert report.outcomes["submitted"] == 6, report.summary()  # one read at a time: the barrier breaks
    assert max(h.most for h in held) == 3  # never more than settings.concurrency


@pytest.mark.parametrize("fake_api", ["zilliz-v2"], indirect=True)
def test_check_reads_files_at_once_and_reports_them_in_listing_order(
    s3: Any, bucket: str, write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    fake_api.collections["articles"] = SCHEMA
    for i in range(6):
        s3.put_object(Bucket=bucket, Key=f"embeddings/{i}.parquet", Body=rows(BAD["bad-json.parquet"][0]
                                                                            if i == 3 else None))
    manifest = load_manifest(write_manifest(settings={"concurrency": 3, "preflight_sample_rows": SAMPLE}),
                             None)
    held: list[_HeldReads] = []
    sources = _holding(held, together=3)

    seen: list[tuple[str, bool]] = []
    report = api.check(manifest, source_factory=sources,
                       on_result=lambda item, found, error: seen.append(
                           (item.obj.relative_key, bool(found and found.problems))))
    assert seen == [(f"{i}.parquet", i == 3) for i in range(6)]  # one read at a time: the barrier breaks
    assert report.counts == {"ok": 5, "invalid": 1} and max(h.most for h in held) <= 3
