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

No network here: the file is on disk, one :mod:`orchestrator.sources.s3_inventory` has downloaded and checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import repeat
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ..models import StoredObject
from .s3_inventory_manifest import NEEDED, VERSIONS, InventoryManifest

_TYPES = {"bucket": pa.string(), "key": pa.string(), "size": pa.int64(),
          "last_modified_date": pa.timestamp("ms", tz="UTC"), "e_tag": pa.string(),
          "is_latest": pa.bool_(), "is_delete_marker": pa.bool_()}
_UNITS_PER_MS = {"us": 1000, "ns": 1_000_000}
BATCH_ROWS = 8192  # rows of a Parquet or ORC batch
BLOCK_BYTES = 1 << 18  # bytes of CSV per batch: about 2,500 rows (larger blocks: more memory, no faster)


def read_objects(path: Path, manifest: InventoryManifest, *, bucket: str, prefix: str,
                 ) -> Iterator[list[StoredObject]]:
    """The objects of the data file at ``path``, a batch at a time; ``ValueError`` for a file that is
    not one of the manifest's format and fields."""
    with _system_allocator():
        try:
            for batch in _batches(path, manifest):
                yield batch_objects(batch, bucket=bucket, prefix=prefix,
                                    encoded=manifest.file_format == "CSV")
        except (pa.ArrowException, KeyError) as exc:
            raise ValueError(f"is not a {manifest.file_format} inventory file ({exc})") from exc


@contextmanager
def _system_allocator() -> Iterator[None]:
    """Arrow's default pool (jemalloc) keeps what a read freed, batch after batch: 36-46 MB more at the
    peak of a 1M-key inventory (``python -m bench inventory_scale``) than the system allocator, at the
    same speed; the reads use the system's, the rest of the process keeps its pool (an array frees
    into the pool it came from)."""
    before = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(before)


def _batches(path: Path, manifest: InventoryManifest) -> Iterator[pa.RecordBatch]:
    columns = [c for c in (*NEEDED, *VERSIONS) if c in manifest.columns]
    if manifest.file_format == "CSV":
        yield from pcsv.open_csv(
            pa.input_stream(str(path), compression="gzip"),
            read_options=pcsv.ReadOptions(column_names=list(manifest.columns), block_size=BLOCK_BYTES),
            convert_options=pcsv.ConvertOptions(column_types={c: _TYPES[c] for c in columns},
                                                include_columns=columns))
    elif manifest.file_format == "Parquet":
        yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns)
    else:
        import pyarrow.dataset as ds  # 40 MB more of the process: imported for an ORC inventory only

        yield from ds.dataset(path, format="orc").to_batches(batch_size=BATCH_ROWS, columns=columns)


def batch_objects(batch: pa.RecordBatch, *, bucket: str, prefix: str, encoded: bool) -> list[StoredObject]:
    """The objects of one batch: the current versions in ``bucket`` under ``prefix``, "folder"
    markers left out. Rows are chosen by pyarrow, in C; the objects are made from whole columns."""
    if encoded:  # a CSV key is decoded first, the way the lister decodes one (``+`` is a space)
        keys = [unquote_plus(k) if "%" in k or "+" in k else k for k in batch.column("key").to_pylist()]
        batch = batch.set_column(batch.schema.get_field_index("key"), "key", pa.array(keys, pa.string()))
    key = batch.column("key")
    keep = pc.and_(pc.equal(batch.column("bucket"), bucket),
                   pc.and_(pc.starts_with(key, prefix), pc.invert(pc.ends_with(key, "/"))))
    names = batch.schema.names
    if "is_latest" in names:
        keep = pc.and_(keep, pc.fill_null(batch.column("is_latest"), True))
    if "is_delete_marker" in names:
        keep = pc.and_(keep, pc.invert(pc.fill_null(batch.column("is_delete_marker"), False)))
    rows = batch.filter(pc.fill_null(keep, False))
    kept: list[str] = rows.column("key").to_pylist()
    etags = pc.fill_null(pc.utf8_trim(rows.column("e_tag"), '"'), "").to_pylist()
    url, cut, count = f"s3://{bucket}/", len(prefix), len(kept)
    return list(map(StoredObject._make, zip(
        [url + k for k in kept], repeat(bucket, count), kept, [k[cut:] for k in kept],
        pc.fill_null(rows.column("size"), 0).to_pylist(), etags,
        _seconds(rows.column("last_modified_date")).to_pylist(), etags, repeat("inventory", count),
        strict=True)))


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
