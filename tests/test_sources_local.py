"""Local folders: every file below the folder, a version that sees rewrites, ranged reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.config.manifest import Settings, SourceConfig
from orchestrator.errors import SourceError
from orchestrator.sources.local import LocalSource
from orchestrator.sources.registry import make_source


def config(root: Path) -> SourceConfig:
    return SourceConfig(index=2, url=str(root), scheme="file", bucket="", prefix="", collection="c",
                        partition=None, pattern=None, include=("**",), exclude=(), endpoint_url=None,
                        region=None, credentials=None, root=root)


def test_lists_every_file_with_a_version_that_sees_rewrites(tmp_path: Path) -> None:
    for rel in ["b.parquet", "a/2.parquet", "a/1.parquet", "a/z/3.parquet", "c d/é.parquet"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(rel.encode())
    source = make_source(config(tmp_path), Settings())
    assert isinstance(source, LocalSource)
    listed = list(source.list())
    assert [o.relative_key for o in listed] == ["b.parquet", "a/1.parquet", "a/2.parquet", "a/z/3.parquet",
                                                "c d/é.parquet"]
    odd = listed[-1]
    assert odd.url == (tmp_path / "c d/é.parquet").as_uri() and odd.size == len("c d/é.parquet".encode())
    assert source.read(odd, 2, 5) == "c d/é.parquet".encode()[2:5]

    path = tmp_path / "b.parquet"
    before = listed[0]
    stat = path.stat()
    path.write_bytes(b"B.parquet")  # same size, same mtime: only the content differs
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = next(o for o in source.list() if o.relative_key == "b.parquet")
    assert after.version != before.version and after.checksum != before.checksum


def test_a_missing_folder_names_the_source(tmp_path: Path) -> None:
    source = make_source(config(tmp_path / "nope"), Settings())
    with pytest.raises(SourceError, match=r"^sources\[2\] file://.*/nope/: folder not found$"):
        list(source.list())
