"""S3 and S3-compatible stores, listed with ListObjectsV2 through a boto3 client passed in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from ..errors import SourceError
from ..globs import judge
from ..models import StoredObject

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_CODES = {
    "NoSuchBucket": "bucket not found",
    "AccessDenied": "access denied (the listing credentials need s3:ListBucket on this bucket)",
    "AllAccessDisabled": "access denied",
    "InvalidAccessKeyId": "the listing credentials are not valid (InvalidAccessKeyId)",
    "SignatureDoesNotMatch": "the listing credentials are not valid (SignatureDoesNotMatch)",
    "ExpiredToken": "the listing credentials have expired",
    "PermanentRedirect": "the bucket is in another region: set region on this source",
}


class S3Source:
    def __init__(
        self,
        client: S3Client,
        *,
        label: str,
        bucket: str,
        prefix: str,
        include: tuple[str, ...],
        exclude: tuple[str, ...],
        page_size: int = 1000,
    ) -> None:
        self.client = client
        self.label = label
        self.bucket = bucket
        self.prefix = prefix
        self.include = include
        self.exclude = exclude
        self.page_size = page_size

    def list(self) -> Iterator[StoredObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=self.prefix, PaginationConfig={"PageSize": self.page_size}
        )
        try:
            for page in pages:
                for entry in page.get("Contents", []):
                    obj = self._object(entry)
                    if obj is not None:
                        yield obj
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(f"{self.label}: {describe_boto_error(exc)}") from exc

    def read(self, obj: StoredObject, start: int = 0, end: int | None = None) -> bytes:
        """A ranged GET: only the bytes asked for cross the network."""
        if end is not None and end <= start:
            return b""
        span = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            body = self.client.get_object(Bucket=obj.bucket, Key=obj.key, Range=span)["Body"]
            return body.read()
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(f"{self.label}: cannot read {obj.key}: {describe_boto_error(exc)}") from exc

    def _object(self, entry: Any) -> StoredObject | None:
        key: str = entry["Key"]
        if key.endswith("/") or not key.startswith(self.prefix):
            return None  # a "folder" marker, or (defensively) outside the prefix
        relative = key[len(self.prefix):]
        if not judge(relative, self.include, self.exclude).kept:
            return None
        return StoredObject(
            url=f"s3://{self.bucket}/{key}",
            bucket=self.bucket,
            key=key,
            relative_key=relative,
            size=int(entry.get("Size", 0)),
            version=str(entry.get("ETag", "")).strip('"'),
            modified=entry["LastModified"].timestamp(),
        )


def describe_boto_error(exc: Exception) -> str:
    """One line for a botocore error, without request ids or credentials."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return _CODES.get(code, f"{code or 'error'}: {exc.response.get('Error', {}).get('Message', '')}")
    if isinstance(exc, NoCredentialsError):
        return "no credentials to list with (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach the endpoint ({exc.kwargs.get('endpoint_url', 'unknown')})"
    return type(exc).__name__ + ": " + str(exc)
