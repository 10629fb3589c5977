"""A source that invents objects without any I/O, for measuring everything but listing."""

from __future__ import annotations

from collections.abc import Iterator

from orchestrator.models import StoredObject


class SyntheticSource:
    """``count`` objects under ``s3://bench/data/``, in key order like a real listing."""

    def __init__(self, count: int, *, label: str = "sources[0] s3://bench/data/") -> None:
        self.count = count
        self.label = label

    def list(self) -> Iterator[StoredObject]:
        for i in range(self.count):
            rel = f"part-{i:08}.parquet"
            yield StoredObject(url=f"s3://bench/data/{rel}", bucket="bench", key=f"data/{rel}",
                               relative_key=rel, size=1 << 20, version=f"etag-{i:08}", modified=0.0)

    def read(self, obj: StoredObject, start: int = 0, end: int | None = None) -> bytes:
        raise NotImplementedError("synthetic objects have no content")
