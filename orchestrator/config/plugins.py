"""What a target API and a store declare of themselves, once each: the types of their specs.

The concrete specs live with their code, one per module (``targets/<api>.py`` or ``..._spec.py``,
``sources/<store>_spec.py``), and their registries (``targets/registry.py``, ``sources/registry.py``)
list them; the manifest reader (:mod:`orchestrator.config.document`), the wiring and the pre-flight
check read them instead of tables of their own. As dlt's destination ``factory.py``: a spec, its
capabilities, and a builder that imports the heavy client only when it is called.

A builder's signature names types of the layers above this one (an HTTP client, a target, a lister),
so a spec is generic in it: each registry says what its builders take and make.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

from ..models import Secret, StoredObject
from .manifest import SourceConfig, TargetCapabilities, TargetConfig
from .reader import Reader

B = TypeVar("B", covariant=True)  # a builder: what the registry that lists the spec calls to make the plugin


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetSpec(Generic[B]):
    """One import API, as the manifest, the run and the pre-flight check know it."""

    type: str  # its manifest ``target.type``
    parse: Callable[[Reader, Any, Path], TargetConfig]  # its ``target:`` section: keys, values, defaults
    capabilities: TargetCapabilities
    identity: Callable[[TargetConfig], str]  # where its imports land, as the ledger records it
    build: B  # the target, its client module imported only here
    extra: str | None = None  # the pip extra it needs (config/extras.py), checked when the manifest is read
    extra_modules: tuple[str, ...] | None = None  # ... the extra's modules it needs (None: all of them)


class Location(NamedTuple):
    """What a source's URL names: a bucket (or container) and a prefix, or a local folder."""

    bucket: str
    prefix: str  # "" or ends with "/"
    root: Path | None = None  # a local folder, absolute


def bucket_locator(scheme: str) -> Callable[[str, Path], Location | None]:
    """How a store whose URLs are ``<scheme>://bucket/prefix`` reads them (S3's bucket names: 3 to 223
    characters, which GCS's and Azure's containers fit in); the prefix ends with ``/``."""
    form = re.compile(rf"^{scheme}://(?P<bucket>[a-z0-9][a-z0-9._-]{{1,221}}[a-z0-9])(?:/(?P<prefix>.*))?$")

    def locate(url: str, _base_dir: Path) -> Location | None:
        m = form.match(url)
        return None if m is None else Location(m["bucket"], folder(m["prefix"] or ""))

    return locate


def folder(prefix: str) -> str:
    """A prefix as a folder: "" or ending with ``/``."""
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def split_bucket(rest: str) -> tuple[str, str]:
    """The bucket and the key of a native URL's part after ``scheme://`` (``lake/a/1.parquet``)."""
    bucket, _, key = rest.partition("/")
    return bucket, key


def bucket_url(source: SourceConfig) -> str:
    """A source named by its URL (``s3://lake/emb/``): the bucket and the prefix, however written."""
    return f"{source.scheme}://{source.bucket}/{source.prefix}"


def no_secrets(_source: SourceConfig) -> list[Secret]:
    return []


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSpec(Generic[B]):
    """One kind of store (S3 and S3-compatible, GCS, Azure Blob, local folders): its URLs, its keys in a
    source, how the ledger names it, and its lister."""

    scheme: str  # how the ledger and the registry name it (``s3``, ``gs``, ``az``, ``file``)
    spellings: tuple[str, ...]  # what people type for the scheme (``s3a``): a mistyped URL is named
    url_forms: tuple[str, ...]  # how messages write its URLs, in order
    locate: Callable[[str, Path], Location | None]  # what a URL names (folders: from the manifest's)
    keys: tuple[str, ...] = ()  # the source keys only some stores take, this one among them
    # its keys of a source's section as SourceConfig fields: (reader, section, its path, url, base folder)
    read_keys: Callable[[Reader, dict[str, Any], str, str, Path], dict[str, Any]]
    style_problem: Callable[[str, str, str | None, str | None], str | None]  # (style, bucket, region,
    # endpoint_url): why an object_url_style other than native cannot name its objects
    object_url: Callable[[StoredObject, str, str | None, str | None], str]  # (obj, style, region, endpoint)
    key: Callable[[SourceConfig], str] = bucket_url  # the source as the ledger names it
    bucket_and_key: Callable[[str], tuple[str, str]] = split_bucket  # of a native URL, after ``scheme://``
    secrets: Callable[[SourceConfig], list[Secret]] = no_secrets  # beyond credentials and URL user-info
    extra: str | None = None  # the pip extra its lister needs, checked when the manifest is read
    what: str = ""  # how that check names a source of this store (``an Azure source``)
    build: B  # its lister, the store's client module imported only here

    def problem(self, *, style: str, bucket: str, region: str | None, endpoint_url: str | None) -> str | None:
        """Why ``style`` cannot name this store's objects, or None when it can (native always can)."""
        return None if style == "native" else self.style_problem(style, bucket, region, endpoint_url)


@dataclass(frozen=True, slots=True)
class Plugins:
    """Every target API and store the manifest reader accepts, in the order messages list them."""

    targets: tuple[TargetSpec[Any], ...]
    stores: tuple[StoreSpec[Any], ...]

    def target(self, type_: str) -> TargetSpec[Any]:
        return next(spec for spec in self.targets if spec.type == type_)
