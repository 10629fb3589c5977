"""S3 Inventory deliveries written the way AWS writes them, into a bucket of moto's server (or any S3
client): ``<folder><YYYY-MM-DDTHH-MMZ>/manifest.json`` and its data files under ``<folder>data/``.

  CSV      gzip'd, no header, every field quoted, keys URL-encoded (``+`` for a space, ``/`` kept)
  Parquet  columns bucket, key, version_id, is_latest, is_delete_marker, size,
           last_modified_date (int64 TIMESTAMP_MILLIS), e_tag, storage_class
  ORC      the same columns, last_modified_date an ORC timestamp
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import quote_plus

import pyarrow as pa
import pyarrow.orc as porc
import pyarrow.parquet as pq

CSV_FIELDS = ("Bucket", "Key", "Size", "LastModifiedDate", "ETag", "StorageClass")
CSV_VERSIONED = ("Bucket", "Key", "VersionId", "IsLatest", "IsDeleteMarker", "Size", "LastModifiedDate",
                 "ETag", "StorageClass")
# each field: its column, its Parquet declaration and its ORC type, as AWS writes the fileSchema
FIELDS = {"Bucket": ("bucket", "required binary", "string"), "Key": ("key", "required binary", "string"),
          "VersionId": ("version_id", "optional binary", "string"),
          "IsLatest": ("is_latest", "optional boolean", "boolean"),
          "IsDeleteMarker": ("is_delete_marker", "optional boolean", "boolean"),
          "Size": ("size", "optional int64", "bigint"),
          "LastModifiedDate": ("last_modified_date", "optional int64", "timestamp"),
          "ETag": ("e_tag", "optional binary", "string"),
          "StorageClass": ("storage_class", "optional binary", "string")}


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Row(NamedTuple):
    """One line of an inventory: an object version (or a delete marker)."""

    bucket: str
    key: str
    size: int
    modified_ms: int
    etag: str
    version_id: str = ""
    is_latest: bool = True
    is_delete_marker: bool = False


def rows_of(s3: Any, bucket: str) -> list[Row]:
    """What an inventory of ``bucket`` holds: every object as the store describes it."""
    rows = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            rows.append(Row(bucket, o["Key"], o["Size"], round(o["LastModified"].timestamp() * 1000),
                            o["ETag"].strip('"')))
    return rows


def iso(ms: int) -> str:
    """Milliseconds since the epoch as S3 writes a date (``2026-12-06T00:00:00.123Z``), exactly."""
    return (EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def csv_file(rows: Iterable[Row], fields: Sequence[str]) -> bytes:
    text = io.StringIO()
    out = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for r in rows:
        values = {"Bucket": r.bucket, "Key": quote_plus(r.key, safe="/"), "VersionId": r.version_id,
                  "IsLatest": str(r.is_latest).lower(), "IsDeleteMarker": str(r.is_delete_marker).lower(),
                  "Size": "" if r.is_delete_marker else str(r.size),
                  "LastModifiedDate": iso(r.modified_ms),
                  "ETag": "" if r.is_delete_marker else r.etag, "StorageClass": "STANDARD"}
        out.writerow([values[f] for f in fields])
    return gzip.compress(text.getvalue().encode(), compresslevel=1)


def table(rows: Sequence[Row], fields: Sequence[str], *, unit: str) -> pa.Table:
    columns: dict[str, pa.Array] = {
        "bucket": pa.array([r.bucket for r in rows], pa.string()),
        "key": pa.array([r.key for r in rows], pa.string()),
        "version_id": pa.array([r.version_id or None for r in rows], pa.string()),
        "is_latest": pa.array([r.is_latest for r in rows], pa.bool_()),
        "is_delete_marker": pa.array([r.is_delete_marker for r in rows], pa.bool_()),
        "size": pa.array([None if r.is_delete_marker else r.size for r in rows], pa.int64()),
        "last_modified_date": pa.array([r.modified_ms for r in rows], pa.int64()).cast(pa.timestamp("ms"))
        .cast(pa.timestamp(unit)),
        "e_tag": pa.array([None if r.is_delete_marker else r.etag for r in rows], pa.string()),
        "storage_class": pa.array(["STANDARD"] * len(rows), pa.string()),
    }
    return pa.table({FIELDS[f][0]: columns[FIELDS[f][0]] for f in fields})


def data_file(rows: Sequence[Row], file_format: str, fields: Sequence[str]) -> bytes:
    if file_format == "CSV":
        return csv_file(rows, fields)
    buf = io.BytesIO()
    if file_format == "Parquet":
        pq.write_table(table(rows, fields, unit="ms"), buf, compression="snappy")
    else:
        porc.write_table(table(rows, fields, unit="ns"), buf)
    return buf.getvalue()


def file_schema(file_format: str, fields: Sequence[str]) -> str:
    if file_format == "CSV":
        return ", ".join(fields)
    if file_format == "Parquet":
        declared = [f"{kind} {name}" + (" (TIMESTAMP_MILLIS)" if name == "last_modified_date" else
                                         " (UTF8)" if kind.endswith("binary") else "")
                    for name, kind, _ in (FIELDS[f] for f in fields)]
        return "message s3.inventory { " + "; ".join(declared) + ";}"
    return "struct<" + ",".join(f"{name}:{orc}" for name, _, orc in (FIELDS[f] for f in fields)) + ">"


def write_inventory(s3: Any, *, bucket: str, folder: str, source_bucket: str, rows: Sequence[Row],
                    file_format: str = "CSV", files: int = 1, versioned: bool = False,
                    when: datetime = datetime(2026, 12, 6, 0, 0, tzinfo=UTC),
                    fields: Sequence[str] | None = None) -> str:
    """A delivery of ``rows`` in ``files`` data files; the key of its manifest.json."""
    fields = fields or (CSV_VERSIONED if versioned else CSV_FIELDS)
    stamp = when.strftime("%Y-%m-%dT%H-%MZ")
    extension = {"CSV": "csv.gz", "Parquet": "parquet", "ORC": "orc"}[file_format]
    listed = []
    per_file = -(-len(rows) // files) if rows else 0
    for n in range(files):
        body = data_file(rows[n * per_file:(n + 1) * per_file], file_format, fields)
        key = f"{folder}data/{stamp}-{n:04}.{extension}"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        listed.append({"key": key, "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()})
    manifest = {"sourceBucket": source_bucket, "destinationBucket": f"arn:aws:s3:::{bucket}",
                "version": "2016-11-30", "creationTimestamp": str(int(when.timestamp() * 1000)),
                "fileFormat": file_format, "fileSchema": file_schema(file_format, fields), "files": listed}
    key = f"{folder}{stamp}/manifest.json"
    body = json.dumps(manifest).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3.put_object(Bucket=bucket, Key=f"{folder}{stamp}/manifest.checksum", Body=hashlib.md5(body).hexdigest())
    return key
