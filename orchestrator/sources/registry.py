"""Every store a manifest's sources may name, in the order messages list them, each declared once in its
own module (``SPEC``: URL scheme and forms, keys, validation, identity, secrets, object URLs, lister).
Adding a store is its spec module and one line here.

Listers are imported on first use: a run over S3 never pays for importing the GCS client, nor a run over a
local folder for boto3 (a few hundred milliseconds each, on every cron run).
"""

from __future__ import annotations

from collections.abc import Callable

from ..config.manifest import Settings, SourceConfig
from ..config.plugins import StoreSpec, split_bucket
from ..models import StoredObject
from . import azure_spec, gcs_spec, local, s3_spec
from .base import Source

Builder = Callable[[SourceConfig, Settings], Source]

STORES: tuple[StoreSpec[Builder], ...] = (s3_spec.SPEC, gcs_spec.SPEC, azure_spec.SPEC, local.SPEC)
BY_SCHEME: dict[str, StoreSpec[Builder]] = {spec.scheme: spec for spec in STORES}


def make_source(config: SourceConfig, settings: Settings) -> Source:
    """The lister for ``config``, its client made from the manifest's options and the environment;
    raises :class:`SourceError` naming the source when the client cannot be made."""
    return BY_SCHEME[config.scheme].build(config, settings)


def source_key(source: SourceConfig) -> str:
    """A source as the ledger names it: its URL, which stays when sources are reordered."""
    return BY_SCHEME[source.scheme].key(source)


def bucket_and_key(url: str) -> tuple[str, str]:
    """The bucket (or container) of an object's ledger URL, and the key below it."""
    scheme, _, rest = url.partition("://")
    spec = BY_SCHEME.get(scheme)
    return (spec.bucket_and_key if spec is not None else split_bucket)(rest)


def object_url(obj: StoredObject, *, scheme: str, style: str, region: str | None = None,
               endpoint_url: str | None = None) -> str:
    """The URL an import call names for ``obj``; the style must have passed its store's ``problem``."""
    return BY_SCHEME[scheme].object_url(obj, style, region, endpoint_url)
