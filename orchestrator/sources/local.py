"""Local folders: for trying a manifest on a laptop and for the embedded demo. A folder is named by a
``file://`` URL or a path relative to the manifest; its spec (:data:`SPEC`) is at the bottom.

The version of a file is its size, its modification time and a hash of its last 64 KiB (the parquet
footer lives there), so a rewritten file is seen as changed even when its size stays the same.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config.manifest import Settings, SourceConfig
from ..config.plugins import Location, StoreSpec
from ..config.reader import Reader
from ..config.urls import file_url
from ..errors import SourceError
from ..models import StoredObject
from ..terminal import clip

_TAIL = 64 * 1024
log = logging.getLogger("orchestrator")


def build(config: SourceConfig, settings: Settings) -> LocalSource:
    """A lister for a manifest's local folder (no client: the file system is one)."""
    assert config.root is not None
    return LocalSource(config.root, label=config.label)


class LocalSource:
    def __init__(self, root: Path, *, label: str) -> None:
        self.root = root
        self.label = label

    def list(self) -> Iterator[StoredObject]:
        """Every file under the folder, in order. What cannot be listed or read under it (a symlink to
        nothing, a symlink loop, an unreadable file or sub-folder: ``lost+found``) is skipped with one
        warning naming it, and the rest is listed; an unreadable folder itself is a :class:`SourceError`."""
        if not self.root.is_dir():
            raise SourceError(f"{self.label}: folder not found")
        for folder, dirs, files in os.walk(self.root, onerror=self._unlistable):
            dirs.sort()
            for name in sorted(files):
                path = Path(folder, name)
                relative = path.relative_to(self.root).as_posix()
                try:
                    obj = self._object(path, relative)
                except OSError as exc:
                    self._skip(relative, exc, path)
                    continue
                yield obj

    def _unlistable(self, exc: OSError) -> None:
        if exc.filename is None or Path(exc.filename) == self.root:
            raise SourceError(f"{self.label}: {exc.strerror or exc} ({exc.filename})") from exc
        self._skip(Path(exc.filename).relative_to(self.root).as_posix() + "/", exc, Path(exc.filename))

    def _skip(self, relative: str, exc: OSError, path: Path) -> None:
        if exc.errno == errno.ELOOP:
            why = "a symlink loop"
        elif exc.errno == errno.ENOENT and path.is_symlink():
            why = f"a symlink to nothing (no {os.readlink(path)})"
        else:
            why = f"cannot be read ({exc.strerror or exc})"
        log.warning("%s: skipped %s: %s", self.label, clip(relative), why,
                    extra={"event": "skipped", "source": self.label})

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


def _locate(url: str, base_dir: Path) -> Location | None:
    """The folder a ``file://`` URL or a plain path names (relative to the manifest), else None."""
    if url.startswith("file://"):
        return Location("", "", Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).resolve())
    if "://" in url:
        return None
    return Location("", "", (base_dir / url).resolve())


def _read_keys(_r: Reader, _s: dict[str, Any], _p: str, _url: str, _base_dir: Path) -> dict[str, Any]:
    return {}


def _style_problem(_style: str, _bucket: str, _region: str | None, _endpoint_url: str | None) -> str:
    return "local folders keep their file:// URL: use native"


def _object_url(obj: StoredObject, _style: str, _region: str | None, _endpoint_url: str | None) -> str:
    return obj.url


def _key(source: SourceConfig) -> str:
    assert source.root is not None
    return file_url(source.root) + "/"


SPEC = StoreSpec(
    scheme="file",
    spellings=("file",),
    url_forms=("file:///folder", "a folder relative to the manifest"),
    locate=_locate,
    read_keys=_read_keys,
    style_problem=_style_problem,
    object_url=_object_url,
    key=_key,
    build=build,
)
