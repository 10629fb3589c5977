"""Local folders: for trying a manifest on a laptop and for the embedded demo.

The version of a file is its size, its modification time and a hash of its last 64 KiB (the parquet
footer lives there), so a rewritten file is seen as changed even when its size stays the same.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SourceError
from ..models import StoredObject
from ..urls import file_url

if TYPE_CHECKING:
    from ..manifest import Settings, SourceConfig

_TAIL = 64 * 1024


def build(config: SourceConfig, settings: Settings) -> LocalSource:
    """A lister for a manifest's local folder (no client: the file system is one)."""
    assert config.root is not None
    return LocalSource(config.root, label=config.label)


class LocalSource:
    def __init__(self, root: Path, *, label: str) -> None:
        self.root = root
        self.label = label

    def list(self) -> Iterator[StoredObject]:
        if not self.root.is_dir():
            raise SourceError(f"{self.label}: folder not found")
        try:
            for folder, dirs, files in os.walk(self.root, onerror=_raise):
                dirs.sort()
                for name in sorted(files):
                    path = Path(folder, name)
                    yield self._object(path, path.relative_to(self.root).as_posix())
        except OSError as exc:
            raise SourceError(f"{self.label}: {exc.strerror or exc} ({exc.filename})") from exc

    def read(self, obj: StoredObject, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``start`` up to (not including) ``end`` of the object; all of it by default."""
        try:
            with open(obj.key, "rb") as f:
                f.seek(start)
                return f.read() if end is None else f.read(max(0, end - start))
        except OSError as exc:
            raise SourceError(f"{self.label}: cannot read {obj.key}: {exc.strerror or exc}") from exc

    def _object(self, path: Path, relative: str) -> StoredObject:
        stat = path.stat()
        with open(path, "rb") as f:
            f.seek(max(0, stat.st_size - _TAIL))
            tail = hashlib.sha256(f.read()).hexdigest()[:16]
        return StoredObject(url=file_url(path), bucket="", key=str(path), relative_key=relative,
                            size=stat.st_size, version=f"{stat.st_size}-{stat.st_mtime_ns}-{tail}",
                            modified=stat.st_mtime, checksum=tail)


def _raise(exc: OSError) -> None:
    raise exc
