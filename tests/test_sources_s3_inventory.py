"""S3 Inventory as the listing, against moto's server: deliveries written as AWS writes them
(tests/inventories.py) in CSV, Parquet and ORC, read into the objects the S3 lister gives."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from orchestrator.config.manifest import Settings, SourceConfig
from orchestrator.errors import SourceError
from orchestrator.sources.s3 import S3Source
from orchestrator.sources.s3_inventory import S3Inventory, make_inventory
from orchestrator.sources.s3_inventory_manifest import (
    InventoryManifest,
    deliveries,
    parse_manifest,
    schema_columns,
)
from orchestrator.sources.s3_inventory_rows import BATCH_ROWS, read_objects
from orchestrator.sources.s3_listing import timestamp
from tests.inventories import CSV_FIELDS, Row, data_file, file_schema, iso, rows_of, write_inventory

pytestmark = pytest.mark.timeout(60)

FORMATS = ("CSV", "Parquet", "ORC")
ODD = ["emb/c d/é+#%.parquet", "emb/a+b.parquet", "emb/ü/x y,z\"q.parquet", "emb/100%/%2F.parquet",
       "emb/deep/1.parquet", "emb/deep/2.parquet"]
OUTSIDE = ["embx/1.parquet", "other/emb/1.parquet", "em"]
MARKERS = ["emb/", "emb/deep/"]
DAY = datetime(2026, 12, 6, 0, 0, tzinfo=UTC)
_destinations = itertools.count()


@pytest.fixture
def lake(s3: Any, bucket: str) -> str:
    """A bucket of odd keys, keys outside the prefix, folder markers and one multipart object."""
    for key in ODD + OUTSIDE + MARKERS:
        s3.put_object(Bucket=bucket, Key=key, Body=b"" if key.endswith("/") else key.encode())
    upload = s3.create_multipart_upload(Bucket=bucket, Key="emb/multi.parquet")
    part = s3.upload_part(Bucket=bucket, Key="emb/multi.parquet", UploadId=upload["UploadId"], PartNumber=1,
                          Body=b"one part")
    s3.complete_multipart_upload(Bucket=bucket, Key="emb/multi.parquet", UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    return bucket


@pytest.fixture
def inventories(s3: Any) -> str:
    """The bucket S3 Inventory delivers to, one a test (moto's server lives as long as the session)."""
    name = f"inventory-dest-{next(_destinations)}"
    s3.create_bucket(Bucket=name)
    return name


def reader(s3: Any, url: str, bucket: str, prefix: str = "emb/") -> S3Inventory:
    return S3Inventory(s3, url=url, label="sources[0] s3://lake/emb/", bucket=bucket, prefix=prefix)


@pytest.mark.parametrize("file_format", FORMATS)
def test_an_inventory_gives_what_the_lister_gives(s3: Any, lake: str, inventories: str,
                                                  file_format: str) -> None:
    """Every format: the current objects under the prefix, each equal to the listed one but for
    ``found``; other buckets' rows, keys outside the prefix and folder markers left out."""
    others = [Row("other-bucket", "emb/x.parquet", 5, 1_700_000_000_000, "e" * 32)]
    write_inventory(s3, bucket=inventories, folder="lake/daily/", source_bucket=lake,
                    rows=rows_of(s3, lake) + others, file_format=file_format, files=3)
    inventory = reader(s3, f"s3://{inventories}/lake/daily/", lake)
    found = sorted(inventory.objects())
    listed = list(S3Source(s3, label="s", bucket=lake, prefix="emb/").list())
    assert {o.found for o in found} == {"inventory"}
    assert [o._replace(found="listing") for o in found] == listed
    assert sorted(o.key for o in found) == sorted([*ODD, "emb/multi.parquet"])
    multi = next(o for o in found if o.key == "emb/multi.parquet")
    assert multi.version.endswith("-1") and multi.checksum == multi.version
    assert inventory.created == DAY.timestamp()


@pytest.mark.parametrize("file_format", FORMATS)
def test_a_versioned_inventory_keeps_current_versions_only(s3: Any, inventories: str,
                                                            file_format: str) -> None:
    ms = 1_760_000_000_123
    rows = [Row("lake", "emb/kept.parquet", 10, ms, "a" * 32, "v2", True, False),
            Row("lake", "emb/kept.parquet", 9, ms - 1000, "b" * 32, "v1", False, False),
            Row("lake", "emb/deleted.parquet", 0, ms, "", "v4", True, True),
            Row("lake", "emb/deleted.parquet", 7, ms - 1000, "c" * 32, "v3", False, False)]
    write_inventory(s3, bucket=inventories, folder="v/", source_bucket="lake", rows=rows,
                    file_format=file_format, versioned=True)
    [obj] = reader(s3, f"s3://{inventories}/v/", "lake").objects()
    assert (obj.url, obj.size, obj.version, obj.modified) == ("s3://lake/emb/kept.parquet", 10, "a" * 32,
                                                              ms / 1000)


def test_the_newest_complete_delivery_is_read(s3: Any, inventories: str) -> None:
    """Among several dates the newest with a manifest.json: a folder without one is still being
    written. A manifest.json's URL reads that one."""
    def rows(name: str) -> list[Row]:
        return [Row("lake", f"emb/{name}.parquet", 1, 1_700_000_000_000, "d" * 32)]

    for day, name in ((4, "old"), (6, "newest"), (5, "middle")):
        write_inventory(s3, bucket=inventories, folder="inv/lake/cfg/", source_bucket="lake",
                        rows=rows(name), when=datetime(2026, 12, day, 1, 2, tzinfo=UTC))
    s3.put_object(Bucket=inventories, Key="inv/lake/cfg/2026-12-07T01-02Z/data-in-progress.csv.gz", Body=b"")
    s3.put_object(Bucket=inventories, Key="inv/lake/cfg/hive/dt=2026-12-08-01-02/symlink.txt", Body=b"")
    newest = reader(s3, f"s3://{inventories}/inv/lake/cfg", "lake")
    assert [o.key for o in newest.objects()] == ["emb/newest.parquet"]
    assert newest.manifest()[0] == "inv/lake/cfg/2026-12-06T01-02Z/manifest.json"
    assert newest.created == datetime(2026, 12, 6, 1, 2, tzinfo=UTC).timestamp()
    one = reader(s3, f"s3://{inventories}/inv/lake/cfg/2026-12-04T01-02Z/manifest.json", "lake")
    assert [o.key for o in one.objects()] == ["emb/old.parquet"]


def broken(s3: Any, bucket: str, change: dict[str, Any] | None = None, body: bytes | None = None) -> None:
    key = write_inventory(s3, bucket=bucket, folder="bad/", source_bucket="lake",
                          rows=[Row("lake", "emb/1.parquet", 1, 1_700_000_000_000, "f" * 32)])
    doc = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    body = body if body is not None else json.dumps({**doc, **(change or {})}).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body)


@pytest.mark.parametrize(("change", "body", "problem"), [
    ({}, b"{not json", r"bad/2026-12-06T00-00Z/manifest.json is not JSON \("),
    ({"sourceBucket": "elsewhere"}, None,
     r"manifest.json is the inventory of bucket 'elsewhere', not 'lake'$"),
    ({"fileSchema": "Bucket, Key, Size"}, None, r"lists no LastModifiedDate, ETag \(add these fields"),
    ({"fileFormat": "JSON"}, None, r"has fileFormat 'JSON', not CSV, ORC or Parquet$"),
    ({"files": [{"key": "x"}]}, None, r"has no valid creationTimestamp or files list"),
])
def test_a_bad_manifest_is_one_line_naming_it(s3: Any, inventories: str, change: dict[str, Any],
                                              body: bytes | None, problem: str) -> None:
    broken(s3, inventories, change, body)
    with pytest.raises(SourceError) as caught:
        list(reader(s3, f"s3://{inventories}/bad/", "lake").objects())
    message = str(caught.value)
    assert message.startswith(f"sources[0] s3://lake/emb/ (inventory s3://{inventories}/bad/): "
                              f"s3://{inventories}/bad/")
    assert "\n" not in message
    assert caught.match(problem)


def test_a_missing_manifest(s3: Any, inventories: str) -> None:
    with pytest.raises(SourceError, match=rf"\(inventory s3://{inventories}/nothing/\): no "
                                          r"YYYY-MM-DDTHH-MMZ/manifest.json below it \(give the folder"):
        reader(s3, f"s3://{inventories}/nothing/", "lake").manifest()
    url = f"s3://{inventories}/nothing/2026-12-06T00-00Z/manifest.json"
    with pytest.raises(SourceError, match=rf"cannot read {url}: object not found$"):
        list(reader(s3, url, "lake").objects())
    with pytest.raises(SourceError,
                       match=r"cannot read s3://no-such-bucket/x/manifest.json: bucket not found"):
        reader(s3, "s3://no-such-bucket/x/manifest.json", "lake").manifest()


def test_an_md5_mismatch_yields_nothing(s3: Any, inventories: str) -> None:
    write_inventory(s3, bucket=inventories, folder="md5/", source_bucket="lake",
                    rows=[Row("lake", "emb/1.parquet", 1, 1_700_000_000_000, "f" * 32)],
                    file_format="Parquet")
    data = "md5/data/2026-12-06T00-00Z-0000.parquet"
    body = s3.get_object(Bucket=inventories, Key=data)["Body"].read()
    s3.put_object(Bucket=inventories, Key=data, Body=body[:-1] + bytes([body[-1] ^ 1]))
    got: list[Any] = []
    with pytest.raises(SourceError, match=rf"s3://{inventories}/{data} does not match the MD5checksum of its "
                                          r"manifest \(damaged or replaced"):
        got.extend(reader(s3, f"s3://{inventories}/md5/", "lake").objects())
    assert got == []


def test_a_data_file_not_of_its_format(s3: Any, inventories: str) -> None:
    """Its MD5 matches (the manifest was written for it), but it is no Parquet file."""
    write_inventory(s3, bucket=inventories, folder="fmt/", source_bucket="lake",
                    rows=[Row("lake", "emb/1.parquet", 1, 1_700_000_000_000, "f" * 32)])
    key = "fmt/2026-12-06T00-00Z/manifest.json"
    doc = json.loads(s3.get_object(Bucket=inventories, Key=key)["Body"].read())
    schema = ("message s3.inventory { required binary bucket; required binary key; optional int64 size; "
              "optional int64 last_modified_date; optional binary e_tag;}")
    s3.put_object(Bucket=inventories, Key=key,
                  Body=json.dumps({**doc, "fileFormat": "Parquet", "fileSchema": schema}))
    with pytest.raises(SourceError, match=r"\.csv\.gz is not a Parquet inventory file \("):
        list(reader(s3, f"s3://{inventories}/fmt/", "lake").objects())


def test_make_inventory_uses_the_source_client_options(s3: Any, lake: str, inventories: str,
                                                       env: dict[str, str]) -> None:
    write_inventory(s3, bucket=inventories, folder="opts/", source_bucket=lake, rows=rows_of(s3, lake))
    source = SourceConfig(index=2, url=f"s3://{lake}/emb/deep/", scheme="s3", bucket=lake, prefix="emb/deep/",
                          collection="c", partition=None, pattern=None, include=("**",), exclude=(),
                          endpoint_url=env["AWS_ENDPOINT_URL"], region="us-east-1", credentials=None,
                          path_style=True)
    inventory = make_inventory(f"s3://{inventories}/opts/", source, Settings())
    assert inventory.label == f"sources[2] s3://{lake}/emb/deep/ (inventory s3://{inventories}/opts/)"
    assert [o.relative_key for o in sorted(inventory.objects())] == ["1.parquet", "2.parquet"]
    with pytest.raises(SourceError, match=r"^sources\[2\] s3://.*: inventory gs://x/y/ is not an "
                                          r"s3://bucket/prefix/ URL$"):
        make_inventory("gs://x/y/", source, Settings())


@pytest.mark.parametrize("file_format", FORMATS)
def test_a_data_file_is_read_in_batches(tmp_path: Path, file_format: str) -> None:
    """A file of 3 batches and more, never whole: every row of the bucket's prefix once, in order."""
    count = 3 * BATCH_ROWS + 5
    rows = [Row("lake" if i % 7 else "other", f"emb/{i:06}.parquet", i, 1_700_000_000_000 + i, f"{i:032x}")
            for i in range(count)]
    path = tmp_path / "data"
    path.write_bytes(data_file(rows, file_format, CSV_FIELDS))
    manifest = InventoryManifest(source_bucket="lake", file_format=file_format, files=(), created=0.0,
                                 columns=schema_columns(file_schema(file_format, CSV_FIELDS), file_format))
    batches = list(read_objects(path, manifest, bucket="lake", prefix="emb/"))
    assert len(batches) >= 3 and max(map(len, batches)) < count / 2
    objects = [o for batch in batches for o in batch]
    assert [o.size for o in objects] == [i for i in range(count) if i % 7]
    assert objects[0].version == objects[0].checksum == f"{1:032x}"
    # the time as the lister reads the same date from a listing: the same float, to the bit
    listed = [timestamp(iso(1_700_000_000_000 + i)) for i in range(count) if i % 7]
    assert [o.modified for o in objects] == listed


def test_the_manifest_fields_and_deliveries() -> None:
    assert schema_columns(", ".join(CSV_FIELDS), "CSV") == (
        "bucket", "key", "size", "last_modified_date", "e_tag", "storage_class")
    versioned = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, IsMultipartUploaded"
    assert schema_columns(versioned, "CSV")[2:] == ("version_id", "is_latest", "is_delete_marker",
                                                    "is_multipart_uploaded")
    parquet = ("message s3.inventory { required binary bucket (UTF8); optional int64 last_modified_date "
               "(TIMESTAMP_MILLIS);}")
    assert schema_columns(parquet, "Parquet") == ("bucket", "last_modified_date")
    assert schema_columns("struct<bucket:string,e_tag:string>", "ORC") == ("bucket", "e_tag")
    assert deliveries(["p/data/", "p/2026-12-05T01-00Z/", "p/hive/", "p/2026-12-06T00-00Z/",
                       "p/2026-12-06T00-00Z-old/"]) == ["p/2026-12-06T00-00Z/", "p/2026-12-05T01-00Z/"]
    with pytest.raises(ValueError, match=r"^is not a JSON object$"):
        parse_manifest(b"[]")
    unnamed = {"fileFormat": "CSV", "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag",
               "creationTimestamp": "1", "files": []}
    with pytest.raises(ValueError, match=r"^has no sourceBucket$"):
        parse_manifest(json.dumps(unnamed).encode())


def test_an_inventory_is_read_with_the_system_allocator_and_the_pool_restored(tmp_path: Path) -> None:
    """Arrow's jemalloc pool keeps what each batch freed (make bench: 36-46 MB more at the peak of 1M
    keys); the reads use the system allocator, and the process's pool is left as it was."""
    path = tmp_path / "data.csv.gz"
    path.write_bytes(data_file([Row("lake", "a.parquet", 5, 1_700_000_000_000, "e1")], "CSV", CSV_FIELDS))
    manifest = InventoryManifest(source_bucket="lake", file_format="CSV", files=(), created=0.0,
                                 columns=schema_columns(file_schema("CSV", CSV_FIELDS), "CSV"))
    before = pa.default_memory_pool().backend_name
    seen: list[str] = []
    for objects in read_objects(path, manifest, bucket="lake", prefix=""):
        seen.append(pa.default_memory_pool().backend_name)
        assert [o.key for o in objects] == ["a.parquet"]
    assert seen == ["system"] and pa.default_memory_pool().backend_name == before != "system"
