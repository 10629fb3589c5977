"""discovery: events on Azure and GCS, end to end through the CLI: Event Grid's BlobCreated events in
Azurite's queue (base64, as Event Grid writes to a Storage Queue) over Azurite's blobs, and Cloud
Storage's OBJECT_FINALIZE notifications in the Pub/Sub emulator over the GCS emulator; the fake import
API on a socket. Each announced object imported once, a duplicate delivery imports nothing more, a
message that is no event is left on the queue and logged, an event outside the prefix is deleted."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient
from google.cloud import storage
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

from tests.conftest import AZURE_ACCOUNT, AZURE_KEY, parquet_bytes
from tests.fakes.zilliz import FakeZilliz
from tests.test_azure_events import event, queued
from tests.test_discovery_s3 import invoke, once_each
from tests.test_gcs_events import attributes

pytestmark = pytest.mark.timeout(60)

PROJECT = "test-project"
KEYS = ["emb/a.parquet", "emb/day=01/b c+é.parquet"]
OUTSIDE = "other/x.parquet"
_names = itertools.count(1)


def found_by(manifest: Path) -> dict[str, str]:
    status = json.loads(invoke("status", str(manifest), "--json").stdout)
    return {o["url"]: o["found"] for o in status["objects"]}


def poison_logged(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "is no notification" in line]


# -- Azure: Event Grid -> Storage Queue (Azurite) -------------------------------------------------

@pytest.fixture
def storage_queue(env: dict[str, str], azurite_endpoint: str, azurite_queue_endpoint: str,
                  monkeypatch: pytest.MonkeyPatch) -> QueueClient:
    """A new queue; the account's connection string (blobs and queues) in the environment, as a user
    would set it."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", (
        f"DefaultEndpointsProtocol=http;AccountName={AZURE_ACCOUNT};AccountKey={AZURE_KEY};"
        f"BlobEndpoint={azurite_endpoint};QueueEndpoint={azurite_queue_endpoint};"))
    client = QueueClient.from_queue_url(f"{azurite_queue_endpoint}/grid-{next(_names)}",
                                        credential={"account_name": AZURE_ACCOUNT, "account_key": AZURE_KEY})
    client.create_queue()
    return client


def on_queue(client: QueueClient) -> int:
    """Messages on the queue, those received and not deleted too."""
    return int(client.get_queue_properties().approximate_message_count)


def test_azure_blob_created_events_through_a_storage_queue(
    azure: BlobServiceClient, azure_container: str, azurite_endpoint: str, storage_queue: QueueClient,
    write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    container = azure.get_container_client(azure_container)
    etags = {key: container.upload_blob(key, parquet_bytes()).get_blob_properties().etag.strip('"')
             for key in [*KEYS, OUTSIDE]}

    def grid(key: str) -> None:
        storage_queue.send_message(queued(event(key, account=AZURE_ACCOUNT, container=azure_container,
                                                api="PutBlob", eTag=etags[key], contentLength=100)))

    for key in [*KEYS, KEYS[0], OUTSIDE]:  # the first one delivered twice
        grid(key)
    storage_queue.send_message("hello from another producer")
    manifest = write_manifest(sources=[{
        "url": f"az://{azure_container}/emb/", "account": AZURE_ACCOUNT, "endpoint_url": azurite_endpoint,
        "collection": "articles", "discovery": "events", "queue": storage_queue.url, "backfill_every": 0}])
    waiting: list[int] = []
    fake_api.before_reply = lambda job: waiting.append(on_queue(storage_queue))

    result = invoke("run", str(manifest))
    assert result.exit_code == 0, result.output
    urls = [f"az://{AZURE_ACCOUNT}/{azure_container}/{key}" for key in KEYS]
    once_each(fake_api, [f"{azurite_endpoint}/{azure_container}/emb/a.parquet",
                         f"{azurite_endpoint}/{azure_container}/emb/day%3D01/b%20c%2B%C3%A9.parquet"])
    assert waiting == [5, 5]  # no message was deleted before the ledger had recorded its job
    assert "messages_received=5 messages_deleted=4 messages_kept=1 messages_poison=1" in result.stdout
    assert on_queue(storage_queue) == 1  # the message that is no event, left to the queue
    [logged] = poison_logged(result.stderr)
    assert f"queue {storage_queue.url}: message " in logged and "neither JSON nor base64 of JSON" in logged
    assert found_by(manifest) == dict.fromkeys(urls, "event")

    grid(KEYS[1])  # delivered again later: nothing to import, deleted
    again = invoke("run", str(manifest))
    assert again.exit_code == 0 and "messages_received=1 messages_deleted=1" in again.stdout, again.output
    assert len(fake_api.creates()) == 2 and on_queue(storage_queue) == 1


# -- GCS: Cloud Storage -> Pub/Sub (the emulators) ------------------------------------------------

@pytest.fixture
def pubsub(env: dict[str, str], pubsub_emulator: str, monkeypatch: pytest.MonkeyPatch,
           ) -> tuple[PublisherClient, str, str]:
    """A publisher, a topic of bucket notifications and a pull subscription of it."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    publisher, admin = PublisherClient(), SubscriberClient()
    topic = publisher.topic_path(PROJECT, f"bucket-{next(_names)}")
    publisher.create_topic(name=topic, timeout=10)
    subscription = admin.subscription_path(PROJECT, f"ingest-{next(_names)}")
    admin.create_subscription(request={"name": subscription, "topic": topic, "ack_deadline_seconds": 10},
                              timeout=10)
    admin.close()
    return publisher, topic, subscription


def test_gcs_object_finalize_notifications_through_pubsub(
    gcs: storage.Client, gcs_bucket: str, pubsub: tuple[PublisherClient, str, str],
    write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    publisher, topic, subscription = pubsub
    blobs = {}
    for key in [*KEYS, OUTSIDE]:
        blobs[key] = gcs.bucket(gcs_bucket).blob(key)
        blobs[key].upload_from_string(parquet_bytes())

    def notify(key: str) -> None:  # as Cloud Storage publishes: the object's resource, its attributes
        publisher.publish(topic, json.dumps(blobs[key]._properties).encode(),
                          **attributes(key, bucket=gcs_bucket, generation=str(blobs[key].generation))
                          ).result(timeout=10)

    for key in [*KEYS, KEYS[0], OUTSIDE]:
        notify(key)
    publisher.publish(topic, b"hello from another producer").result(timeout=10)
    manifest = write_manifest(sources=[{
        "url": f"gs://{gcs_bucket}/emb/", "collection": "articles", "discovery": "events",
        "queue": subscription, "backfill_every": 0}])

    result = invoke("run", str(manifest))
    assert result.exit_code == 0, result.output
    urls = [f"gs://{gcs_bucket}/{key}" for key in KEYS]
    once_each(fake_api, urls)
    assert "messages_received=5 messages_deleted=4 messages_kept=1 messages_poison=1" in result.stdout
    [logged] = poison_logged(result.stderr)
    assert f"subscription {subscription}: message " in logged and "lacks the eventType" in logged, logged
    assert found_by(manifest) == dict.fromkeys(urls, "event")

    notify(KEYS[1])  # delivered again later: nothing to import, acknowledged
    again = invoke("run", str(manifest))
    assert again.exit_code == 0 and "messages_received=1 messages_deleted=1" in again.stdout, again.output
    assert len(fake_api.creates()) == 2
