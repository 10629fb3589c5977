"""Cloud Storage's Pub/Sub notifications: the pure parser (the subscription that receives them is
:mod:`orchestrator.sources.gcs_queue`).

A notification names its object in its attributes (``eventType``, ``bucketId``, ``objectId``,
``objectGeneration``, ``payloadFormat``); with ``payloadFormat: JSON_API_V1`` its data is the object's
JSON resource (``size``, ``md5Hash``, ``generation``, ``updated``), with ``NONE`` it is empty.

- ``OBJECT_FINALIZE`` is a complete object (GCS writes an object whole: there is no partial write).
- ``OBJECT_DELETE`` and ``OBJECT_ARCHIVE`` (a versioned bucket's live object made noncurrent) are
  REMOVED, unless they carry ``overwrittenByGeneration``: then the key was overwritten, not removed,
  and the new generation's ``OBJECT_FINALIZE`` announces it (IGNORED).
- ``OBJECT_METADATA_UPDATE`` and other event types, objects of another bucket and folder markers are
  IGNORED; keys outside the source's prefix are the caller's to filter, as for every store.

A notice's ``etag`` is the generation (the listing's version of a GCS object); its ``order`` is the
generation zero-padded to 20 digits, so that text order is the generations' order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import NoticeError
from ..terminal import clip, printable
from .notices import Notice, NoticeKind

FINALIZE = "OBJECT_FINALIZE"
REMOVALS = frozenset({"OBJECT_DELETE", "OBJECT_ARCHIVE"})
JSON_PAYLOAD = "JSON_API_V1"
_GENERATION = re.compile(r"^[0-9]{1,19}$")


def gcs_notices(data: str, attributes: Mapping[str, str], *, bucket: str) -> list[Notice]:
    """The notice of one Pub/Sub message for the source reading ``bucket`` (a list, as every store's
    parser returns). Raises :class:`NoticeError` when the message is no Cloud Storage notification."""
    event, where, key = (attributes.get(name) for name in ("eventType", "bucketId", "objectId"))
    if not (event and where and key):
        raise NoticeError("not a Cloud Storage notification: it lacks the eventType, bucketId or objectId "
                          "attribute (is the topic fed by something else?)")
    generation = attributes.get("objectGeneration")
    if generation is not None and not _GENERATION.match(generation):
        raise NoticeError(f"not a Cloud Storage notification: objectGeneration {generation[:40]!r} is not a "
                          "generation number")
    resource = _resource(data) if attributes.get("payloadFormat") == JSON_PAYLOAD else {}
    kind = NoticeKind.CREATED if event == FINALIZE else NoticeKind.REMOVED if event in REMOVALS \
        else NoticeKind.IGNORED
    notice = Notice(kind, where, key, size=_size(resource.get("size")), etag=generation,
                    order=None if generation is None else generation.zfill(20),
                    why="" if kind is not NoticeKind.IGNORED else f"event type {clip(printable(event), 100)}")
    ignored = _ignored(notice, attributes, bucket)
    return [notice if ignored is None else notice._replace(kind=NoticeKind.IGNORED, why=ignored)]


def _resource(data: str) -> Mapping[str, Any]:
    try:
        resource = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise NoticeError(f"payloadFormat is {JSON_PAYLOAD} but the data is not JSON") from None
    if not isinstance(resource, dict):
        raise NoticeError(f"payloadFormat is {JSON_PAYLOAD} but the data is a JSON "
                          f"{type(resource).__name__}, not an object resource")
    return resource


def _ignored(notice: Notice, attributes: Mapping[str, str], bucket: str) -> str | None:
    """Why this notification is nothing to import or remove here, or None."""
    if notice.kind is NoticeKind.IGNORED:
        return notice.why
    if notice.bucket != bucket:
        return f"bucket {clip(printable(repr(notice.bucket)), 100)}, not {bucket!r}"
    if notice.key.endswith("/"):
        return "a folder marker"
    replaced_by = attributes.get("overwrittenByGeneration")
    if notice.kind is NoticeKind.REMOVED and replaced_by:
        newer = clip(printable(replaced_by), 40)
        return f"generation {notice.etag} was overwritten by generation {newer}, which its own " \
               "OBJECT_FINALIZE announces"
    return None


def _size(value: Any) -> int | None:
    """The resource's size: a decimal string in the JSON API."""
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else None
