"""Reading a parquet file's footer (and, for deep checks, its first row group) through ranged reads.

Only the bytes pyarrow asks for cross the network: the last 64 KiB first (which holds the footer of
almost every file), then whatever else a read needs, fetched on demand and counted.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import FooterError

TAIL = 64 * 1024  # what pyarrow reads first (its default footer read size)
Reader = Callable[[int, int], bytes]  # (start, end) -> bytes [start, end)


class RangedFile(io.RawIOBase):
    """A read-only, seekable file over ranged reads (for pyarrow's parquet reader), keeping the last
    ``tail`` bytes, fetched first, where the footer is."""

    def __init__(self, read: Reader, size: int, *, tail: int = TAIL) -> None:
        self._read = read
        self._size = size
        self._pos = 0
        self.fetched = 0
        start = max(0, size - tail) if tail else size
        self._tail_start = start
        self._tail = self._fetch(start, size) if tail else b""

    def _fetch(self, start: int, end: int) -> bytes:
        data = self._read(start, end)
        self.fetched += len(data)
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
    first_rows: pa.Table | None = None  # the first row group, with ``deep``


def read_footer(read: Reader, size: int, *, deep: bool = False) -> Footer:
    """The schema and row count of the parquet object of ``size`` bytes behind ``read``."""
    if size < 12:
        raise FooterError(f"not a parquet file ({size} bytes)")
    raw = RangedFile(read, size)
    try:
        parquet = pq.ParquetFile(raw)
        meta = parquet.metadata
        first = parquet.read_row_group(0) if deep and meta.num_row_groups else None
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise FooterError(f"not a readable parquet file: {exc}") from exc
    return Footer(schema=schema, num_rows=meta.num_rows, num_row_groups=meta.num_row_groups,
                  bytes_fetched=raw.fetched, first_rows=first)
