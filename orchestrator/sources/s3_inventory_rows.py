"""The rows of one S3 Inventory data file, read with pyarrow in record batches, to objects.

CSV files are gzip'd, with no header, their columns in the manifest's ``fileSchema`` order and every
key URL-encoded (``+`` for a space); Parquet and ORC files name their columns (``bucket``, ``key``,
``size``, ``last_modified_date``, ``e_tag``, ``is_latest``, ``is_delete_marker``) and hold keys as
they are. Only the columns an object is made of are read, a batch at a time: a data file of millions
of rows never sits in memory whole.

An object is made with the values the S3 lister gives for it (:mod:`orchestrator.sources.s3_listing`):
the ETag without quotes as version and checksum, LastModified to the millisecond, in seconds. Rows of
another bucket, outside the prefix, "folder" markers, non-current versions and delete markers are left
out.

No network here: the file is one :mod:`orchestrator.sources.s3_inventory` has downloaded and checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import unquote_plus

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.orc as porc
import pyarrow.parquet as pq

from ..models import StoredObject
from .s3_inventory_manifest import NEEDED, VERSIONS, InventoryManifest

_TYPES = {"bucket": pa.string(), "key": pa.string(), "size": pa.int64(),
          "last_modified_date": pa.timestamp("ms", tz="UTC"), "e_tag": pa.string(),
          "is_latest": pa.bool_(), "is_delete_marker": pa.bool_()}
_UNITS_PER_MS = {"us": 1000, "ns": 1_000_000}
BATCH_ROWS = 65_536


def read_objects(file: IO[bytes], manifest: InventoryManifest, *, bucket: str, prefix: str,
                 ) -> Iterator[list[StoredObject]]:
    """The objects of one data file, a batch at a time; ``ValueError`` for a file that is not one of
    the manifest's format and fields."""
    try:
        for batch in _batches(file, manifest):
            yield batch_objects(batch, bucket=bucket, prefix=prefix, encoded=manifest.file_format == "CSV")
    except (pa.ArrowException, KeyError) as exc:
        raise ValueError(f"is not a {manifest.file_format} inventory file ({exc})") from exc


def _batches(file: IO[bytes], manifest: InventoryManifest) -> Iterator[pa.RecordBatch]:
    columns = [c for c in (*NEEDED, *VERSIONS) if c in manifest.columns]
    if manifest.file_format == "CSV":
        yield from pcsv.open_csv(
            pa.input_stream(file, compression="gzip"),
            read_options=pcsv.ReadOptions(column_names=list(manifest.columns), block_size=4 << 20),
            convert_options=pcsv.ConvertOptions(column_types={c: _TYPES[c] for c in columns},
                                                include_columns=columns))
    elif manifest.file_format == "Parquet":
        yield from pq.ParquetFile(file).iter_batches(batch_size=BATCH_ROWS, columns=columns)
    else:
        orc = porc.ORCFile(file)
        for stripe in range(orc.nstripes):
            yield orc.read_stripe(stripe, columns=columns)


def batch_objects(batch: pa.RecordBatch, *, bucket: str, prefix: str, encoded: bool) -> list[StoredObject]:
    """The objects of one batch: the current versions in ``bucket`` under ``prefix``."""
    keep = pc.equal(batch.column("bucket"), bucket)
    names = batch.schema.names
    if "is_latest" in names:
        keep = pc.and_(keep, pc.fill_null(batch.column("is_latest"), True))
    if "is_delete_marker" in names:
        keep = pc.and_(keep, pc.invert(pc.fill_null(batch.column("is_delete_marker"), False)))
    if not encoded and prefix:  # a CSV key is compared once decoded
        keep = pc.and_(keep, pc.starts_with(batch.column("key"), prefix))
    rows = batch.filter(pc.fill_null(keep, False))
    keys: list[str] = rows.column("key").to_pylist()
    sizes: list[int | None] = rows.column("size").to_pylist()
    etags: list[str | None] = rows.column("e_tag").to_pylist()
    modified: list[float] = _seconds(rows.column("last_modified_date")).to_pylist()
    url, cut = f"s3://{bucket}/", len(prefix)
    objects: list[StoredObject] = []
    append, make = objects.append, StoredObject
    for key, size, etag, seconds in zip(keys, sizes, etags, modified, strict=True):
        if encoded and ("%" in key or "+" in key):
            key = unquote_plus(key)
        if key.endswith("/") or not key.startswith(prefix):
            continue
        tag = (etag or "").strip('"')
        append(make(url + key, bucket, key, key[cut:], size or 0, tag, seconds, tag, "inventory"))
    return objects


def _seconds(column: Any) -> Any:
    """A LastModifiedDate column in seconds since the epoch, by way of whole milliseconds (as the
    lister reads ``2024-01-01T00:00:00.123Z``): a timestamp of any unit, or milliseconds as integers
    (Parquet's ``int64 (TIMESTAMP_MILLIS)`` read without its annotation)."""
    if pa.types.is_timestamp(column.type):
        unit = column.type.unit
        column = column.cast(pa.int64())
        if unit == "s":
            column = pc.multiply(column, 1000)
        elif unit != "ms":
            column = pc.divide(column, _UNITS_PER_MS[unit])  # integers: whole milliseconds
    return pc.divide(column.cast(pa.float64()), 1000.0)
