"""The pre-flight check's I/O: a file's footer and a sample of its data through ranged reads, its
collection's schema (a saved describe output, or the target's describe call, once per collection per
run), then the pure rules of :mod:`orchestrator.preflight.rules`."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pyarrow as pa

from ..config.manifest import FixedSizeList, Manifest
from ..errors import FatalTargetError, FooterError, SchemaError, TargetError
from ..models import PlanItem
from ..sources.base import ObjectReader
from .footer import read_footer
from .rules import GB, Version, Versions, check, parse_version, sample_columns, size_problems
from .schema import CollectionSchema, load_file

log = logging.getLogger("orchestrator")


class Describes(Protocol):
    """What the check needs of a target (``orchestrator.targets.base.Target``): the largest file it takes
    and its collection's schema."""

    max_file_bytes: int | None

    def describe(self, collection: str) -> CollectionSchema | None:
        """The collection's schema, or None when the target cannot say."""
        ...


@runtime_checkable
class KnowsVersion(Protocol):
    """A target whose API tells the server's version (the pre-flight rules differ by version)."""

    def server_version(self) -> Version | None:
        """(major, minor), or None when the server does not say."""
        ...


@dataclass(frozen=True, slots=True)
class Inspection:
    rows: int | None  # from the footer; None when the file could not be read as parquet
    problems: list[str] = field(default_factory=list)
    bytes_read: int = 0
    warnings: list[str] = field(default_factory=list)  # undecided (server version) or unchecked
    round_trips: int = 0  # ranged reads of the object
    unchecked: str | None = None  # why the file was not checked against a schema (none known)


class Preflight:
    """Thread-safe: submit workers call :meth:`inspect` concurrently."""

    def __init__(self, target: Describes, manifest: Manifest, read: ObjectReader, *,
                 deep: bool = False) -> None:
        self.target = target
        self.manifest = manifest
        self.read = read
        settings = manifest.settings
        # the rows of each file's data read (None: the whole first row group, with ``deep``; 0: none)
        self.rows: int | None = None if deep else settings.preflight_sample_rows
        self.size_limit = int(settings.max_file_gb * GB) if settings.max_file_gb else target.max_file_bytes
        self._schemas: dict[str, CollectionSchema | None] = {}
        self._why: dict[str, str] = {}  # why a collection has no schema
        self._versions: Versions | None = None
        self._lock = threading.Lock()

    def versions(self) -> Versions:
        """The server versions the rules judge for: what the server says (targets that can ask), else
        ``settings.milvus_version``, else what the target type implies; asked once."""
        with self._lock:
            if self._versions is None:
                self._versions = self._find_versions()
            return self._versions

    def _find_versions(self) -> Versions:
        version = None
        if isinstance(self.target, KnowsVersion):
            try:
                version = self.target.server_version()
            except FatalTargetError:
                raise
            except TargetError as exc:
                log.warning("cannot read the server's version (%s): settings.milvus_version, if set, "
                            "decides", exc, extra={"event": "no-version"})
        setting = self.manifest.settings.milvus_version
        if version is None and setting is not None:
            version = parse_version(setting)
        if version is not None:
            return Versions.exactly(version)
        return Versions(low=self.manifest.target.capabilities.implied_version)

    def schema(self, collection: str) -> CollectionSchema | None:
        """The collection's schema, or None (with one warning) when it cannot be had."""
        with self._lock:
            if collection in self._schemas:
                return self._schemas[collection]
            schema = self._fetch(collection)
            self._schemas[collection] = schema
            return schema

    def unchecked(self, collection: str) -> str:
        """Why files of ``collection`` are not checked against a schema (after :meth:`schema` gave None)."""
        with self._lock:
            return self._why.get(collection, "no schema known")

    def _fetch(self, collection: str) -> CollectionSchema | None:
        path = self.manifest.schema_files.get(collection)
        try:
            schema = load_file(path) if path is not None else self.target.describe(collection)
        except FatalTargetError as exc:
            if exc.http_status != 404:
                raise
            self._why[collection] = "the server has no describe call: set schema_files"
            log.warning("collection %s: this server has no describe call; files are checked without "
                        "its schema", collection, extra={"event": "no-schema"})
            return None
        except (TargetError, SchemaError) as exc:
            self._why[collection] = f"cannot read the collection's schema ({exc})"
            log.warning("collection %s: cannot read its schema (%s); files are checked without it",
                        collection, exc, extra={"event": "no-schema"})
            return None
        if schema is None:
            self._why[collection] = ("no schema known for the collection: set schema_files, or "
                                     "target.cluster_endpoint for Zilliz Cloud")
            log.info("collection %s: no schema to check against (set schema_files, or target."
                     "cluster_endpoint for Zilliz Cloud)", collection, extra={"event": "no-schema"})
        return schema

    def inspect(self, item: PlanItem) -> Inspection:
        """Every problem of ``item``'s file; raises :class:`SourceError` when it cannot be read."""
        assert item.route is not None
        obj = item.obj

        def read(start: int, end: int) -> bytes:
            return self.read(item.source, obj, start, end)

        collection = item.route.collection

        def columns(found: pa.Schema) -> list[str]:
            schema = self.schema(collection)
            if schema is None:
                return []
            return list(found.names) if self.rows is None else sample_columns(found, schema)

        try:
            footer = read_footer(read, obj.size, rows=self.rows, columns=columns)
        except FooterError as exc:
            return Inspection(rows=None, problems=[str(exc)])
        schema = self.schema(collection)
        if schema is None:
            return Inspection(rows=footer.num_rows, problems=size_problems(obj.size, self.size_limit),
                              bytes_read=footer.bytes_fetched, round_trips=footer.round_trips,
                              unchecked=self.unchecked(item.route.collection))
        found = check(footer, schema, size=obj.size, size_limit=self.size_limit, versions=self.versions(),
                      fixed_size_list_ok=self.manifest.settings.fixed_size_list is FixedSizeList.ALLOW)
        for warning in found.warnings:
            log.warning("%s: pre-flight: %s", obj.url, warning,
                        extra={"event": "preflight-doubt", "url": obj.url, "error": warning})
        return Inspection(rows=footer.num_rows, problems=found.problems, bytes_read=footer.bytes_fetched,
                          warnings=found.warnings, round_trips=footer.round_trips)
