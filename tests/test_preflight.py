"""Pre-flight rules, each on a real parquet file written with pyarrow and read back from its footer."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.errors import FooterError, SchemaError
from orchestrator.preflight.footer import read_footer
from orchestrator.preflight.rules import Findings, Versions, check
from orchestrator.preflight.schema import from_describe, load_file

DIM = 4
DESCRIBE = {  # the REST v2 describe shape
    "collectionName": "articles", "autoID": False, "enableDynamicField": False,
    "fields": [
        {"name": "id", "type": "Int64", "primaryKey": True, "autoId": False},
        {"name": "title", "type": "VarChar", "params": [{"key": "max_length", "value": "256"}]},
        {"name": "meta", "type": "JSON"},
        {"name": "tags", "type": "Array", "elementType": "VarChar"},
        {"name": "embedding", "type": "FloatVector", "params": [{"key": "dim", "value": str(DIM)}]},
    ],
}


def parquet(columns: dict[str, Any], *, row_group_size: int | None = None) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf, row_group_size=row_group_size)
    return buf.getvalue()


def good(rows: int = 3, **override: Any) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "id": pa.array(range(rows), pa.int64()),
        "title": pa.array([f"t{i}" for i in range(rows)]),
        "meta": pa.array([json.dumps({"i": i}) for i in range(rows)]),
        "tags": pa.array([["a", "b"]] * rows, pa.list_(pa.string())),
        "embedding": pa.array([[0.5] * DIM] * rows, pa.list_(pa.float32())),
    }
    columns.update(override)
    return {k: v for k, v in columns.items() if v is not None}


V23, V24, V25 = (Versions.exactly((2, minor)) for minor in (3, 4, 5))
UNKNOWN = Versions()


def findings(columns: dict[str, Any], describe: dict[str, Any] = DESCRIBE, *, deep: bool = False,
             size_limit: int | None = None, fixed_ok: bool = False, versions: Versions = V24) -> Findings:
    data = parquet(columns)
    footer = read_footer(lambda s, e: data[s:e], len(data), rows=None if deep else 0)
    return check(footer, from_describe(describe, where="test"), size=len(data), size_limit=size_limit,
                 fixed_size_list_ok=fixed_ok, versions=versions)


def problems(columns: dict[str, Any], describe: dict[str, Any] = DESCRIBE, **kwargs: Any) -> list[str]:
    return findings(columns, describe, **kwargs).problems


def warnings(columns: dict[str, Any], describe: dict[str, Any] = DESCRIBE, **kwargs: Any) -> list[str]:
    return findings(columns, describe, **kwargs).warnings


def test_a_good_file_has_no_problems() -> None:
    assert problems(good()) == []
    assert problems(good(), deep=True) == []


def test_extra_column_and_missing_field_are_both_reported() -> None:
    found = problems(good(title=None, extra=pa.array([1, 2, 3])))
    assert found == [
        "column 'extra' is not a field of collection 'articles': drop it",
        "collection field 'title' (VarChar) has no column: add a column 'title'",
    ]


def test_autoid_primary_key_column_must_be_absent() -> None:
    auto = json.loads(json.dumps(DESCRIBE))
    auto["fields"][0]["autoId"] = True
    assert problems(good(), auto) == [
        "column 'id' is the auto-ID primary key, which the server generates: drop the column"]
    assert problems(good(id=None), auto) == []


def test_function_output_column_must_be_absent() -> None:
    fn = json.loads(json.dumps(DESCRIBE))
    fn["fields"].append({"name": "sparse", "type": "SparseFloatVector"})
    fn["functions"] = [{"name": "bm25", "outputFieldNames": ["sparse"]}]
    assert problems(good()) == []
    assert problems(good(sparse=pa.array(["{}"] * 3)), fn) == [
        "column 'sparse' is the output of a function, which the server computes: drop the column"]


def test_wrong_vector_element_type() -> None:
    found = problems(good(embedding=pa.array([["x"] * DIM] * 3, pa.list_(pa.string()))))
    assert found == ["column 'embedding' is list<string> of unknown length; collection field 'embedding' is "
                     f"FloatVector(dim={DIM}): write list<float32> of {DIM} values"]
    assert problems(good(embedding=pa.array([[0.5] * DIM] * 3, pa.list_(pa.float64())))) == []


def test_integer_vectors_depend_on_the_server_version() -> None:
    ints = good(embedding=pa.array([[1] * DIM] * 3, pa.list_(pa.int32())))
    intro = (f"column 'embedding' is list<int32> of unknown length; collection field 'embedding' is "
             f"FloatVector(dim={DIM}): integer vectors")
    assert findings(ints, versions=V24) == Findings()
    assert findings(ints, versions=V23) == Findings(
        problems=[f"{intro}: Milvus before 2.4 refuses it (Milvus 2.3)"])
    assert findings(ints, versions=Versions(low=(2, 2))) == Findings(warnings=[
        f"{intro}: Milvus 2.4 and later import it, older servers refuse it (judging for Milvus 2.2 or "
        "later: set settings.milvus_version to decide)"])


def test_widening_into_float_and_double() -> None:
    doubles = {**DESCRIBE, "fields": [*DESCRIBE["fields"], {"name": "d", "type": "Double"},
                                      {"name": "f", "type": "Float"}]}
    for d, f in ((pa.float32(), pa.int32()), (pa.int64(), pa.int64()), (pa.float64(), pa.float32())):
        extra = good(d=pa.array([1, 2, 3], d), f=pa.array([1, 2, 3], f))
        assert findings(extra, doubles, versions=V23) == Findings(), (d, f)
    f64 = good(d=pa.array([1.0] * 3), f=pa.array([1.0] * 3, pa.float64()))
    assert "Milvus before 2.4 refuses it" in problems(f64, doubles, versions=V23)[0]
    assert findings(f64, doubles, versions=V24) == Findings()
    assert findings(good(d=pa.array(["x"] * 3), f=pa.array([1.0] * 3, pa.float32())), doubles).problems == [
        "column 'd' is string; collection field 'd' is Double: write float64"]


def test_deep_null_vectors_and_invalid_json() -> None:
    dynamic = {**DESCRIBE, "enableDynamicField": True}
    bad = good(embedding=pa.array([[0.5] * DIM, None, [0.5] * DIM], pa.list_(pa.float32())),
               meta=pa.array(['{"a": 1}', "{nope", "[1]"]), **{"$meta": pa.array(['{"x": 1}', "3", "{"])})
    assert problems(bad, dynamic) == []
    assert findings(bad, dynamic, deep=True, versions=V23) == Findings(
        problems=["column 'meta' has 1 text(s) that are not valid JSON (first bad row 1, in the first row "
                  "group), e.g. '{nope'",
                  "column 'embedding' has 1 null vector(s) (first bad row 1, in the first row group): every "
                  "row needs a vector",
                  "column '$meta' has 1 text(s) that are not valid JSON (first bad row 2, in the first row "
                  "group), e.g. '{'"],
        warnings=["column '$meta' has 1 JSON value(s) that are not objects (first bad row 1, in the first "
                  "row group): servers before 2.5 import them (judging for Milvus 2.3)"])
    assert "column '$meta' has 1 JSON value(s) that are not objects (first bad row 1, in the first row " \
        "group)" in problems(
        bad, dynamic, deep=True, versions=V25)


def test_unknown_field_types_are_checked_for_presence_only() -> None:
    newer = {**DESCRIBE, "fields": [*DESCRIBE["fields"], {"name": "where", "type": "Geometry"},
                                    {"name": "when", "type": 26}]}
    schema = from_describe(newer, where="x")
    assert [(f.type, f.known) for f in schema.fields[-2:]] == [("Geometry", False), ("Timestamptz", False)]
    found = findings(good(where=pa.array(["POINT (1 2)"] * 3)), newer)
    assert found.problems == ["collection field 'when' (Timestamptz) has no column: add a column 'when'"]
    assert found.warnings == ["column 'where': collection field 'where' is of type Geometry, which this "
                              "orchestrator does not know: its values are not checked"]


def test_wrong_dim_needs_deep() -> None:
    short = good(embedding=pa.array([[0.5] * (DIM - 1)] * 3, pa.list_(pa.float32())))
    assert problems(short) == []
    assert problems(short, deep=True) == [
        f"column 'embedding' holds vectors of {DIM - 1} values (first bad row 0, in the first row group); "
        f"collection field 'embedding' is FloatVector(dim={DIM}): write {DIM} values per row"]


def test_fixed_size_list_is_flagged_unless_allowed() -> None:
    fixed = good(embedding=pa.array([[0.5] * DIM] * 3, pa.list_(pa.float32(), DIM)))
    [problem] = problems(fixed)
    assert "fixed_size_list (write list<float32> of 4 values, or set settings.fixed_size_list: allow for " \
           "a 2.6+ server): Milvus before 2.6 refuses it (Milvus 2.4)" in problem
    assert problems(fixed, fixed_ok=True) == []
    assert findings(fixed, versions=Versions.exactly((2, 6))) == Findings()
    assert len(warnings(fixed, versions=UNKNOWN)) == 1
    wrong = good(embedding=pa.array([[0.5] * 3] * 3, pa.list_(pa.float32(), 3)))
    assert problems(wrong, fixed_ok=True) == [
        "column 'embedding' is fixed_size_list<float32, 3>; collection field 'embedding' is "
        f"FloatVector(dim={DIM}): it holds 3 values, the field needs {DIM}"]


def test_json_as_string_and_integer_widening() -> None:
    assert problems(good(id=pa.array([1, 2, 3], pa.int16()))) == []
    found = problems(good(meta=pa.array([{"i": 1}] * 3)))
    assert len(found) == 1 and "collection field 'meta' is JSON: write string (a JSON text)" in found[0]
    narrowing = json.loads(json.dumps(DESCRIBE))
    narrowing["fields"][0]["type"] = "Int32"
    assert "write int32 (or a narrower signed integer)" in problems(good(), narrowing)[0]


def test_dynamic_meta_column() -> None:
    meta = pa.array([json.dumps({"x": 1})] * 3)
    assert problems(good(**{"$meta": meta})) == [
        "column '$meta' needs a collection with the dynamic field enabled: drop it"]
    dynamic = {**DESCRIBE, "enableDynamicField": True}
    assert problems(good(**{"$meta": meta}), dynamic) == []
    assert "write a string holding a JSON object" in problems(
        good(**{"$meta": pa.array([1, 2, 3])}), dynamic)[0]


def test_nulls_inside_lists_are_found_with_deep() -> None:
    holes = good(embedding=pa.array([[0.5, None, 0.5, 0.5]] * 3, pa.list_(pa.float32())))
    v26 = Versions.exactly((2, 6))
    assert any("null elements inside its lists" in p for p in problems(holes, deep=True, versions=v26))
    for older in (V23, V24):  # read as zeros before 2.6: a warning
        assert problems(holes, deep=True, versions=older) == []
        assert any("null elements inside its lists" in w for w in warnings(holes, deep=True, versions=older))


def test_size_limit_from_the_listing() -> None:
    assert problems(good(), size_limit=10) == [
        "the file is 0.0 GB; this target takes at most 1e-08 GB per file: split it"]


def test_pymilvus_describe_shape_and_schema_files(tmp_path: Path) -> None:
    pymilvus_shape = {"collection_name": "articles", "auto_id": True, "enable_dynamic_field": True,
                      "fields": [{"name": "id", "type": 5, "is_primary": True, "params": {}},
        {"name": "embedding", "type": 101, "params": {"dim": 768}}]}
    schema = from_describe(pymilvus_shape, where="x")
    assert schema.dynamic and schema.field("id").auto_id  # type: ignore[union-attr]
    assert schema.field("embedding").describe() == "FloatVector(dim=768)"  # type: ignore[union-attr]
    path = tmp_path / "articles.schema.json"
    path.write_text(json.dumps({"code": 0, "data": DESCRIBE}))
    assert load_file(path).field("embedding").dim == DIM  # type: ignore[union-attr]
    path.write_text("{nope")
    with pytest.raises(SchemaError, match="not valid JSON"):
        load_file(path)
    with pytest.raises(SchemaError, match=r"fields\[0\]: no field type"):
        from_describe({"fields": [{"name": "v"}]}, where="x")


def test_footer_reads_a_small_fraction_of_a_large_file() -> None:
    rows = 60_000
    data = parquet(good(rows), row_group_size=20_000)
    asked: list[tuple[int, int]] = []

    def read(start: int, end: int) -> bytes:
        asked.append((start, end))
        return data[start:end]

    footer = read_footer(read, len(data))
    assert footer.num_rows == rows and footer.num_row_groups == 3
    assert footer.bytes_fetched == sum(e - s for s, e in asked) <= 64 * 1024 < len(data) / 10
    deep = read_footer(read, len(data), rows=None)
    assert deep.first_rows is not None and deep.first_rows.num_rows == 20_000
    assert deep.bytes_fetched < len(data) / 2


def test_not_parquet() -> None:
    junk = b"PAR1" + b"x" * 5000
    with pytest.raises(FooterError, match="not a readable parquet file"):
        read_footer(lambda s, e: junk[s:e], len(junk))


def test_struct_fields_and_pymilvus_type_members_from_describe() -> None:
    from pymilvus import DataType

    described = {"collection_name": "c", "fields": [
        {"name": "id", "type": DataType.INT64, "is_primary": True, "params": {}},
        {"name": "tags", "type": DataType.ARRAY, "element_type": DataType.VARCHAR,
         "params": {"max_capacity": 3, "max_length": 8}}],
        "struct_array_fields": [{"name": "chunks", "fields": []}]}
    schema = from_describe(described, where="x")
    tags = schema.field("tags")
    assert tags is not None and (tags.element_type, tags.max_capacity, tags.max_length) == ("VarChar", 3, 8)
    chunks = schema.field("chunks")
    assert chunks is not None and (chunks.type, chunks.known) == ("ArrayOfStruct", False)


class _Target:
    max_file_bytes = None

    def __init__(self, version: tuple[int, int] | None) -> None:
        self.version = version

    def server_version(self) -> tuple[int, int] | None:
        return self.version


class _Silent:
    max_file_bytes = None


@pytest.mark.parametrize(("target_type", "reported", "setting", "expected"), [
    ("milvus-grpc", (2, 3), "2.5", Versions.exactly((2, 3))),  # the server's word first
    ("milvus-grpc", None, "2.5", Versions.exactly((2, 5))),  # then the manifest's
    ("milvus", None, None, Versions(low=(2, 4))),  # then what the REST import API implies
    ("zilliz-v1", None, None, Versions()),
])
def test_the_versions_judged_for(target_type: str, reported: tuple[int, int] | None, setting: str | None,
                                 expected: Versions, tmp_path: Path) -> None:
    from dataclasses import replace

    from orchestrator.config.manifest import Settings
    from orchestrator.preflight.checks import Preflight
    from orchestrator.run.wiring import parse_manifest

    target = {"milvus-grpc": {"type": "milvus-grpc", "endpoint": "http://x:19530"},
              "milvus": {"type": "milvus", "endpoint": "http://x:19530"},
              "zilliz-v1": {"type": "zilliz-v1", "region": "gcp-us-west1", "cluster_id": "c",
                            "api_key": "${K}"}}
    keys = {"access_key": "${K}", "secret_key": "${K}"}
    creds = {"credentials": keys} if target_type == "zilliz-v1" else {}
    sources = [{"url": "s3://lake/x/", "collection": "c"}]
    doc = {"version": 1, "target": target[target_type], "sources": sources, **creds}
    manifest = parse_manifest(doc, file="m.yaml", base_dir=tmp_path, stem="m", environ={"K": "secret"})
    manifest = replace(manifest, settings=Settings(milvus_version=setting))
    fake = _Target(reported) if target_type == "milvus-grpc" else _Silent()
    assert Preflight(fake, manifest, lambda *a: b"").versions() == expected  # type: ignore[arg-type]


def test_values_2_5_refuses_and_older_servers_import() -> None:
    described = {**DESCRIBE, "fields": [
        *DESCRIBE["fields"][:1], {"name": "title", "type": "VarChar", "params": {"max_length": 3}},
        {"name": "meta", "type": "JSON"},
        {"name": "tags", "type": "Array", "elementType": "VarChar",
         "params": [{"key": "max_capacity", "value": "2"}, {"key": "max_length", "value": "2"}]},
        DESCRIBE["fields"][-1]]}
    columns = good(title=pa.array(["long", "ok", None]), tags=pa.array([["abc"], ["a", "b", "c"], []]))
    expected = ["column 'title' has 1 null value(s) (first bad row 2, in the first row group) and field "
                "'title' is not nullable",
                "column 'title' holds a text of 4 characters (first bad row 0, in the first row group); "
                "field 'title' takes at most 3",
                "column 'tags' holds a list of 3 elements (first bad row 1, in the first row group); field "
                "'tags' takes at most 2",
                "column 'tags' holds a text of 3 characters (first bad row 0, in the first row group); the "
                "elements of field 'tags' take at most 2"]
    assert problems(columns, described, deep=True, versions=V25) == expected
    for older in (V23, V24):
        found = findings(columns, described, deep=True, versions=older)
        assert found.problems == []
        assert [w.split(": servers before 2.5")[0] for w in found.warnings] == expected
    nulls = good(meta=pa.array(['{"a": 1}', None, "{}"]))
    assert problems(nulls, deep=True, versions=V23) == [
        "column 'meta' has 1 null value(s) (first bad row 1, in the first row group) and field 'meta' is not "
        "nullable: write a JSON text (such as {}) in each row"]
