"""The protocol every import API implements, and what the wiring hands to targets that need it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from ..models import ImportRequest, JobInfo, StoredObject
from ..schema import CollectionSchema

# Bytes ``start`` up to (not including) ``end`` of an object of source number ``source``: how a target
# that performs the import itself (Milvus Lite) reads objects, without knowing what kind of store
# holds them. Raises :class:`orchestrator.errors.SourceError`.
ObjectReader = Callable[[int, StoredObject, int, "int | None"], bytes]


class Target(Protocol):
    """One import API. Methods raise :class:`orchestrator.errors.TargetError` subclasses only."""

    max_file_bytes: int | None  # the largest file one import takes (None: no documented limit)

    def object_ref(self, obj: StoredObject, url: str) -> str:
        """How this API names ``obj`` in a create call: ``url`` (the URL in the source's
        ``object_url_style``), or the object's key in the server's own bucket."""
        ...

    def create(self, request: ImportRequest) -> str:
        """Start one import job for one object; return the job id."""
        ...

    def progress(self, job_id: str) -> JobInfo:
        """The job's state, with its file name where the API gives it."""
        ...

    def describe(self, collection: str) -> CollectionSchema | None:
        """The collection's schema for the pre-flight check; None where this target cannot read it
        (no data-plane endpoint configured, or a collection still to be created)."""
        ...

    def list_jobs(self) -> Iterator[JobInfo]:
        """Every job the server still remembers (file names may be absent: ask ``progress``)."""
        ...
