"""S3 and S3-compatible stores (MinIO, Ceph) as a manifest names them: ``s3://bucket/prefix``, the keys
only S3 sources take, the object URL styles; the lister (boto3) is imported only when it is built."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..config.manifest import Settings, SourceConfig
from ..config.plugins import StoreSpec, bucket_locator
from ..config.reader import Reader
from ..config.urls import https_key
from ..models import StoredObject
from .base import Source

_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d+$")


def _read_keys(r: Reader, s: dict[str, Any], p: str, _url: str, _base_dir: Path) -> dict[str, Any]:
    payer = s.get("request_payer")
    return {
        "path_style": r.boolean(s.get("path_style", False), f"{p}.path_style"),
        "profile": r.optional_string(s.get("profile"), f"{p}.profile"),
        "request_payer": None if payer is None else r.choice(payer, f"{p}.request_payer", ("requester",)),
    }


def _style_problem(style: str, bucket: str, region: str | None, endpoint_url: str | None) -> str | None:
    if endpoint_url is not None:
        return ("https-virtual is for AWS S3: with endpoint_url use https-path or native"
                if style == "https-virtual" else None)
    if region is None or not _REGION.match(region):
        return f"{style} needs the bucket's region on this source (region: us-east-1, say)"
    if style == "https-virtual" and "." in bucket:
        return "bucket names with dots break https-virtual (TLS): use https-path"
    return None


def _object_url(obj: StoredObject, style: str, region: str | None, endpoint_url: str | None) -> str:
    if style == "native":
        return obj.url
    if endpoint_url is not None:
        return f"{endpoint_url.rstrip('/')}/{obj.bucket}/{https_key(obj)}"
    if style == "https-virtual":
        return f"https://{obj.bucket}.s3.{region}.amazonaws.com/{https_key(obj)}"
    return f"https://s3.{region}.amazonaws.com/{obj.bucket}/{https_key(obj)}"


def _build(config: SourceConfig, settings: Settings) -> Source:
    from . import s3  # boto3: imported when an S3 source is listed, never to read a manifest

    return s3.build(config, settings)


SPEC = StoreSpec(
    scheme="s3",
    spellings=("s3", "s3a", "s3n"),
    url_forms=("s3://bucket/prefix",),
    locate=bucket_locator("s3"),
    keys=("endpoint_url", "region", "path_style", "profile", "request_payer"),
    read_keys=_read_keys,
    style_problem=_style_problem,
    object_url=_object_url,
    build=_build,
)
