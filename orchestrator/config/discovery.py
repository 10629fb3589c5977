"""How a source's objects are found (``discovery``: a listing, a queue of the store's notifications,
or an inventory) and the forms its ``queue`` and ``inventory`` keys take, store by store. Which
readers exist for each is the sources' registry's (:data:`orchestrator.sources.registry.QUEUES`).
"""

from __future__ import annotations

import re
from typing import NamedTuple

LIST, EVENTS, INVENTORY = "list", "events", "inventory"
MODES = (LIST, EVENTS, INVENTORY)
DEFAULT_BACKFILL_S = 86_400.0  # a full listing a day when objects come from events or an inventory
MAX_BACKFILL_S = 366 * 86_400.0

_NUMBER = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(rf"(?:{_NUMBER}d)?(?:{_NUMBER}h)?(?:{_NUMBER}m)?(?:{_NUMBER}s?)?")


class QueueForm(NamedTuple):
    """What a store's notifications queue looks like in a manifest, and the optional extra (and which
    of its modules) its reader needs (config/extras.py), checked when the manifest is read."""

    form: re.Pattern[str]
    shown: str  # the form as an error message names it
    extra: str | None = None
    modules: tuple[str, ...] | None = None


_AZURE_QUEUE = r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]"  # 3 to 63: lowercase, digits, single hyphens
_HOST = r"[A-Za-z0-9.-]+(?::\d+)?"
_AZURE_HOST = r"(?i:[a-z0-9]{3,24}\.queue\.)"  # <account>.queue.<suffix>: the queue's path is its name alone
# scheme -> the queue its notifications reach; a store without a row takes no `discovery: events`.
# Each form accepts what the store's queue reader accepts (sources/azure_queue.py's queue_location,
# sources/gcs_queue.py's subscription_problem), no more.
QUEUE_FORMS: dict[str, QueueForm] = {
    # https://sqs.<region>.amazonaws.com/<account>/<queue>, or an endpoint of its own (LocalStack, moto)
    "s3": QueueForm(re.compile(r"^https?://[A-Za-z0-9.-]+(?::\d+)?/\d{12}/[A-Za-z0-9_-]{1,80}(?:\.fifo)?$"),
                    "an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>)"),
    # https://<account>.queue.core.windows.net/<queue> (or another cloud's suffix), or an emulator's
    # http://host:port/<account>/<queue>
    "az": QueueForm(re.compile(rf"^https?://(?:{_AZURE_HOST}{_HOST}/{_AZURE_QUEUE}"
                               rf"|(?!{_AZURE_HOST})[A-Za-z0-9.-]+:\d+/[a-z0-9]{{3,24}}/{_AZURE_QUEUE})/?$"),
                    "an Azure Storage queue URL (https://<account>.queue.core.windows.net/<queue>)",
                    extra="azure", modules=("azure.storage.queue",)),
    # a project id (a domain-scoped one too: example.com:project), a subscription name of ASCII
    "gs": QueueForm(re.compile(r"^projects/[a-z][a-z0-9.:-]{4,61}[a-z0-9]"
                               r"/subscriptions/[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$"),
                    "a Pub/Sub subscription (projects/<project>/subscriptions/<subscription>)",
                    extra="gcs-events"),
}
# scheme -> the form of its inventory's location; a store without a row takes no `discovery: inventory`
INVENTORY_FORMS: dict[str, QueueForm] = {
    "s3": QueueForm(re.compile(r"^s3://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9](?:/.*)?$"),
                    "an s3:// URL of where S3 Inventory delivers, or of one manifest.json"),
}


def seconds(text: str) -> float | None:
    """A duration in seconds (``90``, ``90s``, ``45m``, ``24h``, ``1d``, ``1h30m``; ``0``), else None."""
    found = _DURATION.fullmatch(text.strip().lower())
    if not found or not any(g is not None for g in found.groups()):
        return None
    days, hours, minutes, secs = (float(g or 0) for g in found.groups())
    return days * 86_400 + hours * 3600 + minutes * 60 + secs
