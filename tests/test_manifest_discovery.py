"""Manifest keys of discovery (README: Discovery): ``discovery``, ``queue``, ``inventory``,
``backfill_every`` on a source, and the one-line errors that name their place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.config import extras
from orchestrator.errors import SourceError
from orchestrator.sources.azure_queue import queue_location
from orchestrator.sources.gcs_queue import subscription_problem
from tests.test_manifest_sources import manifest, refused

SQS = "https://sqs.us-east-1.amazonaws.com/123456789012/lake-events"


def test_list_is_the_default_and_events_take_a_queue_of_their_store(tmp_path: Path) -> None:
    listed, s3, az, gs, local = manifest(
        tmp_path,
        {"url": "s3://lake/a/", "collection": "c"},
        {"url": "s3://lake/b/", "collection": "c", "discovery": "events", "queue": SQS,
         "backfill_every": "6h"},
        {"url": "az://lake/c/", "collection": "c", "account": "lakeacct", "discovery": "events",
         "queue": "https://lakeacct.queue.core.windows.net/lake-events", "backfill_every": 0},
        {"url": "gs://lake/d/", "collection": "c", "discovery": "events",
         "queue": "projects/my-project/subscriptions/lake-events", "backfill_every": "1d"},
        {"url": "data", "collection": "c"},
    ).sources
    assert (listed.discovery, listed.queue, listed.backfill_every_s) == ("list", None, 86_400.0)
    assert (s3.discovery, s3.queue, s3.backfill_every_s) == ("events", SQS, 6 * 3600.0)
    assert (az.discovery, az.backfill_every_s) == ("events", 0.0)
    assert gs.backfill_every_s == 86_400.0 and local.discovery == "list"
    moto = manifest(tmp_path, {"url": "s3://lake/b/", "collection": "c", "discovery": "events",
                               "endpoint_url": "http://127.0.0.1:5000",
                               "queue": "http://127.0.0.1:5000/123456789012/q", "backfill_every": 90})
    assert moto.sources[0].backfill_every_s == 90.0


@pytest.mark.parametrize(("source", "message"), [
    ({"url": "s3://lake/", "discovery": "event"},
     "m.yaml: sources[0].discovery: expected one of list, events, inventory, got 'event' "
     "(did you mean events?)"),
    ({"url": "s3://lake/", "discovery": "events"},
     "m.yaml: sources[0].queue: discovery: events reads the store's notifications from a queue: set queue"),
    ({"url": "s3://lake/", "queue": SQS},
     "m.yaml: sources[0].queue: only with discovery: events or inventory (this source's is list)"),
    ({"url": "s3://lake/", "backfill_every": "1h"},
     "m.yaml: sources[0].backfill_every: only with discovery: events or inventory (this source's is list)"),
    ({"url": "s3://lake/", "discovery": "events", "inventory": "s3://inv/x/", "queue": SQS},
     "m.yaml: sources[0].inventory: only with discovery: inventory (this source's is events)"),
    ({"url": "s3://lake/", "discovery": "events", "queue": "projects/my-project/subscriptions/s"},
     "m.yaml: sources[0].queue: expected an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/"
     "<queue>) for a s3:// source, got 'projects/my-project/subscriptions/s'"),
    ({"url": "gs://lake/", "discovery": "events", "queue": SQS},
     "m.yaml: sources[0].queue: expected a Pub/Sub subscription (projects/<project>/subscriptions/"
     "<subscription>) for a gs:// source"),
    ({"url": "az://lake/", "account": "acct", "discovery": "events", "queue": SQS},
     "m.yaml: sources[0].queue: expected an Azure Storage queue URL"),
    ({"url": "az://lake/", "account": "acct", "discovery": "events",
      "queue": "https://acct.queue.core.windows.net/q1?sig=SECRET"},
     "m.yaml: sources[0].queue: is followed by a query or fragment (not shown: it may hold a token)"),
    ({"url": "data", "discovery": "events", "queue": SQS},
     "m.yaml: sources[0].discovery: events: a local folder is listed (discovery: list)"),
    ({"url": "gs://lake/", "discovery": "inventory", "inventory": "s3://inv/x/"},
     "m.yaml: sources[0].discovery: inventory: only s3:// sources have one (S3 Inventory), not gs://"),
    ({"url": "s3://lake/", "discovery": "inventory"},
     "m.yaml: sources[0].inventory: discovery: inventory reads S3 Inventory's manifest.json: set inventory"),
    ({"url": "s3://lake/", "discovery": "inventory", "inventory": "https://inv/x"},
     "m.yaml: sources[0].inventory: expected an s3:// URL of where S3 Inventory delivers"),
    ({"url": "s3://lake/", "discovery": "events", "queue": SQS, "backfill_every": "soon"},
     "m.yaml: sources[0].backfill_every: expected a duration from 0 (never) to 366d, as 3600, 90m, 24h "
     "or 7d; got 'soon'"),
    ({"url": "s3://lake/", "discovery": "events", "queue": SQS, "backfill_every": -1},
     "m.yaml: sources[0].backfill_every: expected a duration from 0 (never) to 366d"),
    ({"url": "s3://lake/", "discovery": "events", "queue": SQS, "backfill_every": True},
     "m.yaml: sources[0].backfill_every: expected a duration"),
])
def test_discovery_errors_name_their_place(tmp_path: Path, source: dict[str, Any], message: str) -> None:
    error = refused(tmp_path, {"collection": "c", **source})
    assert error.startswith(message), error
    assert "SECRET" not in error and "\n" not in error.strip()


def test_two_sources_never_share_a_queue(tmp_path: Path) -> None:
    both = {"collection": "c", "discovery": "events", "queue": SQS}
    error = refused(tmp_path, {"url": "s3://lake/a/", **both}, {"url": "s3://lake/b/", **both})
    assert error == ("m.yaml: sources[1].queue: sources[0] reads this queue too: a message is taken by "
                     "whichever receives it first, and dropped when not its; give each its own queue")


def test_inventory_takes_where_s3_inventory_delivers_with_a_queue_or_without(tmp_path: Path) -> None:
    folder, one, both = manifest(
        tmp_path,
        {"url": "s3://lake/a/", "collection": "c", "discovery": "inventory",
         "inventory": "s3://inventories/lake/lake/daily/"},
        {"url": "s3://lake/b/", "collection": "c", "discovery": "inventory", "backfill_every": "7d",
         "inventory": "s3://inventories/lake/lake/daily/2026-12-06T00-00Z/manifest.json"},
        {"url": "s3://lake/c/", "collection": "c", "discovery": "inventory", "queue": SQS,
         "backfill_every": 0, "inventory": "s3://inventories/lake/lake/daily/"},
    ).sources
    assert (folder.discovery, folder.inventory, folder.queue, folder.backfill_every_s) == (
        "inventory", "s3://inventories/lake/lake/daily/", None, 86_400.0)
    assert one.inventory.endswith("/manifest.json") and one.backfill_every_s == 7 * 86_400.0
    assert (both.queue, both.backfill_every_s) == (SQS, 0.0)


def azure_reader_takes(url: str) -> bool:
    try:
        queue_location(url)
    except SourceError:
        return False
    return True


@pytest.mark.parametrize("url", [
    "https://lakeacct.queue.core.windows.net/lake-events", "https://lakeacct.queue.core.windows.net/events/",
    "https://lakeacct.queue.core.chinacloudapi.cn/events", "http://127.0.0.1:10001/devstoreaccount1/events",
    "http://azurite:10001/devstoreaccount1/lake-events", "http://localhost/devstoreaccount1/events",
    "https://sqs.us-east-1.amazonaws.com/123456789012/lake-events",
    "https://lakeacct.queue.core.windows.net/a--b", "https://lakeacct.queue.core.windows.net/-events",
    "https://lakeacct.queue.core.windows.net/ab", "https://lakeacct.queue.core.windows.net/Events",
    "https://lakeacct.queue.core.windows.net/acct/events", "http://127.0.0.1:10001/events",
    "http://127.0.0.1:10001/Dev_Account/events", "http://127.0.0.1:10001/devstoreaccount1/events/more",
    "ftp://lakeacct.queue.core.windows.net/events",
])
def test_an_azure_queue_validates_exactly_when_its_reader_takes_it(tmp_path: Path, url: str) -> None:
    source = {"url": "az://lake/", "account": "lakeacct", "collection": "c", "discovery": "events",
              "queue": url}
    if azure_reader_takes(url):
        assert manifest(tmp_path, source).sources[0].queue == url
    else:
        assert "sources[0].queue: expected an Azure Storage queue URL" in refused(tmp_path, source)


@pytest.mark.parametrize("subscription", [
    "projects/my-project/subscriptions/lake-events",
    "projects/example.com:my-project/subscriptions/s.1~a+b%c",
    "projects/my-project/subscriptions/ab", "projects/my-project/subscriptions/1abc",
    "projects/my-project/subscriptions/événements", "projects/My-Project/subscriptions/lake",
    "projects/my-project/topics/lake", "lake-events",
])
def test_a_subscription_validates_exactly_when_its_reader_takes_it(tmp_path: Path, subscription: str) -> None:
    source = {"url": "gs://lake/", "collection": "c", "discovery": "events", "queue": subscription}
    if subscription_problem(subscription) is None:
        assert manifest(tmp_path, source).sources[0].queue == subscription
    else:
        assert "sources[0].queue: expected a Pub/Sub subscription" in refused(tmp_path, source)


@pytest.mark.parametrize(("source", "extra", "absent"), [
    ({"url": "gs://lake/", "queue": "projects/my-project/subscriptions/lake-events"}, "gcs-events",
     "google.cloud.pubsub_v1"),
    ({"url": "az://lake/", "account": "lakeacct", "queue": "https://lakeacct.queue.core.windows.net/events"},
     "azure", "azure.storage.queue"),
])
def test_events_without_their_extra_name_the_pip_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     source: dict[str, Any], extra: str, absent: str) -> None:
    monkeypatch.setattr(extras, "_importable", lambda module: module != absent)
    error = refused(tmp_path, {"collection": "c", "discovery": "events", **source})
    assert error == (f"m.yaml: sources[0].queue: the queue of a {source['url'][:2]}:// source needs the "
                     f"optional '{extra}' extra ({absent} not installed): pip install "
                     f"'milvus-import-orchestrator[{extra}]'")
