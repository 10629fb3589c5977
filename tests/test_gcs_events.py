"""The parser of Cloud Storage's Pub/Sub notifications: finalized, deleted, archived and overwritten
objects, payloads with and without the object's resource, and what is no notification."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.errors import NoticeError
from orchestrator.sources.gcs_events import gcs_notices
from orchestrator.sources.notices import Notice, NoticeKind

BUCKET = "lake"
GENERATION = "1765130400123456"


def resource(key: str = "emb/a.parquet", *, bucket: str = BUCKET, generation: str = GENERATION,
             size: str = "524288") -> dict[str, Any]:
    """An object's JSON API resource, as a JSON_API_V1 notification carries it."""
    return {"kind": "storage#object", "id": f"{bucket}/{key}/{generation}",
            "selfLink": f"https://www.googleapis.com/storage/v1/b/{bucket}/o/{key}", "name": key,
            "bucket": bucket, "generation": generation, "metageneration": "1",
            "contentType": "application/octet-stream", "timeCreated": "2026-12-07T18:00:00.123Z",
            "updated": "2026-12-07T18:00:00.123Z", "storageClass": "STANDARD",
            "timeStorageClassUpdated": "2026-12-07T18:00:00.123Z", "size": size,
            "md5Hash": "1B2M2Y8AsgTpgAmY7PhCfg==", "crc32c": "AAAAAA==", "etag": "CMDz2Kr/7ZEDEAE="}


def attributes(key: str = "emb/a.parquet", *, event: str = "OBJECT_FINALIZE", bucket: str = BUCKET,
               generation: str = GENERATION, payload: str = "JSON_API_V1", **more: str) -> dict[str, str]:
    """A notification's attributes, as Cloud Storage sets them."""
    return {"notificationConfig": f"projects/_/buckets/{bucket}/notificationConfigs/7", "eventType": event,
            "payloadFormat": payload, "bucketId": bucket, "objectId": key, "objectGeneration": generation,
            "eventTime": "2026-12-07T18:00:00.123456Z", **more}


def parse(data: str, attrs: dict[str, str]) -> list[Notice]:
    return gcs_notices(data, attrs, bucket=BUCKET)


def test_a_finalized_object_with_its_resource_or_without() -> None:
    created = Notice(NoticeKind.CREATED, BUCKET, "emb/a.parquet", size=524288, etag=GENERATION,
                     order="0000" + GENERATION)
    assert parse(json.dumps(resource()), attributes()) == [created]
    assert parse("", attributes(payload="NONE")) == [created._replace(size=None)]
    replacing = attributes(overwroteGeneration="1765130000000000")  # an overwrite is a new complete object
    assert parse(json.dumps(resource()), replacing) == [created]


def test_orders_follow_generations_as_text() -> None:
    orders = [parse("", attributes(payload="NONE", generation=g))[0].order
              for g in ("9", "10", "1765130400123456")]
    assert orders == sorted(orders) and all(len(o or "") == 20 for o in orders)


@pytest.mark.parametrize("event", ["OBJECT_DELETE", "OBJECT_ARCHIVE"])
def test_a_deleted_or_archived_object_is_removed_unless_overwritten(event: str) -> None:
    assert parse(json.dumps(resource()), attributes(event=event)) == [
        Notice(NoticeKind.REMOVED, BUCKET, "emb/a.parquet", size=524288, etag=GENERATION,
               order="0000" + GENERATION)]
    [overwritten] = parse(json.dumps(resource()),
                          attributes(event=event, overwrittenByGeneration="1765130499"))
    assert (overwritten.kind, overwritten.key) == (NoticeKind.IGNORED, "emb/a.parquet")
    assert overwritten.why == (f"generation {GENERATION} was overwritten by generation 1765130499, which its "
                               "own OBJECT_FINALIZE announces")


def test_other_events_buckets_and_folder_markers_are_ignored() -> None:
    [metadata] = parse(json.dumps(resource()), attributes(event="OBJECT_METADATA_UPDATE"))
    assert (metadata.kind, metadata.why) == (NoticeKind.IGNORED, "event type OBJECT_METADATA_UPDATE")
    [other] = parse(json.dumps(resource(bucket="archive")), attributes(bucket="archive"))
    assert (other.kind, other.bucket, other.why) == (NoticeKind.IGNORED, "archive",
                                                     "bucket 'archive', not 'lake'")
    assert parse("", attributes("emb/", payload="NONE"))[0].why == "a folder marker"
    assert parse("", attributes("emb/", event="OBJECT_DELETE", payload="NONE"))[0].kind is NoticeKind.IGNORED


def test_hostile_attributes_make_short_reasons() -> None:
    for attrs in (attributes(event="X\x1b[2J" * 5000), attributes(bucket="b\n" * 5000),
                  attributes(event="OBJECT_DELETE", overwrittenByGeneration="9\n" * 5000)):
        [notice] = parse(json.dumps(resource()), attrs)
        assert notice.kind is NoticeKind.IGNORED and len(notice.why) < 250
        assert "\n" not in notice.why and "\x1b" not in notice.why


@pytest.mark.parametrize("key", ["emb/c d/é+#%.parquet", "emb/日本/データ 1.parquet", "emb/a%20b.parquet"])
def test_keys_are_the_object_names_as_written(key: str) -> None:
    """objectId is the object's name itself (not URL-encoded): nothing is decoded."""
    assert [n.key for n in parse(json.dumps(resource(key)), attributes(key))] == [key]


def test_odd_sizes_are_left_out() -> None:
    for size in ("", "-1", "1.5", "١٢"):
        assert parse(json.dumps(resource(size=size)), attributes())[0].size is None
    number = {**resource(), "size": 12}  # the JSON API writes sizes as strings
    assert parse(json.dumps(number), attributes())[0].size is None


@pytest.mark.parametrize(("data", "attrs", "problem"), [
    ("{}", {}, "it lacks the eventType, bucketId or objectId attribute"),
    ("{}", {"eventType": "OBJECT_FINALIZE", "bucketId": BUCKET}, "lacks the eventType, bucketId or objectId"),
    ("{}", {**attributes(), "objectId": ""}, "lacks the eventType, bucketId or objectId"),
    ("", attributes(generation="abc"), "objectGeneration 'abc' is not a generation number"),
    ("", attributes(generation="1" * 25), "is not a generation number"),
    ("not json", attributes(), "payloadFormat is JSON_API_V1 but the data is not JSON"),
    ("", attributes(), "payloadFormat is JSON_API_V1 but the data is not JSON"),
    ("[1]", attributes(), "the data is a JSON list, not an object resource"),
])
def test_what_is_no_notification(data: str, attrs: dict[str, str], problem: str) -> None:
    with pytest.raises(NoticeError) as info:
        parse(data, attrs)
    assert problem in str(info.value) and "\n" not in str(info.value)
