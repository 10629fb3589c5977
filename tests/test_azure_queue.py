"""The Storage Queue of Event Grid blob events, against Azurite's queue service: messages written as
Event Grid writes them, received, parsed, deleted; redelivered when not deleted; each kind of
credentials; the errors a user meets, one line each and without secrets."""

from __future__ import annotations

import base64
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.credentials import TokenCredential
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient, QueueSasPermissions, generate_queue_sas

from orchestrator.config.manifest import Settings, SourceConfig
from orchestrator.errors import NoticeError, SourceError
from orchestrator.models import Secret
from orchestrator.sources.azure_queue import AzureEventQueue, make_azure_queue, queue_location
from orchestrator.sources.notices import Message, Notice, NoticeKind
from tests.conftest import AZURE_ACCOUNT, AZURE_KEY, Clock, free_port
from tests.test_azure_events import event

DEADLINE_S = 10.0  # the most a test waits for a message to come back


def config(container: str = "lake", **options: Any) -> SourceConfig:
    return SourceConfig(index=1, url=f"az://{container}/emb/", scheme="az", bucket=container, prefix="emb/",
                        collection="c", partition=None, pattern=None, include=("**",), exclude=(),
                        region=None, credentials=None,
                        **{"account": AZURE_ACCOUNT, "endpoint_url": None, **options})


def connection_string(queue_endpoint: str, key: str = AZURE_KEY) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURE_ACCOUNT};AccountKey={key};"
            f"QueueEndpoint={queue_endpoint};")


def sas(queue: str, **permissions: bool) -> str:
    return generate_queue_sas(AZURE_ACCOUNT, queue, AZURE_KEY, permission=QueueSasPermissions(**permissions),
                              expiry=datetime.now(UTC) + timedelta(hours=1))


def grid(client: QueueClient, payload: Any) -> None:
    """Writes a message as Event Grid does: base64 of the event's JSON."""
    client.send_message(base64.b64encode(json.dumps(payload).encode()).decode())


_queues = iter(range(1, 10_000))


@pytest.fixture
def queue_url(env: dict[str, str], azurite_queue_endpoint: str) -> str:
    url = f"{azurite_queue_endpoint}/events-{next(_queues)}"
    QueueClient.from_queue_url(url, credential={"account_name": AZURE_ACCOUNT, "account_key": AZURE_KEY}
                               ).create_queue()
    return url


@pytest.fixture
def sender(queue_url: str) -> QueueClient:
    return QueueClient.from_queue_url(queue_url, credential={"account_name": AZURE_ACCOUNT,
                                                             "account_key": AZURE_KEY})


def queue(url: str, endpoint: str, **options: Any) -> AzureEventQueue:
    made = make_azure_queue(url, config(connection_string=Secret(connection_string(endpoint))), Settings())
    for name, value in options.items():
        setattr(made, name, value)
    return made


def test_an_uploaded_blobs_event_round_trip(queue_url: str, sender: QueueClient, azurite_queue_endpoint: str,
                                            azure: BlobServiceClient) -> None:
    """The notice of a real blob carries what its listing says of it (the ETag is its version)."""
    azure.create_container("lake")
    blob = azure.get_blob_client("lake", "emb/c d/é.parquet")
    blob.upload_blob(b"PAR1....PAR1")
    props = blob.get_blob_properties()
    written = event("emb/c d/é.parquet", account=AZURE_ACCOUNT, eTag=props.etag.strip('"'), contentLength=12,
                    api="PutBlob")
    grid(sender, written)
    source = queue(queue_url, azurite_queue_endpoint)
    assert source.label == f"queue {queue_url}"
    [message] = source.receive(10, DEADLINE_S)
    assert message.deliveries == 1 and message.attributes == {}
    assert source.notices(message) == [Notice(NoticeKind.CREATED, "lake", "emb/c d/é.parquet", size=12,
                                              etag=props.etag.strip('"'),
                                              order=written["data"]["sequencer"])]
    source.delete([message])
    assert source.receive(10, 0) == []
    assert sender.get_queue_properties().approximate_message_count == 0


def test_a_message_not_deleted_comes_back_after_its_visibility_timeout(
        queue_url: str, sender: QueueClient, azurite_queue_endpoint: str,
        caplog: pytest.LogCaptureFixture) -> None:
    grid(sender, event())
    source = queue(queue_url, azurite_queue_endpoint, visibility_s=1)
    [first] = source.receive(10, 0)
    assert source.receive(10, 0) == []  # invisible while it is being worked on
    started = time.monotonic()
    [again] = source.receive(10, DEADLINE_S)  # polls until it is visible again
    assert 0.5 < time.monotonic() - started < DEADLINE_S
    assert (again.id, again.body, again.deliveries) == (first.id, first.body, 2)
    assert again.receipt != first.receipt
    with caplog.at_level(logging.INFO, logger="orchestrator"):
        source.delete([first])  # a stale delivery: its receipt no longer deletes, and that is no error
        assert "was deleted or received again since (PopReceiptMismatch)" in caplog.text
        source.delete([again])
        source.delete([again])  # deleted twice (a retried delete): nothing left to do
        assert "(MessageNotFound)" in caplog.text
    assert sender.peek_messages() == []


def test_receive_takes_at_most_what_is_asked_in_pages_of_32(queue_url: str, sender: QueueClient,
                                                            azurite_queue_endpoint: str) -> None:
    for i in range(40):
        grid(sender, event(f"emb/{i}.parquet"))
    source = queue(queue_url, azurite_queue_endpoint)
    assert len(source.receive(5, 0)) == 5
    rest = source.receive(100, 0)
    assert len(rest) == 35 and len({m.id for m in rest}) == 35
    source.delete(rest)


def test_an_empty_queue_is_polled_until_the_wait_ends(queue_url: str, azurite_queue_endpoint: str,
                                                      clock: Clock) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    source = queue(queue_url, azurite_queue_endpoint, _clock=clock, _sleep=sleep, poll_s=2.0)
    assert source.receive(10, 5.0) == []
    assert slept == [2.0, 2.0, 1.0]
    slept.clear()
    assert source.receive(10, 0) == [] and slept == []


def test_a_message_that_is_no_event_names_the_queue_and_the_message(queue_url: str, sender: QueueClient,
                                                                    azurite_queue_endpoint: str) -> None:
    sender.send_message("hello from another producer")
    source = queue(queue_url, azurite_queue_endpoint)
    [message] = source.receive(1, DEADLINE_S)
    with pytest.raises(NoticeError) as info:
        source.notices(message)
    assert str(info.value) == (f"queue {queue_url}: message {message.id}: not an Event Grid event: the "
                               "message is neither JSON nor base64 of JSON (is the queue fed by something "
                               "else?)")


def test_each_kind_of_credentials(queue_url: str, sender: QueueClient, azurite_queue_endpoint: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    name = queue_url.rsplit("/", 1)[1]
    key = connection_string(azurite_queue_endpoint)
    token = sas(name, read=True, process=True)
    for options in ({"connection_string": Secret(key)}, {"sas_token": Secret(token)},
                    {"sas_token": Secret("?" + token)},
                    {"connection_string": Secret(f"SharedAccessSignature={token};QueueEndpoint=x")}):
        grid(sender, event())
        made = make_azure_queue(queue_url, config(**options), Settings())
        [message] = made.receive(1, DEADLINE_S)
        made.delete([message])
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", key)
    grid(sender, event())
    made = make_azure_queue(queue_url, config(), Settings())
    made.delete(made.receive(1, DEADLINE_S))

    asked: list[str] = []

    class Token(TokenCredential):  # type: ignore[misc]
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise AssertionError("no token is asked for before a call")

    def default() -> TokenCredential:
        asked.append("default")
        return Token()

    # the source's keys are for its own account; another account's queue gets DefaultAzureCredential,
    # which sends tokens only over https
    elsewhere = queue_url.replace(AZURE_ACCOUNT, "otheraccount")
    with pytest.raises(SourceError) as info:
        make_azure_queue(elsewhere, config(connection_string=Secret(key)), Settings(), credential=default)
    assert str(info.value) == (f"queue {elsewhere}: DefaultAzureCredential needs an https queue URL: set "
                               "connection_string or sas_token on sources[1] az://lake/emb/")
    https = "https://otheraccount.queue.core.windows.net/events"
    made = make_azure_queue(https, config(connection_string=Secret(key)), Settings(), credential=default)
    assert asked == ["default", "default"] and made.client.account_name == "otheraccount"


def test_queue_urls_that_cannot_be_used() -> None:
    assert queue_location("https://lakeaccount.queue.core.windows.net/events") == ("lakeaccount", "events")
    assert queue_location("https://lakeaccount.queue.core.chinacloudapi.cn/events/") == ("lakeaccount",
                                                                                         "events")
    assert queue_location("http://127.0.0.1:10001/devstoreaccount1/events") == ("devstoreaccount1", "events")
    for url, problem in (
            ("sqs://events", "not an https:// URL"),
            ("https://lakeaccount.queue.core.windows.net/events?sv=1&sig=SECRET",
             "a queue URL takes no query (a SAS token goes in the source's sas_token)"),
            ("https://lakeaccount.queue.core.windows.net/", "expected https://<account>.queue.core.windows.net/"),
            ("https://lakeaccount.queue.core.windows.net/a/b", "expected https://<account>"),
            ("https://lakeaccount.queue.core.windows.net/Events_1", "the queue name is 3 to 63 lowercase"),
            ("https://lakeaccount.queue.core.windows.net/a--b", "the queue name is 3 to 63 lowercase")):
        with pytest.raises(SourceError) as info:
            queue_location(url)
        assert problem in str(info.value) and "SECRET" not in str(info.value), url


def test_errors_are_one_line_without_secrets(queue_url: str, azurite_queue_endpoint: str) -> None:
    missing = queue(f"{azurite_queue_endpoint}/no-such-queue", azurite_queue_endpoint)
    with pytest.raises(SourceError) as info:
        missing.receive(1, 0)
    assert str(info.value) == f"queue {azurite_queue_endpoint}/no-such-queue: cannot receive: queue not found"

    name = queue_url.rsplit("/", 1)[1]
    peek_only = sas(name, read=True)
    no_process = make_azure_queue(queue_url, config(sas_token=Secret(peek_only)), Settings())
    with pytest.raises(SourceError) as info:
        no_process.receive(1, 0)
    assert str(info.value).startswith(f"queue {queue_url}: cannot receive: access denied (")
    assert str(info.value).endswith("): the queue identity needs Storage Queue Data Message Processor on the "
                                    "queue (a SAS token: read and process permissions on the queue service)")
    assert peek_only.split("sig=")[1][:10] not in str(info.value)

    wrong = base64.b64encode(b"k" * 64).decode()
    refused = make_azure_queue(queue_url, config(connection_string=Secret(
        connection_string(azurite_queue_endpoint, wrong))), Settings())
    with pytest.raises(SourceError) as info:
        refused.receive(1, 0)
    assert str(info.value) == (f"queue {queue_url}: cannot receive: the queue credentials were refused "
                               "(AuthenticationFailed): check the account key, SAS token or connection "
                               "string, and that it has not expired")

    broken = f"AccountKey={AZURE_KEY}"
    with pytest.raises(SourceError) as info:
        make_azure_queue(queue_url, config(connection_string=Secret(broken)), Settings())
    assert str(info.value) == ("sources[1] az://lake/emb/: connection_string is not a valid Azure Storage "
                               "connection string: it holds neither AccountName and AccountKey nor "
                               "SharedAccessSignature")

    port = free_port()
    down = f"http://127.0.0.1:{port}/{AZURE_ACCOUNT}/events"
    with pytest.raises(SourceError) as info:
        queue(down, azurite_queue_endpoint).receive(1, 0)
    assert str(info.value) == f"queue {down}: cannot receive: cannot reach the endpoint (http://127.0.0.1:{port})"
    with pytest.raises(SourceError, match=r"^queue .*: cannot delete message m1: cannot reach the endpoint") \
            as info:
        queue(down, azurite_queue_endpoint).delete([Message("m1", "receipt", "", {}, 1)])
    with pytest.raises(SourceError, match=r"^queue .*: cannot delete message m\d: cannot reach the endpoint"):
        queue(down, azurite_queue_endpoint).delete([Message(f"m{i}", "receipt", "", {}, 1) for i in range(3)])
    assert AZURE_KEY not in str(info.value)
