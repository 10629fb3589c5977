"""Azure Event Grid's blob events, as a Storage Queue holds them: the pure parser (the queue that
receives them is :mod:`orchestrator.sources.azure_queue`).

Event Grid writes one event per queue message, base64-encoded by default (the JSON itself when the
queue's messages are read without decoding); a message may also hold an array of events. Both event
schemas a subscription can be set to are read: the Event Grid schema (``eventType``, ``topic``,
``subject: /blobServices/default/containers/<c>/blobs/<path>``) and CloudEvents 1.0 (``type``,
``source``, the same subject without its first ``/``). ``data`` is the same in both: ``url``, ``eTag``,
``contentLength``, ``api``, ``blobType``, ``sequencer``.

- ``Microsoft.Storage.BlobCreated`` is a complete blob only when written by ``PutBlob``,
  ``PutBlockList`` or ``FlushWithClose`` (Data Lake Gen2); ``CreateFile`` (an empty file about to be
  appended to), ``CopyBlob`` (on a hierarchical namespace it fires when the copy starts) and the rest
  are IGNORED, as are append and page blobs (written by calls that send no event). The backfill
  listing finds what an ignored event leaves out.
- ``Microsoft.Storage.BlobDeleted`` is REMOVED; every other event type (``BlobTierChanged``,
  ``BlobRenamed``, ``DirectoryCreated``, ...) is IGNORED.
- An event of another storage account or container is IGNORED (one queue may serve several
  subscriptions); keys outside the source's prefix are the caller's to filter, as for every store.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import NoticeError
from ..terminal import clip, printable
from .notices import Notice, NoticeKind

CREATED = "Microsoft.Storage.BlobCreated"
DELETED = "Microsoft.Storage.BlobDeleted"
COMPLETE_WRITES = frozenset({"PutBlob", "PutBlockList", "FlushWithClose"})
_UNANNOUNCED = {"AppendBlob": "an append blob", "PageBlob": "a page blob"}
_SUBJECT = re.compile(r"^/?blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<key>.+)$",
                      re.DOTALL)
_ACCOUNT = re.compile(r"/storageAccounts/(?P<account>[^/]+)$", re.IGNORECASE)


def azure_notices(body: str, *, account: str, container: str) -> list[Notice]:
    """The notices of one Storage Queue message for the source reading ``container`` of ``account``.
    Raises :class:`NoticeError` when the message is no Event Grid event (not JSON, nor base64 of JSON;
    neither schema; a blob event without its subject)."""
    parsed = _json(body)
    events = parsed if isinstance(parsed, list) else [parsed]
    return [_notice(event, account, container) for event in events]


def _json(body: str) -> Any:
    text = body.strip()
    if not text:
        raise NoticeError("not an Event Grid event: the message is empty")
    if not text.startswith(("{", "[")):
        try:
            text = base64.b64decode(text, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise NoticeError("not an Event Grid event: the message is neither JSON nor base64 of JSON "
                              "(is the queue fed by something else?)") from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise NoticeError("not an Event Grid event: the message is not JSON") from None


def _notice(event: Any, account: str, container: str) -> Notice:
    if not isinstance(event, dict):
        raise NoticeError(f"not an Event Grid event: a JSON {type(event).__name__}, not an object")
    if isinstance(event.get("eventType"), str):  # the Event Grid schema
        kind, origin = event["eventType"], event.get("topic")
    elif isinstance(event.get("type"), str) and "specversion" in event:  # CloudEvents 1.0
        kind, origin = event["type"], event.get("source")
    else:
        raise NoticeError("not an Event Grid event: neither eventType (Event Grid schema) nor specversion "
                          "and type (CloudEvents)")
    subject = event.get("subject")
    found = _SUBJECT.match(subject) if isinstance(subject, str) else None
    if kind not in (CREATED, DELETED):
        where = ("", "") if found is None else (found["container"], found["key"])
        return Notice(NoticeKind.IGNORED, *where, why=f"event type {_shown(kind)}")
    if found is None:
        raise NoticeError(f"a {kind} event without a blob subject (/blobServices/default/containers/<c>/"
                          "blobs/<path>)")
    data: Mapping[str, Any] = event["data"] if isinstance(event.get("data"), dict) else {}
    notice = Notice(NoticeKind.REMOVED if kind == DELETED else NoticeKind.CREATED,
                    found["container"], found["key"], size=_size(data.get("contentLength")),
                    etag=data["eTag"].strip('"') if isinstance(data.get("eTag"), str) else None,
                    order=data["sequencer"] if isinstance(data.get("sequencer"), str) else None)
    ignored = _ignored(notice, data, _origin_account(origin), account, container)
    return notice if ignored is None else notice._replace(kind=NoticeKind.IGNORED, why=ignored)


def _ignored(notice: Notice, data: Mapping[str, Any], origin: str | None, account: str,
             container: str) -> str | None:
    """Why this blob event is nothing to import or remove here, or None."""
    if origin is not None and origin != account:
        return f"storage account {_shown(repr(origin))}, not {account!r}"
    if notice.bucket != container:
        return f"container {_shown(repr(notice.bucket))}, not {container!r}"
    if notice.key.endswith("/"):
        return "a folder marker"
    if notice.kind is NoticeKind.CREATED:
        api, blob_type = data.get("api"), data.get("blobType")
        if not isinstance(api, str) or api not in COMPLETE_WRITES:
            call = _shown(api if isinstance(api, str) else repr(api)) if api else "an unnamed call"
            return f"written by {call}: not a complete blob (PutBlob, PutBlockList or FlushWithClose)"
        if isinstance(blob_type, str) and blob_type in _UNANNOUNCED:
            return f"{_UNANNOUNCED[blob_type]}, written by calls that send no event"
    return None


def _origin_account(origin: Any) -> str | None:
    """The storage account of an event's topic (Event Grid) or source (CloudEvents)."""
    found = _ACCOUNT.search(origin) if isinstance(origin, str) else None
    return None if found is None else found["account"]


def _shown(text: str) -> str:
    """A value from the message, for a log line: control characters escaped, at most 100 characters."""
    return clip(printable(text), 100)


def _size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
