"""Azure Blob Storage, listed with ``list_blobs`` / ``walk_blobs`` (prefix pushed down, page by page)
through an ``azure.storage.blob.ContainerClient``. The version of an object is its ETag.

Credentials for listing, the first that applies: the source's ``connection_string``, its ``sas_token``,
``AZURE_STORAGE_CONNECTION_STRING`` when it names this source's account (and endpoint), else
``DefaultAzureCredential`` (environment, workload or managed identity, Azure CLI login). Objects are
named ``az://<account>/<container>/<key>`` in the ledger, so the same container name in two accounts
never collides. Every azure-core and azure-identity error is turned into one :class:`SourceError`
line here, without request ids, URLs (a SAS token travels in the query) or keys.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import DefaultAzureCredential
from azure.storage.blob import (
    BlobPrefix,
    BlobProperties,
    BlobServiceClient,
    ContainerClient,
    ExponentialRetry,
)

from ..errors import SourceError
from ..models import StoredObject
from ..redact import shown_url
from .base import connections
from .fanout import Entry, FanOutLister, Lazy, Pages, merge_pages

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from ..config.manifest import Settings, SourceConfig

logging.getLogger("azure").addHandler(logging.NullHandler())  # its warnings repeat our one line, at length


class _Retry(ExponentialRetry):
    """Throttling, 5xx and dropped connections are retried; no token (DefaultAzureCredential found no
    credentials, or they were refused) and a refused connection are not: retrying will not help."""

    def increment(self, settings: dict[str, Any], request: PipelineRequest[Any],
                  response: PipelineResponse[Any, Any] | None = None,
                  error: AzureError | None = None) -> bool:
        if isinstance(error, ClientAuthenticationError):
            return False
        return bool(super().increment(settings, request, response, error))


# fail fast when nobody answers; otherwise three retries, after about 1, 3 and 5 s
CLIENT_OPTIONS: Mapping[str, Any] = {
    "connection_timeout": 5, "read_timeout": 20,
    "retry_policy": _Retry(initial_backoff=1, increment_base=2, retry_total=3, random_jitter_range=1,
                           retry_connect=0),
}
ENV_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"


class _PooledTransport(RequestsTransport):  # type: ignore[misc]  # exported lazily: Any to mypy
    """azure-core's transport, its session keeping ``pool`` connections open per host (requests keeps
    10: see :func:`~orchestrator.sources.base.connections`)."""

    def __init__(self, pool: int) -> None:
        super().__init__(connection_timeout=CLIENT_OPTIONS["connection_timeout"],
                         read_timeout=CLIENT_OPTIONS["read_timeout"])
        self._pool = pool

    def _init_session(self, session: requests.Session) -> None:
        super()._init_session(session)
        for adapter in set(session.adapters.values()):
            if isinstance(adapter, requests.adapters.HTTPAdapter):
                adapter.init_poolmanager(self._pool, self._pool)


def _options(pool: int) -> dict[str, Any]:
    return {**CLIENT_OPTIONS, "transport": _PooledTransport(pool)}
_Page = tuple[Sequence[BlobProperties], Sequence[str]]  # one listing page: blobs, sub-prefixes
NO_CREDENTIALS = ("no Azure credentials found: set connection_string or sas_token on this source, or "
                  f"{ENV_CONNECTION_STRING}, or sign in for DefaultAzureCredential (az login, managed "
                  "identity, AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET)")


def build(config: SourceConfig, settings: Settings) -> AzureSource:
    """An Azure lister for a manifest source, with a client made from its credentials."""
    assert config.account is not None
    client = make_client(
        account=config.account, container=config.bucket, endpoint_url=config.endpoint_url,
        connection_string=None if config.connection_string is None else config.connection_string.reveal(),
        sas_token=None if config.sas_token is None else config.sas_token.reveal(),
        environ=os.environ, label=config.label, pool=connections(settings))
    return AzureSource(client, label=config.label, account=config.account, prefix=config.prefix,
                       concurrency=settings.list_concurrency)


def make_client(*, account: str, container: str, endpoint_url: str | None, connection_string: str | None,
                sas_token: str | None, environ: Mapping[str, str], label: str,
                credential: Callable[[], TokenCredential] = DefaultAzureCredential, pool: int = 10,
                ) -> ContainerClient:
    """The container's client, with the first credentials that apply (see the module docstring),
    keeping ``pool`` connections open; ``credential`` stands in for ``DefaultAzureCredential``."""
    account_url = endpoint_url or f"https://{account}.blob.core.windows.net"
    if connection_string is not None:
        service = _from_connection_string(connection_string, "connection_string", label, pool)
    elif sas_token is not None:
        service = BlobServiceClient(account_url, credential=sas_token.lstrip("?"), **_options(pool))
    elif _names(environ.get(ENV_CONNECTION_STRING), account, endpoint_url):
        service = _from_connection_string(environ[ENV_CONNECTION_STRING], ENV_CONNECTION_STRING, label, pool)
    else:
        try:
            service = BlobServiceClient(account_url, credential=credential(), **_options(pool))
        except ValueError as exc:  # "Token credential is only supported with HTTPS."
            raise SourceError(f"{label}: DefaultAzureCredential needs an https endpoint, and endpoint_url "
                              f"is {_origin(account_url)}: set connection_string or sas_token") from exc
    if service.account_name != account:
        raise SourceError(f"{label}: the {'connection string' if connection_string else 'endpoint'} is for "
                          f"storage account {service.account_name!r}, this source reads {account!r}")
    return service.get_container_client(container)


def _from_connection_string(value: str, where: str, label: str, pool: int) -> BlobServiceClient:
    try:
        return BlobServiceClient.from_connection_string(value, **_options(pool))
    except ValueError as exc:  # never echo it: it holds the account key
        raise SourceError(f"{label}: {where} is not a valid Azure Storage connection string") from exc


def _names(connection_string: str | None, account: str, endpoint_url: str | None) -> bool:
    """True when ``connection_string`` is for ``account`` (and for ``endpoint_url``, when set)."""
    if not connection_string:
        return False
    try:
        service = BlobServiceClient.from_connection_string(connection_string)
    except ValueError:
        return True  # set but broken: make_client says so rather than quietly trying something else
    return service.account_name == account and (
        endpoint_url is None or _base(service.url) == _base(endpoint_url))


class AzureSource(FanOutLister):
    def __init__(
        self,
        client: ContainerClient,
        *,
        label: str,
        account: str,
        prefix: str,
        concurrency: int = 1,
        page_size: int = 1000,
    ) -> None:
        self.client = client
        self.label = label
        self.account = account
        self.container = client.container_name
        self.prefix = prefix
        self.concurrency = concurrency
        self.page_size = page_size

    def read(self, obj: StoredObject, start: int = 0, end: int | None = None) -> bytes:
        """A ranged download of the listed version (If-Match on its ETag, quoted as the ETag header
        quotes it; listings give it bare): only the bytes asked for cross the network."""
        if end is not None and end <= start:
            return b""
        try:
            return self.client.download_blob(
                obj.key, offset=start, length=None if end is None else end - start, etag=f'"{obj.version}"',
                match_condition=MatchConditions.IfNotModified, max_concurrency=1).readall()
        except AzureError as exc:
            raise SourceError(f"{self.label}: cannot read {obj.key}: "
                              f"{describe_azure_error(exc, self.client.url, missing='object')}") from exc

    def head(self, key: str) -> StoredObject | None:
        """The blob at ``key`` as it is now (its properties: what its listing gives), found by an event;
        None when it is gone (or is a directory of a hierarchical namespace)."""
        try:
            blob = self.client.get_blob_client(key).get_blob_properties()
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise SourceError(f"{self.label}: cannot look {key} up: "
                              f"{describe_azure_error(exc, self.client.url, missing='object')}") from exc
        found = self._object(blob)
        return None if found is None else found._replace(found="event")

    def _walk(self, prefix: str, start: str = "", end: str | None = None) -> Pages:
        """Pages of the objects from ``start`` up to ``end``. Azure's listing cannot start at a key:
        it starts at the longest prefix ``start`` and ``end`` share, and stops past ``end``."""
        shared = ""
        if start and end is not None:  # the characters they share (name_starts_with is not by folder)
            same = next((i for i, (a, b) in enumerate(zip(start, end, strict=False)) if a != b),
                        min(len(start), len(end)))
            shared = start[:same]
        for blobs, _prefixes in self._pages(shared if shared.startswith(prefix) else prefix):
            objects = [o for o in map(self._object, blobs) if o is not None]
            yield Lazy(lambda objects=objects: objects, start, end)  # type: ignore[misc]
            if end is not None and objects and objects[-1].key >= end:
                return

    def _level(self, prefix: str) -> Iterator[Entry]:
        return merge_pages(((o for o in map(self._object, blobs) if o is not None), prefixes)
                           for blobs, prefixes in self._pages(prefix, delimiter="/"))

    def _pages(self, prefix: str, delimiter: str | None = None) -> Iterator[_Page]:
        """Each page of one listing call as (blobs, sub-prefixes); metadata comes along to tell the
        directories of a hierarchical namespace (Data Lake Gen2) from files."""
        pages: Iterator[Iterator[BlobProperties | BlobPrefix]]
        try:
            if delimiter is None:
                pages = self.client.list_blobs(name_starts_with=prefix or None, include=["metadata"],
                                               results_per_page=self.page_size).by_page()
            else:
                pages = self.client.walk_blobs(name_starts_with=prefix or None, include=["metadata"],
                                               delimiter=delimiter, results_per_page=self.page_size).by_page()
            for page in pages:
                items = list(page)
                yield ([i for i in items if isinstance(i, BlobProperties)],
                       [i.name for i in items if isinstance(i, BlobPrefix)])
        except AzureError as exc:
            raise SourceError(f"{self.label}: {describe_azure_error(exc, self.client.url)}") from exc

    def _object(self, blob: BlobProperties) -> StoredObject | None:
        name: str = blob.name
        if name.endswith("/") or not name.startswith(self.prefix) \
                or (blob.metadata or {}).get("hdi_isfolder") == "true":
            return None  # a "folder" marker, a Data Lake directory, or (defensively) outside the prefix
        etag = str(blob.etag).strip('"')
        md5 = blob.content_settings.content_md5
        return StoredObject(
            url=f"az://{self.account}/{self.container}/{name}",
            bucket=self.container,
            key=name,
            relative_key=name[len(self.prefix):],
            size=int(blob.size or 0),
            version=etag,
            modified=blob.last_modified.timestamp() if blob.last_modified is not None else 0.0,
            checksum=base64.b64encode(bytes(md5)).decode() if md5 else etag,
        )


LISTING_ROLE = "Storage Blob Data Reader here (a SAS token: read and list permissions)"


def describe_azure_error(exc: AzureError, url: str, *, missing: str = "container", use: str = "listing",
                         role: str = LISTING_ROLE) -> str:
    """One line for an azure-core or azure-identity error: what failed and what to do, with no request
    id, URL or key. ``url`` is the client's, of which only the origin is shown; ``use`` names the
    credentials' use and ``role`` what they need, for a refusal."""
    code = azure_error_code(exc)
    if isinstance(exc, ResourceModifiedError) or code == "ConditionNotMet":
        return "the object changed since it was listed"
    if isinstance(exc, ResourceNotFoundError):
        return {"ContainerNotFound": "container not found", "BlobNotFound": "object not found"}.get(
            code, f"{missing} not found")
    if isinstance(exc, ClientAuthenticationError) and exc.response is None:  # azure-identity: no token
        if str(exc.message).startswith("DefaultAzureCredential failed"):
            return NO_CREDENTIALS
        return f"no token for DefaultAzureCredential: {str(exc.message).splitlines()[0][:200]}"
    if isinstance(exc, ClientAuthenticationError) or code in ("AuthenticationFailed",
                                                              "InvalidAuthenticationInfo"):
        return (f"the {use} credentials were refused ({code or 'HTTP 401'}): check the account key, "
                "SAS token or connection string, and that it has not expired")
    if isinstance(exc, HttpResponseError) and exc.status_code == 403:
        return f"access denied ({code or 'HTTP 403'}): the {use} identity needs {role}"
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        return f"HTTP {exc.status_code} ({code or 'no error code'})"
    inner = getattr(exc, "inner_exception", None)
    if isinstance(exc, ServiceRequestError | ServiceResponseError) and isinstance(inner, requests.Timeout):
        return f"the endpoint did not answer in time ({_origin(url)})"
    if isinstance(exc, ServiceRequestError):
        return f"cannot reach the endpoint ({_origin(url)})"
    if isinstance(exc, ServiceResponseError):
        return f"the endpoint dropped the connection ({_origin(url)})"
    return type(exc).__name__


def azure_error_code(exc: AzureError) -> str:
    """The storage service's error code of an error (``ContainerNotFound``), or ""."""
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code or ""))


def _base(url: str) -> str:
    """A URL without its query (a SAS token) and trailing slash."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def _origin(url: str) -> str:
    """``scheme://host:port`` of a URL, without the path and query (where a SAS token would be)."""
    parts = urlsplit(url)
    return shown_url(f"{parts.scheme}://{parts.netloc}")
