"""The parser of Event Grid blob events as a Storage Queue holds them: both schemas, base64 or plain,
one event or an array; what is a complete blob, a removal, or nothing to do here; what is no event."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from orchestrator.errors import NoticeError
from orchestrator.sources.azure_events import azure_notices
from orchestrator.sources.notices import Notice, NoticeKind

ACCOUNT = "lakeaccount"
CONTAINER = "lake"
TOPIC = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
         f"Microsoft.Storage/storageAccounts/{ACCOUNT}")


def event(key: str = "emb/a.parquet", *, kind: str = "Microsoft.Storage.BlobCreated",
          api: str | None = "PutBlockList", container: str = CONTAINER, account: str = ACCOUNT,
          **data: Any) -> dict[str, Any]:
    """One event in the Event Grid schema, as Azure documents a Blob Storage event."""
    return {
        "topic": TOPIC.replace(ACCOUNT, account),
        "subject": f"/blobServices/default/containers/{container}/blobs/{key}",
        "eventType": kind,
        "eventTime": "2026-12-07T18:41:00.9584103Z",
        "id": "831e1650-001e-001b-66ab-eeb76e069631",
        "data": {"api": api, "clientRequestId": "6d79dbfb-0e37-4fc4-981f-442c9ca65760",
                 "requestId": "831e1650-001e-001b-66ab-eeb76e000000", "eTag": "0x8D4BCC2E4835CD0",
                 "contentType": "application/octet-stream", "contentLength": 524288, "blobType": "BlockBlob",
                 "url": f"https://{account}.blob.core.windows.net/{container}/{key}",
                 "sequencer": "00000000000004420000000000028963",
                 "storageDiagnostics": {"batchId": "b68529f3-68cd-4744-baa4-3c0498ec19f0"}, **data},
        "dataVersion": "",
        "metadataVersion": "1",
    }


def cloud_event(key: str = "emb/a.parquet", **options: Any) -> dict[str, Any]:
    """The same event in the CloudEvents 1.0 schema (an Event Grid subscription set to it)."""
    grid = event(key, **options)
    return {"specversion": "1.0", "type": grid["eventType"], "source": grid["topic"], "id": grid["id"],
            "time": grid["eventTime"], "subject": grid["subject"].lstrip("/"), "data": grid["data"]}


def queued(payload: Any) -> str:
    """A Storage Queue message as Event Grid writes it: base64 of the JSON."""
    return base64.b64encode(json.dumps(payload).encode()).decode()


def parse(body: str) -> list[Notice]:
    return azure_notices(body, account=ACCOUNT, container=CONTAINER)


@pytest.mark.parametrize("schema", [event, cloud_event])
@pytest.mark.parametrize("encode", [queued, json.dumps])
def test_a_complete_blob_in_either_schema_base64_or_not(schema: Any, encode: Any) -> None:
    assert parse(encode(schema())) == [Notice(NoticeKind.CREATED, CONTAINER, "emb/a.parquet", size=524288,
                                              etag="0x8D4BCC2E4835CD0",
                                              order="00000000000004420000000000028963")]


@pytest.mark.parametrize("api", ["PutBlob", "PutBlockList", "FlushWithClose"])
def test_the_writes_that_complete_a_blob(api: str) -> None:
    assert parse(queued(event(api=api)))[0].kind is NoticeKind.CREATED


@pytest.mark.parametrize("api", ["CreateFile", "CopyBlob", "PutBlockFromURL", "SftpCommit", None])
def test_other_writes_are_ignored_with_their_reason(api: str | None) -> None:
    [notice] = parse(queued(event(api=api)))
    assert notice.kind is NoticeKind.IGNORED and notice.key == "emb/a.parquet"
    assert notice.why == f"written by {api or 'an unnamed call'}: not a complete blob (PutBlob, " \
                         "PutBlockList or FlushWithClose)"


def test_append_and_page_blobs_are_ignored() -> None:
    assert parse(queued(event(blobType="AppendBlob")))[0].why == "an append blob, written by calls that " \
                                                                 "send no event"
    assert parse(queued(event(api="PutBlob", blobType="PageBlob")))[0].kind is NoticeKind.IGNORED


@pytest.mark.parametrize("api", ["DeleteBlob", "DeleteFile"])
def test_a_deleted_blob_is_removed(api: str) -> None:
    [notice] = parse(queued(event(kind="Microsoft.Storage.BlobDeleted", api=api, contentLength=None)))
    assert notice == Notice(NoticeKind.REMOVED, CONTAINER, "emb/a.parquet", etag="0x8D4BCC2E4835CD0",
                            order="00000000000004420000000000028963")


@pytest.mark.parametrize("kind", [f"Microsoft.Storage.{name}" for name in (
    "BlobTierChanged", "BlobRenamed", "DirectoryCreated", "AsyncOperationInitiated")])
def test_other_event_types_are_ignored(kind: str) -> None:
    [notice] = parse(queued(event(kind=kind)))
    assert (notice.kind, notice.key, notice.why) == (NoticeKind.IGNORED, "emb/a.parquet",
                                                     f"event type {kind}")
    custom = {"eventType": "Contoso.Items.ItemReceived", "subject": "items/1", "data": {}}
    assert parse(json.dumps(custom)) == [Notice(NoticeKind.IGNORED, "", "",
                                                why="event type Contoso.Items.ItemReceived")]


def test_another_container_or_account_is_ignored() -> None:
    [other] = parse(queued(event(container="archive")))
    assert (other.kind, other.bucket, other.why) == (NoticeKind.IGNORED, "archive",
                                                     "container 'archive', not 'lake'")
    [elsewhere] = parse(queued(cloud_event(account="otheraccount")))
    assert elsewhere.kind is NoticeKind.IGNORED
    assert elsewhere.why == "storage account 'otheraccount', not 'lakeaccount'"
    assert parse(queued(event(key="emb/")))[0].why == "a folder marker"


@pytest.mark.parametrize("key", ["emb/c d/é+#%.parquet", "emb/日本/データ 1.parquet", "emb/a%20b.parquet",
                                 "emb/line\nbreak.parquet"])
def test_keys_are_the_subjects_as_written(key: str) -> None:
    """The subject holds the blob's name as it is (data.url is percent-encoded): nothing is decoded."""
    encoded = event(key)
    encoded["data"]["url"] = encoded["data"]["url"].replace(" ", "%20")
    assert [n.key for n in parse(queued(encoded))] == [key]
    assert [n.key for n in parse(queued(cloud_event(key)))] == [key]


def test_an_array_of_events_and_odd_fields() -> None:
    assert [n.key for n in parse(queued([event("emb/1.parquet"), event("emb/2.parquet")]))] == \
           ["emb/1.parquet", "emb/2.parquet"]
    assert parse(queued([])) == []
    odd = event(eTag='"0x8D4"', contentLength=True, sequencer=7)
    assert parse(queued(odd)) == [Notice(NoticeKind.CREATED, CONTAINER, "emb/a.parquet", etag="0x8D4")]
    no_data = {**event(), "data": None}  # no api: not known to be a complete blob
    assert parse(queued(no_data))[0].kind is NoticeKind.IGNORED
    assert parse(f"  {queued(event())}\n")[0].kind is NoticeKind.CREATED


def test_hostile_fields_make_short_reasons_not_crashes() -> None:
    [listed] = parse(queued(event(api=["PutBlob"], blobType={"a": 1})))  # unhashable values
    assert listed.why == "written by ['PutBlob']: not a complete blob (PutBlob, PutBlockList or " \
                         "FlushWithClose)"
    assert parse(queued(event(api="PutBlob", blobType=["AppendBlob"])))[0].kind is NoticeKind.CREATED
    [long] = parse(queued(event(kind="X" * 10_000)))
    [odd] = parse(queued(event(api="Put\nBlob" + "x" * 10_000)))
    for notice in (long, odd):
        assert notice.kind is NoticeKind.IGNORED and len(notice.why) < 250 and "\n" not in notice.why


@pytest.mark.parametrize(("body", "problem"), [
    (" ", "the message is empty"),
    ("hello, queue", "neither JSON nor base64 of JSON"),
    ("eyJhIjo", "neither JSON nor base64 of JSON"),  # base64 cut short
    (base64.b64encode(b"\xff\xfe\x00").decode(), "neither JSON nor base64 of JSON"),  # not UTF-8
    (base64.b64encode(b"not json").decode(), "the message is not JSON"),
    ('{"eventType": ', "the message is not JSON"),
    ("[1, 2]", "a JSON int, not an object"),
    ('{"Records": []}', "neither eventType (Event Grid schema) nor specversion and type (CloudEvents)"),
    ('{"type": "Microsoft.Storage.BlobCreated"}', "neither eventType"),
    (json.dumps({**event(), "subject": "/blobServices/default/containers/lake"}), "without a blob subject"),
    (json.dumps({**event(), "subject": None}), "without a blob subject"),
])
def test_what_is_no_event(body: str, problem: str) -> None:
    with pytest.raises(NoticeError) as info:
        parse(body)
    assert problem in str(info.value) and "\n" not in str(info.value)
