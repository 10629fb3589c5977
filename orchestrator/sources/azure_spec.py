"""Azure Blob Storage as a manifest names it: ``az://container/prefix`` with its account, or
``https://<account>.blob.core.windows.net/<container>/<prefix>``; its listing secrets; its one object URL
form. The lister (the ``azure`` extra) is imported only when it is built."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..config.manifest import Settings, SourceConfig
from ..config.plugins import Location, StoreSpec, bucket_locator, folder
from ..config.reader import Reader, excerpt
from ..config.urls import https_key
from ..models import Secret, StoredObject
from .base import Source

_HTTPS_URL = re.compile(r"^https://(?P<account>[^./]+)\.blob\.core\.windows\.net/(?P<bucket>[^/]+)"
                        r"(?:/(?P<prefix>.*))?$")
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_az_url = bucket_locator("az")


def _locate(url: str, base_dir: Path) -> Location | None:
    m = _HTTPS_URL.match(url)
    return _az_url(url, base_dir) if m is None else Location(m["bucket"], folder(m["prefix"] or ""))


def _read_keys(r: Reader, s: dict[str, Any], p: str, url: str, base_dir: Path) -> dict[str, Any]:
    """The account and listing secrets of an Azure source (``az://`` or its https URL)."""
    where = _locate(url, base_dir)
    assert where is not None  # the URL is this store's
    if not _CONTAINER.match(where.bucket):
        raise r.fail(f"{p}.url", f"{excerpt(where.bucket)} is not an Azure container name (3 to 63 lowercase "
                                 "letters, digits and single hyphens)")
    m = _HTTPS_URL.match(url)
    in_url = m["account"] if m is not None else None
    if in_url is not None:
        for key, why in (("account", "the https URL names the account"),
                         ("endpoint_url", "the https URL names the endpoint (for other clouds or an emulator "
                                          "write az://container/prefix with account and endpoint_url)")):
            if key in s:
                raise r.fail(f"{p}.{key}", f"{why}: remove this key")
    account = in_url or r.optional_string(s.get("account"), f"{p}.account")
    if account is None:
        raise r.fail(f"{p}.account", "az:// sources name their storage account: account: <name> (or write "
                                     "the URL as https://<account>.blob.core.windows.net/<container>/<prefix>)")
    if not _ACCOUNT.match(account):
        raise r.fail(f"{p}.account" if in_url is None else f"{p}.url",
                     f"{excerpt(account)} is not a storage account name (3 to 24 lowercase letters and "
                     "digits)")
    if "connection_string" in s and ("sas_token" in s or "endpoint_url" in s):
        other = "sas_token" if "sas_token" in s else "endpoint_url"
        raise r.fail(f"{p}.{other}", "a connection string names the endpoint and the key: set one of "
                                     f"connection_string and {other}, not both")
    return {
        "account": account,
        "connection_string": None if "connection_string" not in s else Secret(
            r.string(s["connection_string"], f"{p}.connection_string", secret=True)),
        "sas_token": None if "sas_token" not in s else Secret(
            r.string(s["sas_token"], f"{p}.sas_token", secret=True)),
    }


def _style_problem(_style: str, _bucket: str, _region: str | None, _endpoint_url: str | None) -> str:
    return ("Azure objects are always sent as https://<account>.blob.core.windows.net/<container>/<key>: "
            "leave object_url_style out")


def _object_url(obj: StoredObject, _style: str, _region: str | None, endpoint_url: str | None) -> str:
    """Whatever the style: ``az://<account>/<container>/<key>`` is sent as its https URL."""
    account = obj.url.split("/")[2]
    base = endpoint_url.rstrip("/") if endpoint_url else f"https://{account}.blob.core.windows.net"
    return f"{base}/{obj.bucket}/{https_key(obj)}"


def _bucket_and_key(rest: str) -> tuple[str, str]:
    """The container and the key of ``az://<account>/<container>/<key>``."""
    container, _, key = rest.partition("/")[2].partition("/")
    return container, key


def _secrets(source: SourceConfig) -> list[Secret]:
    return [s for s in (source.connection_string, source.sas_token) if s is not None]


def _build(config: SourceConfig, settings: Settings) -> Source:
    from . import azure  # the azure extra: imported when an Azure source is listed, never to read a manifest

    return azure.build(config, settings)


SPEC = StoreSpec(
    scheme="az",
    spellings=("az", "azure"),
    url_forms=("az://container/prefix", "https://<account>.blob.core.windows.net/<container>/<prefix>"),
    locate=_locate,
    keys=("endpoint_url", "account", "connection_string", "sas_token"),
    read_keys=_read_keys,
    style_problem=_style_problem,
    object_url=_object_url,
    bucket_and_key=_bucket_and_key,
    secrets=_secrets,
    extra="azure",
    what="an Azure source",
    build=_build,
)
