"""The pull subscription of Cloud Storage notifications, against Google's Pub/Sub emulator: messages
published as Cloud Storage publishes them, pulled, parsed, acknowledged; redelivered when not
acknowledged; the errors a user meets, one line each."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as api
from google.api_core.retry import Retry, if_exception_type
from google.cloud import storage
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

from orchestrator.config.manifest import Settings, SourceConfig
from orchestrator.errors import NoticeError, SourceError
from orchestrator.sources.gcs_queue import GcsEventQueue, make_gcs_queue
from orchestrator.sources.notices import Message, Notice, NoticeKind
from tests.conftest import free_port
from tests.test_gcs_events import attributes, resource

# a key file's armour, made at run time: no tracked line is shaped like a real key
PEM = "-----{what} PRIVATE " + "KEY-----\n"

PROJECT = "test-project"
DEADLINE_S = 15.0  # the most a test waits for a message
_names = itertools.count(1)


def config(bucket: str = "lake", **options: Any) -> SourceConfig:
    return SourceConfig(index=3, url=f"gs://{bucket}/emb/", scheme="gs", bucket=bucket, prefix="emb/",
                        collection="c", partition=None, pattern=None, include=("**",), exclude=(),
                        endpoint_url=None, region=None, credentials=None, **options)


@pytest.fixture
def emulated(env: dict[str, str], pubsub_emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    return pubsub_emulator


@pytest.fixture
def publisher(emulated: str) -> Iterator[PublisherClient]:
    yield PublisherClient()


@pytest.fixture
def topic(publisher: PublisherClient) -> str:
    name = publisher.topic_path(PROJECT, f"bucket-events-{next(_names)}")
    publisher.create_topic(name=name, timeout=10)
    return name


@pytest.fixture
def subscribe(emulated: str, publisher: PublisherClient, topic: str) -> Iterator[Callable[..., str]]:
    """Makes a pull subscription of the topic (``dead_letter``: with a dead-letter policy, which makes
    Pub/Sub count deliveries)."""
    admin = SubscriberClient()

    def make(*, dead_letter: bool = False) -> str:
        name = admin.subscription_path(PROJECT, f"ingest-{next(_names)}")
        request: dict[str, Any] = {"name": name, "topic": topic, "ack_deadline_seconds": 10}
        if dead_letter:
            dead = publisher.topic_path(PROJECT, f"dead-{next(_names)}")
            publisher.create_topic(name=dead, timeout=10)
            request["dead_letter_policy"] = {"dead_letter_topic": dead, "max_delivery_attempts": 5}
        admin.create_subscription(request=request, timeout=10)
        return name

    yield make
    admin.close()


def publish(publisher: PublisherClient, topic: str, data: bytes, attrs: dict[str, str]) -> None:
    """Publishes as Cloud Storage does: the resource as data, the notification's attributes."""
    publisher.publish(topic, data, **attrs).result(timeout=10)


def pulled(queue: GcsEventQueue, count: int) -> list[Message]:
    """``count`` messages, pulled until they are all in (a pull may return fewer than there are)."""
    got: list[Message] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(got) < count and time.monotonic() < deadline:
        got += queue.receive(count - len(got), 1.0)
    assert len(got) == count, got
    return got


def test_a_stored_objects_notification_round_trip(emulated: str, publisher: PublisherClient, topic: str,
                                                  subscribe: Callable[..., str], gcs: storage.Client,
                                                  gcs_bucket: str) -> None:
    """The notice of a real object carries what its listing says of it (the generation is its version)."""
    blob = gcs.bucket(gcs_bucket).blob("emb/c d/é.parquet")
    blob.upload_from_string(b"PAR1....PAR1")
    blob.reload()
    subscription = subscribe()
    publish(publisher, topic, json.dumps(blob._properties).encode(),
            attributes("emb/c d/é.parquet", bucket=gcs_bucket, generation=str(blob.generation)))
    queue = make_gcs_queue(subscription, config(gcs_bucket), Settings())
    assert queue.label == f"subscription {subscription}"
    [message] = pulled(queue, 1)
    assert message.deliveries == 1 and message.attributes["eventType"] == "OBJECT_FINALIZE"
    assert queue.notices(message) == [Notice(NoticeKind.CREATED, gcs_bucket, "emb/c d/é.parquet", size=12,
                                             etag=str(blob.generation), order=str(blob.generation).zfill(20))]
    queue.delete([message])
    assert queue.receive(10, 0) == []


@pytest.mark.parametrize(("dead_letter", "counted"), [(True, 2), (False, 1)])
def test_a_message_not_acknowledged_comes_back_after_its_deadline(
        publisher: PublisherClient, topic: str, subscribe: Callable[..., str], dead_letter: bool,
        counted: int) -> None:
    queue = make_gcs_queue(subscribe(dead_letter=dead_letter), config(), Settings())
    queue.visibility_s = 1
    publish(publisher, topic, json.dumps(resource()).encode(), attributes())
    [first] = pulled(queue, 1)
    started = time.monotonic()
    [again] = pulled(queue, 1)  # back once its deadline (1 s, not the subscription's 10 s) has passed
    assert 0.5 < time.monotonic() - started < 9
    assert (again.id, again.body, again.attributes) == (first.id, first.body, first.attributes)
    assert again.receipt != first.receipt and again.deliveries == counted
    queue.delete([first, again])  # the stale delivery's ack id is no error
    assert queue.receive(10, 0) == []


def test_many_messages_at_most_what_is_asked(publisher: PublisherClient, topic: str,
                                             subscribe: Callable[..., str]) -> None:
    queue = make_gcs_queue(subscribe(), config(), Settings())
    for i in range(30):
        publish(publisher, topic, b"", attributes(f"emb/{i}.parquet", payload="NONE"))
    first = queue.receive(5, 1.0)
    assert 0 < len(first) <= 5
    rest = pulled(queue, 30 - len(first))
    assert sorted(n.key for m in first + rest for n in queue.notices(m)) == sorted(
        f"emb/{i}.parquet" for i in range(30))
    queue.delete(first + rest)
    assert queue.receive(30, 0) == []


def test_a_message_that_is_no_notification_names_the_subscription_and_the_message(
        publisher: PublisherClient, topic: str, subscribe: Callable[..., str]) -> None:
    subscription = subscribe()
    queue = make_gcs_queue(subscription, config(), Settings())
    publish(publisher, topic, b"\xff\xfe not utf-8", {"source": "another producer"})
    [message] = pulled(queue, 1)
    with pytest.raises(NoticeError) as info:
        queue.notices(message)
    assert str(info.value) == (f"subscription {subscription}: message {message.id}: not a Cloud Storage "
                               "notification: it lacks the eventType, bucketId or objectId attribute (is the "
                               "topic fed by something else?)")


def test_errors_are_one_line(emulated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = f"projects/{PROJECT}/subscriptions/no-such-subscription"
    with pytest.raises(SourceError) as info:
        make_gcs_queue(missing, config(), Settings()).receive(1, 0)
    assert str(info.value) == f"subscription {missing}: cannot receive: subscription not found"

    for path in ("my-subscription", "projects/p/subscriptions/x", f"projects/{PROJECT}/topics/t"):
        with pytest.raises(SourceError) as info:
            make_gcs_queue(path, config(), Settings())
        assert str(info.value) == (f"subscription {path}: expected projects/<project>/subscriptions/"
                                   "<subscription> (a subscription name is 3 to 255 letters, digits and - _ "
                                   ". ~ + %, starting with a letter)")

    (tmp_path / "key.json").write_text('{"type": "authorized_user"}')
    with pytest.raises(SourceError) as info:
        make_gcs_queue(missing, config(service_account_file=tmp_path / "key.json"), Settings())
    assert str(info.value).startswith(f"sources[3] gs://lake/emb/: cannot use service_account_file "
                                      f"{tmp_path / 'key.json'}: a key of type 'authorized_user'")

    (tmp_path / "broken.json").write_text(json.dumps({
        "type": "service_account", "client_email": "ingest@test-project.iam.gserviceaccount.com",
        "private_key_id": "key-id-1", "token_uri": "https://oauth2.googleapis.com/token",
        "private_key": PEM.format(what="BEGIN") + "SECRETKEYMATERIAL\n" + PEM.format(what="END")}))
    with pytest.raises(SourceError) as info:
        make_gcs_queue(missing, config(service_account_file=tmp_path / "broken.json"), Settings())
    assert str(info.value).startswith("sources[3] gs://lake/emb/: cannot use service_account_file ")
    assert "SECRETKEYMATERIAL" not in str(info.value) and "\n" not in str(info.value)

    port = free_port()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{port}")
    down = make_gcs_queue(missing, config(), Settings())
    down.retry = Retry(predicate=if_exception_type(api.ServiceUnavailable), initial=0.1, maximum=0.2,
                       timeout=1.0)
    with pytest.raises(SourceError) as info:
        down.receive(1, 0)
    assert str(info.value) == (f"subscription {missing}: cannot receive: cannot reach Pub/Sub "
                               f"(127.0.0.1:{port})")
    with pytest.raises(SourceError) as info:
        down.delete([Message("1", "ack-id", "", {}, 1)])
    assert str(info.value) == (f"subscription {missing}: cannot acknowledge 1 message(s): cannot reach "
                               f"Pub/Sub (127.0.0.1:{port})")
