"""S3 and S3-compatible stores (MinIO, Ceph, R2), listed with ListObjectsV2 through a boto3 client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import botocore.session
import botocore.utils
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from ..errors import SourceError
from ..models import StoredObject
from .fanout import Entry, FanOutLister, merge_pages

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ..manifest import Settings, SourceConfig

_CODES = {
    "NoSuchBucket": "bucket not found",
    "AccessDenied": "access denied (the listing credentials need s3:ListBucket and s3:GetObject here)",
    "AllAccessDisabled": "access denied",
    "Forbidden": "access denied",
    "InvalidAccessKeyId": "the listing credentials are not valid (InvalidAccessKeyId)",
    "SignatureDoesNotMatch": "the listing credentials are not valid (SignatureDoesNotMatch)",
    "InvalidToken": "the listing credentials are not valid (InvalidToken)",
    "ExpiredToken": "the listing credentials have expired",
    "PermanentRedirect": "the bucket is in another region: set region on this source",
    "NoSuchKey": "object not found",
    "PreconditionFailed": "the object changed since it was listed",
}


def build(config: SourceConfig, settings: Settings) -> S3Source:
    """An S3 lister for a manifest source, with a client made from its options."""
    try:
        session = boto3.session.Session(botocore_session=_fast_timestamps(botocore.session.get_session()),
                                        profile_name=config.profile)
    except BotoCoreError as exc:
        raise SourceError(f"{config.label}: {describe_boto_error(exc)}") from exc
    client = session.client(
        "s3",
        endpoint_url=config.endpoint_url,
        region_name=config.region,
        # retries: AWS_MAX_ATTEMPTS or the profile's max_attempts, else 3; fail fast when nobody answers
        config=Config(retries={"mode": "standard"}, connect_timeout=5, read_timeout=20,
                      s3={"addressing_style": "path" if config.path_style else "auto"}),
    )
    return S3Source(client, label=config.label, bucket=config.bucket, prefix=config.prefix,
                    request_payer=config.request_payer, concurrency=settings.list_concurrency)


class S3Source(FanOutLister):
    def __init__(
        self,
        client: S3Client,
        *,
        label: str,
        bucket: str,
        prefix: str,
        request_payer: str | None = None,
        concurrency: int = 1,
        page_size: int = 1000,
    ) -> None:
        self.client = client
        self.label = label
        self.bucket = bucket
        self.prefix = prefix
        self.concurrency = concurrency
        self.page_size = page_size
        self._payer: dict[str, Any] = {"RequestPayer": request_payer} if request_payer else {}

    def read(self, obj: StoredObject, start: int = 0, end: int | None = None) -> bytes:
        """A ranged GET of the listed version: only the bytes asked for cross the network."""
        if end is not None and end <= start:
            return b""
        span = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            body = self.client.get_object(Bucket=obj.bucket, Key=obj.key, Range=span,
                                          IfMatch=f'"{obj.version}"', **self._payer)["Body"]
            return body.read()
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(f"{self.label}: cannot read {obj.key}: {describe_boto_error(exc)}") from exc

    def _walk(self, prefix: str) -> Iterator[StoredObject]:
        for page in self._pages(prefix):
            for entry in page.get("Contents", []):
                obj = self._object(entry)
                if obj is not None:
                    yield obj

    def _level(self, prefix: str) -> Iterator[Entry]:
        return merge_pages(
            ((o for o in map(self._object, page.get("Contents", [])) if o is not None),
             (str(p["Prefix"]) for p in page.get("CommonPrefixes", [])))
            for page in self._pages(prefix, delimiter="/"))

    def _pages(self, prefix: str, delimiter: str | None = None) -> Iterator[Any]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, **self._payer,
                                "PaginationConfig": {"PageSize": self.page_size}}
        if delimiter is not None:
            args["Delimiter"] = delimiter
        try:
            yield from self.client.get_paginator("list_objects_v2").paginate(**args)
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(f"{self.label}: {describe_boto_error(exc)}") from exc

    def _object(self, entry: Any) -> StoredObject | None:
        key: str = entry["Key"]
        if key.endswith("/") or not key.startswith(self.prefix):
            return None  # a "folder" marker, or (defensively) outside the prefix
        etag = str(entry.get("ETag", "")).strip('"')
        return StoredObject(
            url=f"s3://{self.bucket}/{key}",
            bucket=self.bucket,
            key=key,
            relative_key=key[len(self.prefix):],
            size=int(entry.get("Size", 0)),
            version=etag,
            modified=entry["LastModified"].timestamp(),
            checksum=etag,
        )


def _fast_timestamps(session: botocore.session.Session) -> botocore.session.Session:
    """Parse response timestamps with ``datetime.fromisoformat``: botocore's default (dateutil) costs
    about 0.2 ms per listed key, three quarters of a listing's CPU time, which no fan-out can hide."""
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
    return session


def parse_timestamp(value: str) -> datetime:
    """``2024-01-01T00:00:00.000Z`` (listings) at C speed; anything else (RFC 1123 headers, epochs)
    the way botocore does it."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return botocore.utils.parse_timestamp(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def describe_boto_error(exc: Exception) -> str:
    """One line for a botocore error, without request ids or credentials."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return _CODES.get(code, f"{code or 'error'}: {exc.response.get('Error', {}).get('Message', '')}")
    if isinstance(exc, NoCredentialsError):
        return "no credentials to list with (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)"
    if isinstance(exc, ProfileNotFound):
        return f"AWS profile {exc.kwargs.get('profile', '')!r} not found (see ~/.aws/config)"
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return f"the endpoint did not answer in time ({_origin(exc.kwargs.get('endpoint_url'))})"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach the endpoint ({_origin(exc.kwargs.get('endpoint_url'))})"
    return type(exc).__name__ + ": " + str(exc)


def _origin(url: object) -> str:
    """``scheme://host:port`` of a request URL, without the path and query."""
    if not isinstance(url, str):
        return "unknown"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
