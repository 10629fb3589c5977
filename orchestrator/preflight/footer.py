"""Reading a parquet file's footer, and a sample of its data, through ranged reads.

Only the bytes pyarrow asks for cross the network: the last 64 KiB first (which holds the footer of
almost every file), then whatever else a read needs, fetched on demand and counted. A sample of the
first rows of the first row group reads each of its columns through a buffered stream whose first
read is sized from the footer (the dictionary page, the sampled rows' share of the column chunk, and
one page more), so that one ranged read per column usually holds every page the rows need; pyarrow
decodes whole pages, and stops reading once it has the rows. A column whose first pages are larger
than four such reads (a writer that made a page of the whole column chunk) is left out of the sample
rather than read whole.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import FooterError

TAIL = 64 * 1024  # what pyarrow reads first (its default footer read size)
PAGE = 1024 * 1024  # pyarrow's default data page size: the slack past a sample's share of a column
ALLOWANCE = 4  # a sampled column reads at most this many times its first read
Reader = Callable[[int, int], bytes]  # (start, end) -> bytes [start, end)


class RangedFile(io.RawIOBase):
    """A read-only, seekable file over ranged reads (for pyarrow's parquet reader), keeping the last
    ``tail`` bytes, fetched first, where the footer is."""

    def __init__(self, read: Reader, size: int, *, tail: int = TAIL) -> None:
        self._read = read
        self._size = size
        self._pos = 0
        self.fetched = 0
        self.reads = 0  # round trips
        self.allowance: int | None = None  # bytes the reads may still fetch (None: no limit)
        start = max(0, size - tail) if tail else size
        self._tail_start = start
        self._tail = self._fetch(start, size) if tail else b""

    def _fetch(self, start: int, end: int) -> bytes:
        if self.allowance is not None:
            if end - start > self.allowance:
                raise _TooLarge
            self.allowance -= end - start
        data = self._read(start, end)
        self.fetched += len(data)
        self.reads += 1
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), max(0, self._size - self._pos))
        if want == 0:
            return 0
        start, end = self._pos, self._pos + want
        if start >= self._tail_start:
            data = self._tail[start - self._tail_start:end - self._tail_start]
        else:
            data = self._fetch(start, end)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


@dataclass(frozen=True, slots=True)
class Footer:
    schema: pa.Schema
    num_rows: int
    num_row_groups: int
    bytes_fetched: int
    first_rows: pa.Table | None = None  # the rows read of the first row group (the sample)
    sampled: int | None = None  # the most rows the sample was to hold (None: the whole first row group)
    round_trips: int = 0
    unsampled: tuple[str, ...] = ()  # columns to sample whose first pages were too large to read


class _TooLarge(Exception):
    """A sampled column asked for more than its allowance."""


Columns = Callable[[pa.Schema], Sequence[str]]  # the file's schema -> the columns to sample


def read_footer(read: Reader, size: int, *, rows: int | None = 0, columns: Columns | None = None) -> Footer:
    """The schema and row count of the parquet object of ``size`` bytes behind ``read``, and a sample
    of its data: the first ``rows`` rows of the first row group (None: all of it; 0: no data) of the
    columns ``columns`` picks (None: every column)."""
    if size < 12:
        raise FooterError(f"not a parquet file ({size} bytes)")
    raw = RangedFile(read, size)
    try:
        parquet = pq.ParquetFile(raw)
        meta = parquet.metadata
        schema = parquet.schema_arrow
        first, unsampled = None, []
        if rows != 0 and meta.num_row_groups and meta.row_group(0).num_rows:
            names = list(schema.names if columns is None else columns(schema))
            if names and rows is not None:
                sampled = {}
                for name in names:
                    try:
                        sampled[name] = _head(raw, meta, name, rows)
                    except _TooLarge:
                        unsampled.append(name)
                first = pa.table(sampled) if sampled else None
            elif names:
                first = parquet.read_row_group(0, columns=names)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise FooterError(f"not a readable parquet file: {exc}") from exc
    return Footer(schema=schema, num_rows=meta.num_rows, num_row_groups=meta.num_row_groups,
                  bytes_fetched=raw.fetched, first_rows=first, sampled=rows, round_trips=raw.reads,
                  unsampled=tuple(unsampled))


def _head(raw: RangedFile, meta: pq.FileMetaData, name: str, rows: int) -> pa.ChunkedArray:
    """The first ``rows`` values of column ``name`` in the first row group, reading its column chunk
    through a buffer sized so that its first read most likely holds them; :class:`_TooLarge` when
    they need more than :data:`ALLOWANCE` such reads."""
    group = meta.row_group(0)
    buffer = PAGE // 16
    for i in range(group.num_columns):
        chunk = group.column(i)
        if chunk.path_in_schema != name and not chunk.path_in_schema.startswith(name + "."):
            continue
        start = chunk.data_page_offset
        if chunk.has_dictionary_page and 0 < (chunk.dictionary_page_offset or 0) < start:
            start = chunk.dictionary_page_offset
        dictionary = chunk.data_page_offset - start
        share = (chunk.total_compressed_size - dictionary) * min(rows, group.num_rows) // group.num_rows
        buffer = max(buffer, min(chunk.total_compressed_size, dictionary + share + PAGE))
    reader = pq.ParquetFile(raw, metadata=meta, buffer_size=buffer, pre_buffer=False)
    raw.allowance = ALLOWANCE * buffer
    try:
        batch = next(reader.iter_batches(batch_size=rows, row_groups=[0], columns=[name], use_threads=False))
    finally:
        raw.allowance = None
    return pa.chunked_array([batch.column(0)])
