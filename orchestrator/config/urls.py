"""What every store's object URLs share: the ``object_url_style`` names, the percent-encoding of a key in
an https URL, and ``file://`` URLs. Pure. Each store's spec (``orchestrator/sources/*_spec.py``,
``local.py``) says which styles name its objects and makes their URLs:

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

from pathlib import PurePath
from urllib.parse import quote, unquote

from ..models import StoredObject

STYLES = ("native", "https-virtual", "https-path")
# What a URI path may carry unencoded (RFC 3986 pchar and "/"), beyond letters, digits and "_.-~"
_PATH_SAFE = "/!$&'()*+,;=:@~"
_GLOB = "*?[]"


def https_key(obj: StoredObject) -> str:
    """The object's key as an https URL carries it: percent-encoded as AWS signs it."""
    return quote(obj.key, safe="/~")


def file_url(path: PurePath | str, *, glob: bool = False) -> str:
    """``file://`` and the absolute ``path``, percent-encoding only what a URI must; with ``glob``, the
    glob characters ``*?[]`` of a pattern are left for matching."""
    return "file://" + quote(str(path), safe=_PATH_SAFE + (_GLOB if glob else ""))


def canonical_file_url(url: str, *, glob: bool = False) -> str:
    """A ``file://`` URL (or glob) in the form :func:`file_url` makes, whichever encoding it came in (the
    ledger before schema 3 stored ``day%3D01``; people type ``day=01``)."""
    return file_url(unquote(url.removeprefix("file://")), glob=glob)
