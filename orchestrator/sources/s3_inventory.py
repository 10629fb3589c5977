"""S3 Inventory as the listing: the objects of a source read from the newest inventory S3 delivered,
instead of listing the bucket (one GET per data file instead of one ListObjectsV2 call per 1,000 keys).

The inventory URL is where S3 Inventory delivers (``s3://dest/prefix/source-bucket/config-ID/``: the
newest ``YYYY-MM-DDTHH-MMZ/manifest.json`` below it is read; a folder without one is a delivery still
being written, and the one before it is taken) or one ``manifest.json``'s URL. Its data files are read
from the bucket the manifest was found in, one at a time: each is downloaded to a temporary file while
its MD5 is computed, checked against the manifest's, and only then read (in record batches, by
:mod:`orchestrator.sources.s3_inventory_rows`), so that a damaged file yields nothing.

The objects are those the S3 lister would give (``found="inventory"``): a later listing of an unchanged
object is the same version to the ledger. Objects written after the inventory began (``created``) are
not in it: events or the backfill listing find them.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import SourceError
from ..models import StoredObject
from ..redact import shown_url
from .s3 import describe_boto_error, make_client
from .s3_inventory_manifest import DataFile, InventoryManifest, deliveries, parse_manifest
from .s3_inventory_rows import read_objects

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ..config.manifest import Settings, SourceConfig

MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def make_inventory(url: str, source: SourceConfig, settings: Settings) -> S3Inventory:
    """The inventory at ``url`` of the S3 source ``source``, read with a client made as the source's
    lister makes its own (the inventory bucket is reached on the same endpoint, region and profile)."""
    return S3Inventory(make_client(source, settings), url=url, label=source.label, bucket=source.bucket,
                       prefix=source.prefix)


class S3Inventory:
    """The objects of one source (``bucket``, ``prefix``) in the newest inventory at ``url``."""

    def __init__(self, client: S3Client, *, url: str, label: str, bucket: str, prefix: str) -> None:
        scheme, _, rest = url.partition("://")
        self.where, _, self.path = rest.partition("/")  # the inventory's bucket, and the key or folder
        if scheme != "s3" or not self.where:
            raise SourceError(f"{label}: inventory {shown_url(url)} is not an s3://bucket/prefix/ URL")
        self.client = client
        self.label = f"{label} (inventory {shown_url(url)})"
        self.bucket = bucket
        self.prefix = prefix
        self._manifest: tuple[str, InventoryManifest] | None = None

    @property
    def created(self) -> float:
        """When the inventory in use began scanning the bucket (seconds since the epoch): objects
        modified since may be missing from it."""
        return self.manifest()[1].created

    def manifest(self) -> tuple[str, InventoryManifest]:
        """The key of the manifest in use and what it says, read once."""
        if self._manifest is None:
            if self.path.rpartition("/")[2] == MANIFEST:
                key, body = self.path, self._get(self.path, missing_ok=False) or b""
            else:
                key, body = self._newest()
            self._manifest = key, self._parse(key, body)
        return self._manifest

    def objects(self) -> Iterator[StoredObject]:
        """Every current object of the source in the inventory, data file after data file."""
        _, manifest = self.manifest()
        for data in manifest.files:
            with self._download(data) as path:
                try:
                    for batch in read_objects(path, manifest, bucket=self.bucket, prefix=self.prefix):
                        yield from batch
                except ValueError as exc:
                    raise SourceError(f"{self.label}: {self._url(data.key)} {exc}") from exc

    def _newest(self) -> tuple[str, bytes]:
        """The key and the bytes of the newest delivery's manifest below the folder."""
        folder = self.path if not self.path or self.path.endswith("/") else self.path + "/"
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.where, Prefix=folder, Delimiter="/")
            found = deliveries(p["Prefix"] for page in pages for p in page.get("CommonPrefixes", []))
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(f"{self.label}: {describe_boto_error(exc)}") from exc
        for delivery in found:
            body = self._get(delivery + MANIFEST, missing_ok=True)
            if body is not None:
                return delivery + MANIFEST, body
        raise SourceError(f"{self.label}: no YYYY-MM-DDTHH-MMZ/{MANIFEST} below it (give the folder S3 "
                          "Inventory delivers to: <destination prefix>/<source bucket>/<configuration id>/)")

    def _get(self, key: str, *, missing_ok: bool) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.where, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            if missing_ok and isinstance(exc, ClientError) \
                    and exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise SourceError(f"{self.label}: cannot read {self._url(key)}: {describe_boto_error(exc)}") \
                from exc

    def _parse(self, key: str, body: bytes) -> InventoryManifest:
        try:
            manifest = parse_manifest(body)
        except ValueError as exc:
            raise SourceError(f"{self.label}: {self._url(key)} {exc}") from exc
        if manifest.source_bucket != self.bucket:
            raise SourceError(f"{self.label}: {self._url(key)} is the inventory of bucket "
                              f"{manifest.source_bucket!r}, not {self.bucket!r}")
        return manifest

    @contextmanager
    def _download(self, data: DataFile) -> Iterator[Path]:
        """A data file on disk (deleted after), its MD5 checked."""
        digest = hashlib.md5(usedforsecurity=False)
        with tempfile.TemporaryDirectory(prefix="orchestrator-inventory-") as folder:
            path = Path(folder) / "data"
            with path.open("wb") as file:
                try:
                    body = self.client.get_object(Bucket=self.where, Key=data.key)["Body"]
                    for chunk in iter(lambda: body.read(_CHUNK), b""):
                        digest.update(chunk)
                        file.write(chunk)
                except (ClientError, BotoCoreError) as exc:
                    raise SourceError(f"{self.label}: cannot read {self._url(data.key)}: "
                                      f"{describe_boto_error(exc)}") from exc
            if digest.hexdigest() != data.md5:
                raise SourceError(f"{self.label}: {self._url(data.key)} does not match the MD5checksum of "
                                  "its manifest (damaged or replaced: wait for the next delivery)")
            yield path

    def _url(self, key: str) -> str:
        return f"s3://{self.where}/{key}"
