"""The object URL an import call names, from an object and its source's ``object_url_style``. Pure.

    style           S3                                          GCS
    native          s3://bucket/key                             gs://bucket/key
    https-virtual   https://bucket.s3.<region>.amazonaws.com/key  (not for GCS)
    https-path      https://s3.<region>.amazonaws.com/bucket/key  https://storage.googleapis.com/bucket/key

With ``endpoint_url`` (an S3-compatible store), https-path is ``<endpoint_url>/bucket/key``. In the https
forms the key is percent-encoded as AWS signs it (UTF-8; everything but letters, digits, ``-._~`` and
``/``); native URLs carry the key unchanged. Local files keep their ``file://`` URL, which encodes only
what a URI must (spaces, ``%``, ``#``, ``?``, brackets, non-ASCII): Hive-style ``day=01`` stays as typed.

Azure has one form, its own: ``https://<account>.blob.core.windows.net/<container>/<key>`` (or
``<endpoint_url>/<container>/<key>``), key percent-encoded the same way, whatever the style (only
``native``, the default, is accepted). The account is the first segment of the object's ledger URL,
``az://<account>/<container>/<key>``.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from urllib.parse import quote, unquote

from ..models import StoredObject

STYLES = ("native", "https-virtual", "https-path")
# What a URI path may carry unencoded (RFC 3986 pchar and "/"), beyond letters, digits and "_.-~"
_PATH_SAFE = "/!$&'()*+,;=:@~"
_GLOB = "*?[]"
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d+$")


def problem(*, scheme: str, style: str, bucket: str, region: str | None,
            endpoint_url: str | None) -> str | None:
    """Why ``style`` cannot name this source's objects, or None when it can."""
    if style == "native":
        return None
    if scheme == "file":
        return "local folders keep their file:// URL: use native"
    if scheme == "az":
        return ("Azure objects are always sent as https://<account>.blob.core.windows.net/<container>/<key>: "
                "leave object_url_style out")
    if scheme == "gs":
        return "GCS objects take native or https-path" if style == "https-virtual" else None
    if endpoint_url is not None:
        return ("https-virtual is for AWS S3: with endpoint_url use https-path or native"
                if style == "https-virtual" else None)
    if region is None or not _REGION.match(region):
        return f"{style} needs the bucket's region on this source (region: us-east-1, say)"
    if style == "https-virtual" and "." in bucket:
        return "bucket names with dots break https-virtual (TLS): use https-path"
    return None


def file_url(path: PurePath | str, *, glob: bool = False) -> str:
    """``file://`` and the absolute ``path``, percent-encoding only what a URI must; with ``glob``, the
    glob characters ``*?[]`` of a pattern are left for matching."""
    return "file://" + quote(str(path), safe=_PATH_SAFE + (_GLOB if glob else ""))


def canonical_file_url(url: str, *, glob: bool = False) -> str:
    """A ``file://`` URL (or glob) in the form :func:`file_url` makes, whichever encoding it came in (the
    ledger before schema 3 stored ``day%3D01``; people type ``day=01``)."""
    return file_url(unquote(url.removeprefix("file://")), glob=glob)


def object_url(obj: StoredObject, *, scheme: str, style: str, region: str | None = None,
               endpoint_url: str | None = None) -> str:
    """The URL to send for ``obj``; the style must have passed :func:`problem`."""
    key = quote(obj.key, safe="/~")
    if scheme == "az":
        account = obj.url.split("/")[2]
        base = endpoint_url.rstrip("/") if endpoint_url else f"https://{account}.blob.core.windows.net"
        return f"{base}/{obj.bucket}/{key}"
    if style == "native" or scheme == "file":
        return obj.url
    if scheme == "gs":
        return f"https://storage.googleapis.com/{obj.bucket}/{key}"
    if endpoint_url is not None:
        return f"{endpoint_url.rstrip('/')}/{obj.bucket}/{key}"
    if style == "https-virtual":
        return f"https://{obj.bucket}.s3.{region}.amazonaws.com/{key}"
    return f"https://s3.{region}.amazonaws.com/{obj.bucket}/{key}"
