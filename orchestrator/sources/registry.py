"""Every store a manifest's sources may name, in the order messages list them, each declared once in its
own module (``SPEC``: URL scheme and forms, keys, validation, identity, secrets, object URLs, lister).
Adding a store is its spec module and one line here.

Listers are imported on first use: a run over S3 never pays for importing the GCS client, nor a run over a
local folder for boto3 (a few hundred milliseconds each, on every cron run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Protocol, TypeVar

from ..config.manifest import Settings, SourceConfig
from ..config.plugins import StoreSpec, split_bucket
from ..errors import SourceError
from ..models import StoredObject
from . import azure_spec, gcs_spec, local, s3_spec
from .base import Source
from .notices import EventQueue

Builder = Callable[[SourceConfig, Settings], Source]
T = TypeVar("T")

STORES: tuple[StoreSpec[Builder], ...] = (s3_spec.SPEC, gcs_spec.SPEC, azure_spec.SPEC, local.SPEC)
BY_SCHEME: dict[str, StoreSpec[Builder]] = {spec.scheme: spec for spec in STORES}


class Inventory(Protocol):
    """A store's inventory of a source's bucket (S3 Inventory), read instead of listing it."""

    @property
    def label(self) -> str:
        """How messages name it."""
        ...

    @property
    def created(self) -> float:
        """When the store made it (seconds since the epoch): what it cannot know is newer."""
        ...

    def objects(self) -> Iterator[StoredObject]:
        """Every object it names (``found="inventory"``)."""
        ...


QueueBuilder = Callable[[str, SourceConfig, Settings], EventQueue]  # (the source's queue, it, settings)
InventoryBuilder = Callable[[str, SourceConfig, Settings], Inventory]  # (its inventory, it, settings)


def _sqs(url: str, source: SourceConfig, settings: Settings) -> EventQueue:
    from .s3_events import make_sqs_queue  # boto3: imported when a queue is read

    return make_sqs_queue(url, source, settings)


def _storage_queue(url: str, source: SourceConfig, settings: Settings) -> EventQueue:
    from .azure_queue import make_azure_queue  # the azure extra's queue client: imported when read

    return make_azure_queue(url, source, settings)


def _pubsub(subscription: str, source: SourceConfig, settings: Settings) -> EventQueue:
    from .gcs_queue import make_gcs_queue  # the gcs-events extra (google-cloud-pubsub): imported when read

    return make_gcs_queue(subscription, source, settings)


def _s3_inventory(url: str, source: SourceConfig, settings: Settings) -> Inventory:
    from .s3_inventory import make_inventory as made  # boto3 and pyarrow: imported when an inventory is read

    return made(url, source, settings)


# discovery: events: a store's scheme -> the reader of the queue its notifications reach (the extra
# each needs is checked when the manifest is read: config/discovery.py's QUEUE_FORMS)
QUEUES: dict[str, QueueBuilder] = {"s3": _sqs, "az": _storage_queue, "gs": _pubsub}
# discovery: inventory: a store's scheme -> the reader of its inventory
INVENTORIES: dict[str, InventoryBuilder] = {"s3": _s3_inventory}


def make_queue(source: SourceConfig, settings: Settings) -> EventQueue:
    """The queue of ``source``'s notifications (its ``queue``)."""
    return _made(QUEUES, source.queue, source, settings)


def make_inventory(source: SourceConfig, settings: Settings) -> Inventory:
    """The inventory of ``source`` (its ``inventory``)."""
    return _made(INVENTORIES, source.inventory, source, settings)


def _made(table: Mapping[str, Callable[[str, SourceConfig, Settings], T]], where: str | None,
          source: SourceConfig, settings: Settings) -> T:
    """What ``source``'s store builds at ``where``; raises :class:`SourceError` naming the source when
    the store has no builder in ``table``."""
    build = table.get(source.scheme)
    if build is None or where is None:
        raise SourceError(f"{source.label}: discovery: {source.discovery} is not available for "
                          f"{source.scheme}:// sources in this build: use discovery: list")
    return build(where, source, settings)


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
