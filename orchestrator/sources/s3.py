"""S3 and S3-compatible stores (MinIO, Ceph, R2), listed with ListObjectsV2 through a boto3 client.

botocore does what it is good at: the AWS credential chain and profiles, endpoints and path style,
signing, retries, redirects and errors. A successful listing reply is not handed to its generic parser
but read by :mod:`orchestrator.sources.s3_listing` (several times faster), and the next page is asked for
while this one is read.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.handlers import _handle_200_error  # type: ignore[attr-defined]  # re-ordered, see read_listings_raw
from botocore.model import OperationModel

from ..errors import SourceError
from ..models import StoredObject
from ..redact import shown_url, shown_urls
from .base import connections, log_page
from .fanout import Entry, FanOutLister, Lazy, Pages, merge_pages, read_ahead
from .s3_listing import Page, last_key, next_token, parse_page

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ..config.manifest import Settings, SourceConfig

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
    return S3Source(make_client(config, settings), label=config.label, bucket=config.bucket,
                    prefix=config.prefix, request_payer=config.request_payer,
                    concurrency=settings.list_concurrency)


def make_client(config: SourceConfig, settings: Settings) -> S3Client:
    """A boto3 client for a manifest source's options (profile, endpoint, region, path style); what
    else reads beside its bucket (its S3 Inventory) uses the same one. Raises :class:`SourceError`
    naming the source when it cannot be made."""
    client: S3Client = aws_client(config, "s3", region=config.region, read_timeout_s=20, options=Config(
        s3={"addressing_style": "path" if config.path_style else "auto"},
        max_pool_connections=connections(settings)))
    return client


def aws_client(config: SourceConfig, service: Literal["s3", "sqs"], *, region: str | None,
               read_timeout_s: float, options: Config) -> Any:
    """A client of ``service`` as a source's options make it: its profile, endpoint and region; the
    standard retries (AWS_MAX_ATTEMPTS or the profile's max_attempts, else 3), failing fast when
    nobody answers. Credentials are resolved here: half-set ones (a key without its secret) fail now."""
    try:
        session = boto3.session.Session(profile_name=config.profile)
        return session.client(service, endpoint_url=config.endpoint_url, region_name=region,
                              config=Config(retries={"mode": "standard"}, connect_timeout=5,
                                            read_timeout=read_timeout_s).merge(options))
    except BotoCoreError as exc:
        raise SourceError(f"{config.label}: {describe_boto_error(exc)}") from exc


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
        read_listings_raw(client)

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

    def head(self, key: str) -> StoredObject | None:
        """The object at ``key`` as it is now (HEAD: its size, ETag and time), found by an event; None
        when it is gone."""
        try:
            reply = self.client.head_object(Bucket=self.bucket, Key=key, **self._payer)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise SourceError(f"{self.label}: cannot look {key} up: {describe_boto_error(exc)}") from exc
        except BotoCoreError as exc:
            raise SourceError(f"{self.label}: cannot look {key} up: {describe_boto_error(exc)}") from exc
        etag = str(reply.get("ETag", "")).strip('"')
        return StoredObject(url=f"s3://{self.bucket}/{key}", bucket=self.bucket, key=key,
                            relative_key=key[len(self.prefix):], size=int(reply.get("ContentLength", 0)),
                            version=etag, modified=reply["LastModified"].timestamp(), checksum=etag,
                            found="event")

    def _walk(self, prefix: str, start: str = "", end: str | None = None) -> Pages:
        for body in self._replies(prefix, None, key_before(start), end):
            yield Lazy(partial(self._objects, body), start, end)

    def _level(self, prefix: str) -> Iterator[Entry]:
        pages = map(self._parse, read_ahead(self._replies(prefix, "/", None, None)))
        return merge_pages((page.objects, page.prefixes) for page in pages)

    def _objects(self, body: bytes) -> list[StoredObject]:
        return self._parse(body).objects

    def _parse(self, body: bytes) -> Page:
        try:
            return parse_page(body, bucket=self.bucket, prefix=self.prefix)
        except SourceError as exc:
            raise SourceError(f"{self.label}: {exc}") from exc

    def _replies(self, prefix: str, delimiter: str | None, start_after: str | None, end: str | None,
                 ) -> Iterator[bytes]:
        """The raw body of each ListObjectsV2 reply, page after page, up to the one that reaches key
        ``end``. Keys are asked URL-encoded, as botocore does, so that control characters survive."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": self.page_size,
                                "EncodingType": "url", **self._payer}
        if delimiter is not None:
            args["Delimiter"] = delimiter
        if start_after is not None:
            args["StartAfter"] = start_after
        for number in itertools.count(1):
            started = time.monotonic()
            try:
                body: bytes = self.client.list_objects_v2(**args)[RAW]  # type: ignore[literal-required]
            except (ClientError, BotoCoreError) as exc:
                raise SourceError(f"{self.label}: {describe_boto_error(exc)}") from exc
            log_page(self.label, prefix, number, partial(_entries, body), time.monotonic() - started)
            yield body
            token = next_token(body)
            if token is None or (end is not None and (last_key(body) or "") >= end):
                return
            args["ContinuationToken"] = token


def _entries(body: bytes) -> int:
    return body.count(b"<Contents>") + body.count(b"<CommonPrefixes>")


def key_before(key: str) -> str | None:
    """A key that sorts just before ``key`` (StartAfter is exclusive): the listing then starts at
    ``key``, give or take a few keys before it that :class:`Lazy` drops. None for the empty key."""
    if not key:
        return None
    last = ord(key[-1]) - 1
    if last < 0:
        return key[:-1] or None
    return key[:-1] + chr(0xD7FF if 0xD800 <= last <= 0xDFFF else last)


RAW = "RawListing"
_RAW_ID, _CHECK_ID = "orchestrator-raw-listing", "orchestrator-200-error"


def read_listings_raw(client: S3Client) -> None:
    """Have ``client`` hand complete ListObjectsV2 replies over raw (see :func:`keep_raw_listing`).
    botocore's own ``before-parse`` check of S3 replies (it parses every 200 reply whole, looking for
    an error) is put back after ours, so that it sees an empty body instead of a listing: parsed
    twice, a page would cost twice. Calling this again on the same client changes nothing."""
    events = client.meta.events
    events.unregister("before-parse.s3.*", unique_id=_CHECK_ID)
    events.unregister("before-parse.s3.*", _handle_200_error)
    events.register_first("before-parse.s3.*", keep_raw_listing, unique_id=_RAW_ID)
    events.register_first("before-parse.s3.*", _handle_200_error, unique_id=_CHECK_ID)


def keep_raw_listing(operation_model: OperationModel, response_dict: dict[str, Any],
                     customized_response_dict: dict[str, Any], **_: Any) -> None:
    """The body of a complete ListObjectsV2 reply is kept raw under ``RAW`` for :func:`parse_page`;
    botocore then parses only the headers. Anything else (an error, a reply cut short, another
    operation) is left to botocore, which retries or raises as usual."""
    body = response_dict["body"]
    if operation_model.name == "ListObjectsV2" and response_dict["status_code"] == 200 \
            and body.rstrip().endswith(b"</ListBucketResult>"):
        customized_response_dict[RAW] = body
        response_dict["body"] = b""


def describe_boto_error(exc: Exception) -> str:
    """One line for a botocore error, without request ids or credentials."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return _CODES.get(code, f"{code or 'error'}: {exc.response.get('Error', {}).get('Message', '')}")
    if isinstance(exc, NoCredentialsError):
        return "no credentials to list with (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)"
    if isinstance(exc, PartialCredentialsError):
        where = {"env": "the environment", "shared-credentials-file": "~/.aws/credentials",
                 "config-file": "~/.aws/config"}.get(str(exc.kwargs.get("provider")),
                                                     str(exc.kwargs.get("provider", "")))
        return (f"incomplete AWS credentials in {where}: {exc.kwargs.get('cred_var', 'a value')} is missing "
                "(set the access key and the secret key together, or neither)")
    if isinstance(exc, ProfileNotFound):
        return f"AWS profile {exc.kwargs.get('profile', '')!r} not found (see ~/.aws/config)"
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return f"the endpoint did not answer in time ({_origin(exc.kwargs.get('endpoint_url'))})"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach the endpoint ({_origin(exc.kwargs.get('endpoint_url'))})"
    return type(exc).__name__ + ": " + shown_urls(str(exc))


def _origin(url: object) -> str:
    """``scheme://host:port`` of a request URL, without the path and query."""
    if not isinstance(url, str):
        return "unknown"
    parts = urlsplit(url)
    return shown_url(f"{parts.scheme}://{parts.netloc}")
