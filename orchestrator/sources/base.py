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
