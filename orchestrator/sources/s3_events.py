"""S3 event notifications read from an SQS queue: the :class:`~orchestrator.sources.notices.EventQueue`
of ``discovery: events`` on an ``s3://`` source, and the pure parser of what S3 sends.

A message's body is S3's own notification (``Records[]``: ``eventName`` ``ObjectCreated:*`` or
``ObjectRemoved:*``, ``s3.bucket.name``, ``s3.object.key`` URL-encoded with ``+`` for a space, ``size``,
``eTag``, ``sequencer``; ``{"Event": "s3:TestEvent"}`` when the configuration is saved), the shape
EventBridge delivers (``detail-type`` ``Object Created`` / ``Object Deleted``, ``detail.object.key`` not
encoded, ``etag``), or either inside an SNS envelope (``{"Type": "Notification", "Message": "<json>"}``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import NoticeError, SourceError
from ..redact import shown_url
from .notices import Message, Notice, NoticeKind
from .s3 import aws_client, describe_boto_error

if TYPE_CHECKING:
    from ..config.manifest import Settings, SourceConfig

log = logging.getLogger("orchestrator")
MOST = 10  # SQS gives at most 10 messages a call, and deletes at most 10 a batch
LONGEST_WAIT_S = 20  # SQS's longest long poll


def make_sqs_queue(url: str, source: SourceConfig, _settings: Settings) -> SqsQueue:
    """The SQS queue at ``url``, its client made as the source's S3 client is (profile, endpoint_url);
    the region is the source's, else the queue URL's (``sqs.<region>.amazonaws.com``)."""
    host = url.split("/")[2]
    region = source.region or (host.split(".")[1] if host.startswith("sqs.") else None)
    client = aws_client(source, "sqs", region=region, read_timeout_s=LONGEST_WAIT_S + 10, options=Config())
    return SqsQueue(client, url=url)


class SqsQueue:
    """An SQS queue of S3 notifications."""

    def __init__(self, client: Any, *, url: str) -> None:
        self.client = client
        self.url = url
        self.label = shown_url(url)

    def receive(self, most: int, wait_s: float) -> list[Message]:
        try:
            reply = self.client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=max(1, min(MOST, most)),
                WaitTimeSeconds=int(max(0, min(LONGEST_WAIT_S, wait_s))),
                AttributeNames=["ApproximateReceiveCount"])
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(f"{self.label}: cannot receive: {describe_boto_error(exc)}") from exc
        return [Message(id=m["MessageId"], receipt=m["ReceiptHandle"], body=m.get("Body", ""),
                        attributes=m.get("Attributes", {}),
                        deliveries=int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)))
                for m in reply.get("Messages", [])]

    def delete(self, messages: Sequence[Message]) -> None:
        """Delete in batches of 10. A delivery SQS could not delete (its receipt expired: the message
        was delivered again meanwhile) is logged: it comes back, and the ledger makes it a no-op."""
        for start in range(0, len(messages), MOST):
            batch = messages[start:start + MOST]
            try:
                reply = self.client.delete_message_batch(QueueUrl=self.url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(batch)])
            except (ClientError, BotoCoreError) as exc:
                raise SourceError(f"{self.label}: cannot delete messages: "
                                  f"{describe_boto_error(exc)}") from exc
            for failed in reply.get("Failed", []):
                message = batch[int(failed["Id"])]
                log.warning("%s: message %s not deleted (%s): it will be delivered again, and change nothing",
                            self.label, message.id, failed.get("Code", "unknown"),
                            extra={"event": "message-not-deleted", "queue": self.label,
                                   "message_id": message.id})

    def notices(self, message: Message) -> list[Notice]:
        return parse_notices(message.body)


def parse_notices(body: str) -> list[Notice]:
    """The notices of one SQS message body; :class:`NoticeError` when it is no S3 notification."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise NoticeError("not JSON: no S3 notification") from None
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        try:  # an SNS topic between the bucket and the queue
            doc = json.loads(doc["Message"])
        except ValueError:
            raise NoticeError("an SNS notification whose Message is not JSON") from None
    if not isinstance(doc, dict):
        raise NoticeError(f"JSON {type(doc).__name__}, not an S3 notification")
    if doc.get("Event") == "s3:TestEvent":
        return [Notice(NoticeKind.IGNORED, str(doc.get("Bucket", "")), "", why="s3:TestEvent")]
    if "Records" in doc:
        records = doc["Records"]
        if not isinstance(records, list):
            raise NoticeError("Records is not a list")
        return [_record(r) for r in records]
    if doc.get("source") == "aws.s3" and "detail-type" in doc:
        return [_eventbridge(doc)]
    raise NoticeError("an unknown shape (neither S3's Records, s3:TestEvent nor an EventBridge S3 event)")


def _record(record: Any) -> Notice:
    """One record of S3's own notification."""
    name = _text(record, "eventName")
    obj = _field(record, "s3", "object")
    bucket = _text(_field(record, "s3", "bucket"), "name")
    key = unquote_plus(_text(obj, "key"))
    kind = NoticeKind.CREATED if name.startswith("ObjectCreated:") else \
        NoticeKind.REMOVED if name.startswith("ObjectRemoved:") else NoticeKind.IGNORED
    return Notice(kind, bucket, key, size=_size(obj.get("size")), etag=_etag(obj.get("eTag")),
                  order=_optional(obj.get("sequencer")),
                  why="" if kind is not NoticeKind.IGNORED else f"event {name}")


def _eventbridge(doc: Mapping[str, Any]) -> Notice:
    """An S3 event as EventBridge delivers it (its key is not encoded)."""
    kind_name = str(doc["detail-type"])
    obj = _field(doc, "detail", "object")
    bucket = _text(_field(doc, "detail", "bucket"), "name")
    kind = {"Object Created": NoticeKind.CREATED, "Object Deleted": NoticeKind.REMOVED}.get(
        kind_name, NoticeKind.IGNORED)
    return Notice(kind, bucket, _text(obj, "key"), size=_size(obj.get("size")), etag=_etag(obj.get("etag")),
                  order=_optional(obj.get("sequencer")),
                  why="" if kind is not NoticeKind.IGNORED else f"event {kind_name}")


def _field(node: Any, *path: str) -> Mapping[str, Any]:
    for name in path:
        node = node.get(name) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        raise NoticeError(f"a record without {'.'.join(path)}")
    return node


def _text(node: Any, name: str) -> str:
    value = node.get(name) if isinstance(node, Mapping) else None
    if not isinstance(value, str):
        raise NoticeError(f"a record without {name}")
    return value


def _size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _etag(value: Any) -> str | None:
    return value.strip('"') if isinstance(value, str) and value else None


def _optional(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
