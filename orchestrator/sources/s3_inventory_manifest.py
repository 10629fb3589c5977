"""An S3 Inventory's ``manifest.json``, read, and the choice of the newest delivery.

S3 Inventory delivers to ``<destination-prefix>/<source-bucket>/<config-ID>/``: each delivery is a
folder ``YYYY-MM-DDTHH-MMZ/`` holding ``manifest.json`` (written once its data files are complete),
and the data files under ``data/``. The manifest names the source bucket, the format (CSV, ORC or
Parquet), the fields (``fileSchema``), every data file with its size and MD5, and when the inventory
began (``creationTimestamp``, milliseconds).

No I/O here: the bytes come from :mod:`orchestrator.sources.s3_inventory`. Errors are ``ValueError``
with a short reason, which the caller turns into a :class:`SourceError` naming the manifest's URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

FORMATS = {"csv": "CSV", "orc": "ORC", "parquet": "Parquet"}
# the fields a StoredObject is made of, as the data files' columns name them (Parquet and ORC name them
# so; CSV's fileSchema spells them Bucket, Key, Size, LastModifiedDate, ETag, read into these names)
NEEDED = {"bucket": "Bucket", "key": "Key", "size": "Size", "last_modified_date": "LastModifiedDate",
          "e_tag": "ETag"}
VERSIONS = ("is_latest", "is_delete_marker")  # there when the inventory lists every version

_DELIVERY = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}Z$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_PARQUET_FIELD = re.compile(r"(?:required|optional|repeated)\s+\w+\s+(\w+)")
_ORC_FIELD = re.compile(r"[<,]\s*(\w+)\s*:")


@dataclass(frozen=True, slots=True)
class DataFile:
    """One data file of a delivery: its key in the destination bucket, its size and its MD5 (hex)."""

    key: str
    size: int
    md5: str


@dataclass(frozen=True, slots=True)
class InventoryManifest:
    """What one ``manifest.json`` says. ``columns`` are the data files' columns in their order, named
    as Parquet and ORC name them (``last_modified_date``, ``e_tag``) whatever the format."""

    source_bucket: str
    file_format: str  # "CSV", "ORC" or "Parquet"
    columns: tuple[str, ...]
    files: tuple[DataFile, ...]
    created: float  # seconds since the epoch: when the inventory began scanning the bucket

    @property
    def versioned(self) -> bool:
        """Whether the inventory lists every version (and delete markers), not only the current ones."""
        return all(c in self.columns for c in VERSIONS)


def parse_manifest(body: bytes) -> InventoryManifest:
    """A ``manifest.json``; ``ValueError`` naming what is wrong."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"is not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise ValueError("is not a JSON object")
    file_format = FORMATS.get(_text(doc, "fileFormat").lower())
    if file_format is None:
        raise ValueError(f"has fileFormat {doc['fileFormat']!r}, not CSV, ORC or Parquet")
    columns = schema_columns(_text(doc, "fileSchema"), file_format)
    missing = [spelled for name, spelled in NEEDED.items() if name not in columns]
    if missing:
        raise ValueError(f"lists no {', '.join(missing)} (add these fields to the inventory configuration)")
    try:
        created = int(doc.get("creationTimestamp", "")) / 1000
        files = tuple(DataFile(key=str(f["key"]), size=int(f["size"]), md5=str(f["MD5checksum"]).lower())
                      for f in doc["files"])
    except (KeyError, TypeError, ValueError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
        raise ValueError(f"has no valid creationTimestamp or files list ({problem})") from exc
    return InventoryManifest(source_bucket=_text(doc, "sourceBucket"), file_format=file_format,
                             columns=columns, files=files, created=created)


def schema_columns(schema: str, file_format: str) -> tuple[str, ...]:
    """The column names a ``fileSchema`` declares: CSV's ``Bucket, Key, ...`` in snake case; Parquet's
    message type (``required binary key (UTF8);``) and ORC's ``struct<key:string,...>`` as written."""
    if file_format == "CSV":
        return tuple(_CAMEL.sub("_", name.strip()).lower() for name in schema.split(",") if name.strip())
    return tuple(_PARQUET_FIELD.findall(schema) if file_format == "Parquet" else _ORC_FIELD.findall(schema))


def deliveries(folders: Iterable[str]) -> list[str]:
    """The delivery folders among sub-folders (``2026-12-06T00-00Z/``, as ListObjectsV2's common
    prefixes give them), newest first; ``data/``, ``hive/`` and the rest are left out."""
    return sorted((f for f in folders if _DELIVERY.match(f.rstrip("/").rpartition("/")[2])), reverse=True)


def _text(doc: dict[str, Any], field: str) -> str:
    value = doc.get(field)
    if not isinstance(value, str) or not value:
        raise ValueError(f"has no {field}")
    return value
