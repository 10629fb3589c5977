"""Google Cloud Storage as a manifest names it: ``gs://bucket/prefix``, a service account's key file,
the object URL styles; the lister (google-cloud-storage) is imported only when it is built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config.manifest import Settings, SourceConfig
from ..config.plugins import StoreSpec, bucket_locator
from ..config.reader import Reader
from ..config.urls import https_key
from ..models import StoredObject
from .base import Source


def _read_keys(r: Reader, s: dict[str, Any], p: str, _url: str, base_dir: Path) -> dict[str, Any]:
    key_file = r.optional_string(s.get("service_account_file"), f"{p}.service_account_file")
    return {"service_account_file": None if key_file is None else base_dir / Path(key_file).expanduser()}


def _style_problem(style: str, _bucket: str, _region: str | None, _endpoint_url: str | None) -> str | None:
    return "GCS objects take native or https-path" if style == "https-virtual" else None


def _object_url(obj: StoredObject, style: str, _region: str | None, _endpoint_url: str | None) -> str:
    return obj.url if style == "native" else f"https://storage.googleapis.com/{obj.bucket}/{https_key(obj)}"


def _build(config: SourceConfig, settings: Settings) -> Source:
    from . import gcs  # the Google client: imported when a GCS source is listed, never to read a manifest

    return gcs.build(config, settings)


SPEC = StoreSpec(
    scheme="gs",
    spellings=("gs", "gcs"),
    url_forms=("gs://bucket/prefix",),
    locate=bucket_locator("gs"),
    keys=("service_account_file",),
    read_keys=_read_keys,
    style_problem=_style_problem,
    object_url=_object_url,
    build=_build,
)
