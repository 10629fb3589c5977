"""S3's notifications as SQS delivers them: the pure parser (S3's own JSON, EventBridge's shape, an SNS
envelope, s3:TestEvent, poison) and the SQS queue against moto's server."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from orchestrator.errors import NoticeError
from orchestrator.sources.notices import Notice, NoticeKind
from orchestrator.sources.s3_events import SqsQueue, parse_notices


def s3_record(key: str, *, event: str = "ObjectCreated:Put", bucket: str = "lake", size: int = 10,
              etag: str = "abc", sequencer: str = "0055AED6DCD90281E5") -> dict[str, Any]:
    """A record exactly as S3 writes it (its key URL-encoded, + for a space)."""
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-12-07T10:00:00.000Z", "eventName": event,
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "lake",
                   "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                   "object": {"key": key, "size": size, "eTag": etag, "sequencer": sequencer}}}


def eventbridge(key: str, *, kind: str = "Object Created") -> dict[str, Any]:
    return {"version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": kind,
            "source": "aws.s3", "account": "123456789012", "region": "us-east-1",
            "detail": {"version": "0", "bucket": {"name": "lake"},
                       "object": {"key": key, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184",
                                  "sequencer": "00617F08299329D189"}}}


def test_s3_records_decode_keys_and_name_their_kind() -> None:
    body = json.dumps({"Records": [s3_record("emb/day%3D01/a+b.parquet"),
                                   s3_record("emb/x.parquet", event="ObjectRemoved:Delete"),
                                   s3_record("emb/y.parquet", event="ObjectRestore:Completed")]})
    created, removed, other = parse_notices(body)
    assert created == Notice(NoticeKind.CREATED, "lake", "emb/day=01/a b.parquet", size=10, etag="abc",
                             order="0055AED6DCD90281E5")
    assert (removed.kind, removed.key) == (NoticeKind.REMOVED, "emb/x.parquet")
    assert (other.kind, other.why) == (NoticeKind.IGNORED, "event ObjectRestore:Completed")


def test_test_event_eventbridge_and_sns() -> None:
    [test] = parse_notices(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "lake"}))
    assert (test.kind, test.why) == (NoticeKind.IGNORED, "s3:TestEvent")
    [made] = parse_notices(json.dumps(eventbridge("emb/a b+c.parquet")))
    assert made == Notice(NoticeKind.CREATED, "lake", "emb/a b+c.parquet", size=5,
                          etag="b1946ac92492d2347c6235b4d2611184", order="00617F08299329D189")
    assert parse_notices(json.dumps(eventbridge("k", kind="Object Deleted")))[0].kind is NoticeKind.REMOVED
    assert parse_notices(json.dumps(eventbridge("k", kind="Object Tags Added")))[0].kind is NoticeKind.IGNORED
    sns = {"Type": "Notification", "MessageId": "m", "Message": json.dumps({"Records": [s3_record("a%20b")]})}
    assert parse_notices(json.dumps(sns))[0].key == "a b"


@pytest.mark.parametrize(("body", "why"), [
    ("not json {", "not JSON: no S3 notification"),
    ("[1, 2]", "JSON list, not an S3 notification"),
    ('{"hello": 1}', "an unknown shape"),
    ('{"Records": {}}', "Records is not a list"),
    ('{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {}}}]}',
     "a record without key"),
    ('{"Records": [{"s3": {}}]}', "a record without eventName"),
    ('{"Type": "Notification", "Message": "x"}', "an SNS notification whose Message is not JSON"),
])
def test_poison_is_a_notice_error(body: str, why: str) -> None:
    with pytest.raises(NoticeError) as info:
        parse_notices(body)
    assert str(info.value).startswith(why)


def test_the_sqs_queue_receives_counts_deliveries_and_deletes(env: dict[str, str]) -> None:
    sqs = boto3.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    url = sqs.create_queue(QueueName="events-unit", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    queue = SqsQueue(sqs, url=url)
    for i in range(12):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": [s3_record(f"k{i}")]}))
    first = queue.receive(50, 0)
    assert 1 <= len(first) <= 10 and all(m.deliveries == 1 for m in first)
    again = queue.receive(10, 0)  # visibility 0: delivered again at once
    assert any(m.deliveries == 2 for m in again)
    seen: dict[str, Any] = {}
    while batch := queue.receive(10, 0):
        queue.delete(batch)
        seen.update((m.id, queue.notices(m)[0].key) for m in batch)
    assert sorted(seen.values()) == sorted(f"k{i}" for i in range(12))
    assert queue.receive(10, 0) == []
