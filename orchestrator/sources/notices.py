"""What an event queue delivers, whatever the store: messages, and the notices (object created or
removed) read from them. The discovery modes ``events`` and ``inventory`` (see the README's Discovery
section) find objects through these instead of listing the whole prefix; the ledger deduplicates.

Each store's queue module implements :class:`EventQueue` (S3 through SQS, Azure Event Grid through a
Storage Queue, GCS through Pub/Sub); each parser turns one message into notices, pure, and raises
:class:`orchestrator.errors.NoticeError` for a message that is no notification at all.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol


class NoticeKind(enum.StrEnum):
    """What a notice says of its object."""

    # a complete object was written (S3 ObjectCreated:*; Azure PutBlob, PutBlockList, FlushWithClose;
    # GCS OBJECT_FINALIZE)
    CREATED = "created"
    REMOVED = "removed"  # deleted (S3 ObjectRemoved:*, Azure BlobDeleted, GCS OBJECT_DELETE)
    IGNORED = "ignored"  # a notification about nothing to import (s3:TestEvent, an incomplete write, ...)


class Notice(NamedTuple):
    """One object a notification names. ``key`` is decoded (S3 sends it URL-encoded with + for a
    space); ``etag`` is the content's identity as the store gives it (S3 ETag without quotes, Azure
    eTag, GCS generation), None when the message does not carry it; ``order`` orders notices of one
    key (S3's hex ``sequencer``, Azure's ``sequencer``, GCS's generation), None when absent; ``why``
    says why an IGNORED notice is ignored (for the log)."""

    kind: NoticeKind
    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    order: str | None = None
    why: str = ""


class Message(NamedTuple):
    """One delivery of a queue message. ``id`` is the queue's message id (the same on a redelivery);
    ``receipt`` is what deleting this delivery takes (SQS receipt handle, Azure pop receipt, Pub/Sub
    ack id); ``deliveries`` how many times it has been received (1 the first time), for the log of a
    message the queue keeps redelivering."""

    id: str
    receipt: str
    body: str
    attributes: Mapping[str, str]
    deliveries: int


class EventQueue(Protocol):
    """A queue of one store's notifications, as a discovery reads it."""

    label: str  # the queue as messages name it (its URL or name, never a credential)

    def receive(self, most: int, wait_s: float) -> list[Message]:
        """Up to ``most`` messages, waiting at most ``wait_s`` seconds for the first (0: do not wait);
        an empty list when the queue holds none. Raises :class:`orchestrator.errors.SourceError`
        naming the queue."""
        ...

    def delete(self, messages: Sequence[Message]) -> None:
        """Delete these deliveries (once the ledger has recorded what they caused). Raises
        :class:`orchestrator.errors.SourceError` naming the queue."""
        ...

    def notices(self, message: Message) -> list[Notice]:
        """The notices of one message, in this store's shape; raises
        :class:`orchestrator.errors.NoticeError` when it is no notification."""
        ...
