"""Google Cloud Storage. The version of an object is its generation.

Listing asks the JSON API's ``objects.list`` for the few fields a listing needs, on the client's own
authorized session (its credentials, token refreshes, endpoint), and makes objects straight from the
JSON: ``list_blobs`` would make a ``Blob`` of every item first, several times slower. The next page is
asked for while this one is read. Reads go through ``google.cloud.storage``.

Credentials: a per-source ``service_account_file``, else Application Default Credentials; when
``STORAGE_EMULATOR_HOST`` is set (an emulator), anonymous credentials. Every google-api-core and
google-auth error is turned into one :class:`SourceError` line here.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import google.auth
import orjson
import requests
from google.api_core import exceptions as api
from google.api_core.retry import Retry
from google.auth import exceptions as auth
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.oauth2 import service_account
from urllib3.exceptions import NewConnectionError

from ..errors import SourceError
from ..models import StoredObject
from ..redact import shown_url, shown_urls
from .base import connections, log_page
from .fanout import Entry, FanOutLister, Lazy, Pages, merge_pages, read_ahead

if TYPE_CHECKING:
    from ..config.manifest import Settings, SourceConfig

READ_ONLY = "https://www.googleapis.com/auth/devstorage.read_only"
TIMEOUT = (5.0, 20.0)  # connect, read: an endpoint that does not answer fails in seconds
_RETRY_STATUS = (408, 429, 500, 502, 503, 504)
ITEM_FIELDS = "name,size,generation,updated,md5Hash,crc32c"  # what makes a StoredObject of an object
FIELDS = f"nextPageToken,prefixes,items({ITEM_FIELDS})"


def unreachable(exc: BaseException) -> bool:
    """True when no connection could be made at all (refused, unknown host): retrying will not help."""
    inner = exc.args[0] if isinstance(exc, requests.ConnectionError) and exc.args else None
    return isinstance(getattr(inner, "reason", None), NewConnectionError)


def retryable(exc: BaseException) -> bool:
    """Throttling, server errors, dropped connections and timeouts; not a host that refuses us."""
    if isinstance(exc, api.GoogleAPICallError):
        return exc.code in _RETRY_STATUS
    if isinstance(exc, auth.TransportError) and exc.args and isinstance(exc.args[0], BaseException):
        return retryable(exc.args[0])
    return isinstance(exc, requests.ConnectionError | requests.Timeout | ConnectionError) \
        and not unreachable(exc)


RETRY = Retry(predicate=retryable, initial=0.5, maximum=8.0, multiplier=2.0, timeout=30.0)


def make_client(service_account_file: Path | None, environ: Mapping[str, str], pool: int = 10,
                ) -> storage.Client:
    """The client, its session keeping ``pool`` connections open per host."""
    if service_account_file is not None:
        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            service_account_info(service_account_file), scopes=[READ_ONLY])
        project = credentials.project_id
    elif environ.get("STORAGE_EMULATOR_HOST"):
        credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
        project = environ.get("GOOGLE_CLOUD_PROJECT", "emulator")
    else:
        credentials, project = google.auth.default(scopes=[READ_ONLY])
    client = storage.Client(project=project, credentials=credentials)
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=pool)
    for scheme in ("https://", "http://"):
        client._http.mount(scheme, adapter)
    return client


def key_file_error(config: SourceConfig, exc: Exception) -> SourceError:
    """The error of a source whose ``service_account_file`` cannot be used."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
    return SourceError(f"{config.label}: cannot use service_account_file {config.service_account_file}: "
                       f"{reason}")


def service_account_info(path: Path) -> dict[str, Any]:
    """The key file's JSON object; raises ValueError naming what it is instead (not JSON, another
    kind of credentials), OSError when it cannot be read."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("not a JSON key file (download one from IAM > Service accounts > Keys)") from None
    if not isinstance(info, dict):
        raise ValueError("expected a JSON object (a service account key), found a JSON "
                         f"{type(info).__name__}")
    kind = info.get("type")
    if kind != "service_account":
        raise ValueError(f"a key of type {kind!r}, not 'service_account' (a service account's JSON key is "
                         "needed here; for your own login use Application Default Credentials instead)")
    return info


def build(config: SourceConfig, settings: Settings) -> GcsSource:
    """A GCS lister for a manifest source, with a client made from its credentials."""
    try:
        client = make_client(config.service_account_file, os.environ, connections(settings))
    except (auth.GoogleAuthError, ValueError, OSError) as exc:
        if config.service_account_file is None:
            raise SourceError(f"{config.label}: {describe_google_error(exc)}") from exc
        raise key_file_error(config, exc) from exc
    return GcsSource(client, label=config.label, bucket=config.bucket, prefix=config.prefix,
                     concurrency=settings.list_concurrency)


class GcsSource(FanOutLister):
    def __init__(
        self,
        client: storage.Client,
        *,
        label: str,
        bucket: str,
        prefix: str,
        concurrency: int = 1,
        page_size: int = 1000,
        retry: Retry = RETRY,
        timeout: tuple[float, float] = TIMEOUT,
    ) -> None:
        self.client = client
        self.label = label
        self.bucket = bucket
        self.prefix = prefix
        self.concurrency = concurrency
        self.page_size = page_size
        self.retry = retry
        self.timeout = timeout

    def read(self, obj: StoredObject, start: int = 0, end: int | None = None) -> bytes:
        """A ranged download of the listed generation (GCS ranges end inclusive; ours do not)."""
        if end is not None and end <= start:
            return b""
        ranged = start > 0 or end is not None
        blob = self.client.bucket(obj.bucket).blob(obj.key, generation=int(obj.version))
        try:
            data: bytes = blob.download_as_bytes(
                start=start, end=None if end is None else end - 1, checksum=None if ranged else "auto",
                timeout=self.timeout, retry=self.retry)
        except Exception as exc:
            if not _ours(exc):
                raise
            raise SourceError(f"{self.label}: cannot read {obj.key}: "
                              f"{describe_google_error(exc, missing='object')}") from exc
        return data

    def head(self, key: str) -> StoredObject | None:
        """The object at ``key`` as it is now (``objects.get``, the fields its listing asks for), found
        by an event; None when it is gone."""
        url = f"{self.client.api_endpoint}/storage/v1/b/{quote(self.bucket, safe='')}/o/{quote(key, safe='')}"
        try:
            item = orjson.loads(self.retry(self._fetch)(url, {"fields": ITEM_FIELDS, "prettyPrint": "false"}))
        except api.NotFound:
            return None
        except Exception as exc:
            if not _ours(exc):
                raise
            raise SourceError(f"{self.label}: cannot look {key} up: "
                              f"{describe_google_error(exc, missing='object')}") from exc
        return next((o._replace(found="event") for o in self._objects([item])), None)

    def _walk(self, prefix: str, start: str = "", end: str | None = None) -> Pages:
        for reply in self._replies(prefix, None, start, end):
            yield Lazy(partial(self._read, reply), start, end)

    def _level(self, prefix: str) -> Iterator[Entry]:
        return merge_pages((self._objects(reply.items()), reply.prefixes())
                           for reply in read_ahead(self._replies(prefix, "/", "", None)))

    def _read(self, reply: Reply) -> list[StoredObject]:
        return self._objects(reply.items())

    def _objects(self, items: list[dict[str, Any]]) -> list[StoredObject]:
        """The objects of one page's items, folder placeholders (and, defensively, names outside the
        prefix) left out. The version is the generation; the checksum the MD5 (CRC32C without one)."""
        objects: list[StoredObject] = []
        append, iso, make = objects.append, datetime.fromisoformat, StoredObject
        url, bucket, prefix, cut = f"gs://{self.bucket}/", self.bucket, self.prefix, len(self.prefix)
        for item in items:
            name: str = item["name"]
            if name.endswith("/") or not name.startswith(prefix):
                continue
            updated = item.get("updated")
            append(make(url + name, bucket, name, name[cut:], int(item.get("size") or 0),
                        str(item["generation"]), iso(updated).timestamp() if updated else 0.0,
                        item.get("md5Hash") or item.get("crc32c") or ""))
        return objects

    def _replies(self, prefix: str, delimiter: str | None, start: str, end: str | None) -> Iterator[Reply]:
        """Every page of one ``objects.list``, up to the one that reaches name ``end``; each call
        retried like the client's. ``startOffset`` and ``endOffset`` bound the names (an emulator may
        ignore them: :class:`Lazy` keeps to the range too). The next page is asked for as soon as its
        token is found in this one, which is read later (by the consumer, for a walk to the end)."""
        url = f"{self.client.api_endpoint}/storage/v1/b/{quote(self.bucket, safe='')}/o"
        params: dict[str, str | int] = {"maxResults": self.page_size, "fields": FIELDS,
                                        "prettyPrint": "false"}
        if prefix:
            params["prefix"] = prefix
        if delimiter is not None:
            params["delimiter"] = delimiter
        if start:
            params["startOffset"] = start
        if end is not None:
            params["endOffset"] = end
        fetch = self.retry(self._fetch)
        read = delimiter is not None or end is not None  # read here: sub-prefixes, or the last name
        for number in itertools.count(1):
            started = time.monotonic()
            try:
                reply = Reply(fetch(url, params))
            except Exception as exc:
                if not _ours(exc):
                    raise
                raise SourceError(f"{self.label}: {describe_google_error(exc)}") from exc
            log_page(self.label, prefix, number, partial(_entries, reply, read=read),
                     time.monotonic() - started)
            token = reply.next_token()
            past_end = end is not None and bool(items := reply.items()) and items[-1]["name"] >= end
            yield reply
            if not token or past_end:
                return
            params["pageToken"] = token

    def _fetch(self, url: str, params: dict[str, str | int]) -> bytes:
        response = self.client._http.get(url, params=params, timeout=self.timeout)
        if response.status_code != 200:
            raise api.from_http_response(response)  # type: ignore[no-untyped-call]
        body: bytes = response.content
        return body


_TOKEN = re.compile(rb'"nextPageToken"\s*:\s*"([^"\\]*)"')


class Reply:
    """One ``objects.list`` reply: its body, read (with orjson: twice as fast as json) once, when
    first asked for. Its next page token is found without reading it."""

    __slots__ = ("_page", "body")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._page: dict[str, Any] | None = None

    def page(self) -> dict[str, Any]:
        if self._page is None:
            page: dict[str, Any] = orjson.loads(self.body)
            self._page = page
        return self._page

    def items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.page().get("items", [])
        return items

    def prefixes(self) -> list[str]:
        prefixes: list[str] = self.page().get("prefixes", [])
        return prefixes

    def next_token(self) -> str | None:
        """The token of the next page, None on the last. A key ``"nextPageToken"`` can only stand
        unescaped at the top of the reply (inside a name its quotes are escaped); a token with
        escapes in it is left to the JSON reader."""
        found = _TOKEN.search(self.body)
        if found is not None:
            return found.group(1).decode() or None
        if b'"nextPageToken"' not in self.body:
            return None
        token = self.page().get("nextPageToken")
        return str(token) if token else None


def _entries(reply: Reply, *, read: bool) -> int:
    """The entries of a reply: counted from the JSON when it is read here anyway (sub-prefixes, or
    the last name of a range), found in its bytes otherwise (one ``"name"`` per item)."""
    if read:
        return len(reply.items()) + len(reply.prefixes())
    return reply.body.count(b'"name"')


def _ours(exc: BaseException) -> bool:
    """Errors that come from the store or its client libraries (translated), not from a bug."""
    return isinstance(exc, api.GoogleAPIError | auth.GoogleAuthError | requests.RequestException
                      | ConnectionError)


LISTING_NEEDS = "storage.objects.list and .get here"


def describe_google_error(exc: BaseException, *, missing: str = "bucket", use: str = "listing",
                          needs: str = LISTING_NEEDS) -> str:
    """One line for a google-api-core, google-auth or transport error, without tokens. ``use`` names
    the credentials' use and ``needs`` the permissions they need, for a refusal."""
    if isinstance(exc, api.RetryError):
        cause = exc.cause
        return f"{describe_google_error(cause, missing=missing, use=use, needs=needs)} (gave up retrying)" \
            if cause is not None else "gave up retrying"
    if isinstance(exc, api.NotFound):
        return f"{missing} not found"
    if isinstance(exc, api.Forbidden):
        return f"access denied (the {use} credentials need {needs})"
    if isinstance(exc, api.Unauthorized):
        return f"the {use} credentials are not valid or have expired (HTTP 401)"
    if isinstance(exc, api.GoogleAPICallError):
        return f"HTTP {exc.code}: {exc.message}"
    if isinstance(exc, auth.InvalidOperation):  # a 401 to anonymous credentials, which cannot refresh
        return "the store wants credentials; anonymous ones (STORAGE_EMULATOR_HOST is set) were refused"
    if isinstance(exc, auth.DefaultCredentialsError):
        return ("no Google credentials found: set GOOGLE_APPLICATION_CREDENTIALS, run `gcloud auth "
                "application-default login`, or set service_account_file on this source")
    if isinstance(exc, auth.RefreshError):
        reason = exc.args[0] if exc.args else "refused"
        return f"the {use} credentials were refused (expired, revoked or not valid): {reason}"
    if isinstance(exc, auth.TransportError) and exc.args and isinstance(exc.args[0], BaseException):
        return describe_google_error(exc.args[0], missing=missing, use=use, needs=needs)
    if isinstance(exc, requests.Timeout):
        return f"the endpoint did not answer in time ({_host(exc)})"
    if isinstance(exc, requests.ConnectionError | ConnectionError):
        return f"cannot reach the endpoint ({_host(exc)})"
    return f"{type(exc).__name__}: {shown_urls(str(exc))}"


def _host(exc: BaseException) -> str:
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    if not isinstance(url, str):
        return "unknown"
    parts = urlsplit(url)
    return shown_url(f"{parts.scheme}://{parts.netloc}")
