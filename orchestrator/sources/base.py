"""The protocol every lister implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from ..models import StoredObject


class Source(Protocol):
    """Streams the objects under one manifest source, include/exclude already applied."""

    label: str

    def list(self) -> Iterator[StoredObject]:
        """Yield objects one page at a time; raise :class:`SourceError` naming the source."""
        ...

    def read(self, obj: StoredObject, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``start`` up to (not including) ``end`` of ``obj`` (ranged, never more than asked)."""
        ...
