"""discovery: events on S3, end to end: moto's S3 and SQS (the session's server), the fake import API on
a socket, the CLI. S3's own notifications where moto sends them; otherwise messages shaped exactly as S3
writes them (tests/test_s3_events.py). Duplicated, reordered, stale and malformed messages, kill -9
between receiving and deleting, and a lost event found by the backfill listing: every object imported
exactly once."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from orchestrator import api
from orchestrator.cli.main import cli
from orchestrator.models import LedgerRecord
from orchestrator.run.wiring import manifest_ledger
from orchestrator.sources import registry
from tests.conftest import Clock, cli_child, parquet_bytes
from tests.fakes.zilliz import FakeZilliz
from tests.inventories import rows_of, write_inventory
from tests.test_s3_events import s3_record

_queues = count()


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def sqs(env: dict[str, str]) -> Any:
    return boto3.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")


@pytest.fixture
def queue(sqs: Any) -> str:
    """A new queue; a delivery not deleted comes back at once (visibility 0), so that a rerun sees it."""
    return str(sqs.create_queue(QueueName=f"events-{next(_queues)}",
                                Attributes={"VisibilityTimeout": "0"})["QueueUrl"])


@pytest.fixture
def events_manifest(write_manifest: Callable[..., Path], bucket: str, queue: str) -> Callable[..., Path]:
    def write(**source: Any) -> Path:
        return write_manifest(sources=[{"url": f"s3://{bucket}/embeddings/", "collection": "articles",
                                        "discovery": "events", "queue": queue, "backfill_every": 0,
                                        **source}])
    return write


def announce(sqs: Any, queue: str, bucket: str, keys: list[str], *, etags: dict[str, str] | None = None,
             times: int = 1, seed: int = 0) -> None:
    """One S3 notification per key (its key URL-encoded as S3 writes it), each sent ``times`` times,
    shuffled."""
    bodies = [json.dumps({"Records": [s3_record(key.replace(" ", "+").replace("=", "%3D"), bucket=bucket,
                                                 etag=(etags or {}).get(key, "0" * 32))]})
              for key in keys] * times
    random.Random(seed).shuffle(bodies)
    for body in bodies:
        sqs.send_message(QueueUrl=queue, MessageBody=body)


def left_on(sqs: Any, queue: str) -> list[str]:
    """The bodies still on the queue (received with visibility 0: they stay)."""
    bodies: dict[str, str] = {}
    while True:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                  VisibilityTimeout=0).get("Messages", [])
        if not got or all(m["MessageId"] in bodies for m in got):
            return sorted(bodies.values())
        bodies.update((m["MessageId"], m["Body"]) for m in got)


def rows(manifest: Path) -> list[LedgerRecord]:
    with manifest_ledger(api.validate(manifest)) as ledger:
        return list(ledger.records())


def once_each(fake: FakeZilliz, urls: list[str]) -> None:
    made = sorted(c.body["objectUrl"] for c in fake.creates())
    assert made == sorted(urls), made


def test_s3_notifications_from_moto_import_each_new_object_once(
    s3: Any, sqs: Any, bucket: str, queue: str, events_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    """Moto's S3 sends its notifications (s3:TestEvent first) to the queue, as S3 does."""
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    keys = ["embeddings/day=01/a b.parquet", "embeddings/b.parquet", "embeddings/_SUCCESS", "other/c.parquet"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=parquet_bytes())
    manifest = events_manifest()
    result = invoke("run", str(manifest))
    assert result.exit_code == 0, result.output
    once_each(fake_api, [f"s3://{bucket}/embeddings/day=01/a b.parquet", f"s3://{bucket}/embeddings/b.parquet"])
    assert "messages_received=5 messages_deleted=5 messages_kept=0 messages_poison=0" in result.stdout
    assert left_on(sqs, queue) == []
    assert {r.url: r for r in rows(manifest)}.keys() == {c.body["objectUrl"] for c in fake_api.creates()}
    again = invoke("run", str(manifest))  # an empty queue, backfill_every: 0: nothing is listed
    assert again.exit_code == 0 and "messages_received=0" not in again.stdout and len(fake_api.creates()) == 2


def test_duplicated_shuffled_stale_and_malformed_messages(
    s3: Any, sqs: Any, bucket: str, queue: str, events_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    new = [f"embeddings/part-{i}.parquet" for i in range(6)]
    for key in [*new, "embeddings/gone.parquet", "embeddings/notes.txt", "other/x.parquet"]:
        s3.put_object(Bucket=bucket, Key=key, Body=parquet_bytes())
    stale = s3.head_object(Bucket=bucket, Key=new[0])["ETag"].strip('"')
    s3.put_object(Bucket=bucket, Key=new[0], Body=parquet_bytes(rows=5))  # rewritten since its first event
    now = s3.head_object(Bucket=bucket, Key=new[0])["ETag"].strip('"')
    s3.delete_object(Bucket=bucket, Key="embeddings/gone.parquet")
    announce(sqs, queue, bucket, [*new, "embeddings/gone.parquet", "embeddings/notes.txt", "other/x.parquet"],
             etags={new[0]: stale}, times=2, seed=7)
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"Event": "s3:TestEvent", "Bucket": bucket}))
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(
        {"Records": [s3_record(new[1], event="ObjectRemoved:Delete", bucket=bucket)]}))
    poison = sqs.send_message(QueueUrl=queue, MessageBody="<not json>")["MessageId"]

    result = invoke("run", str(manifest := events_manifest()))
    assert result.exit_code == 0, result.output
    once_each(fake_api, [f"s3://{bucket}/{key}" for key in new])
    versions = {r.url: r.version for r in rows(manifest)}
    assert versions[f"s3://{bucket}/{new[0]}"] == now  # the object as it is, not as the stale event said
    assert left_on(sqs, queue) == ["<not json>"]  # left to the redrive policy
    assert "messages_deleted=20" in result.stdout and "messages_poison=" in result.stdout
    [logged] = [line for line in result.stderr.splitlines() if "no notification" in line]
    assert f"message {poison} (delivery " in logged and "is no notification: not JSON" in logged, logged

    announce(sqs, queue, bucket, new, times=1)  # delivered again later: nothing to do, deleted
    again = invoke("run", str(manifest))
    assert again.exit_code == 0 and len(fake_api.creates()) == 6
    assert left_on(sqs, queue) == ["<not json>"]


def test_kill_between_receiving_and_deleting_then_rerun(
    s3: Any, sqs: Any, bucket: str, queue: str, events_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    """Killed once the server made a job for a received message (its id never reached the ledger, the
    message never deleted): the rerun adopts the job, the message comes back and is then deleted."""
    keys = [f"embeddings/k-{i}.parquet" for i in range(5)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=parquet_bytes())
    announce(sqs, queue, bucket, keys, times=2, seed=3)
    manifest = events_manifest()
    proc = cli_child("run", str(manifest), deadline_s=60)
    fake_api.before_reply = lambda job: proc.send_signal(signal.SIGKILL)
    assert proc.wait(60) == -signal.SIGKILL
    fake_api.before_reply = None
    assert len(left_on(sqs, queue)) == 10  # nothing was deleted
    rerun = cli_child("run", str(manifest), deadline_s=60).finish()
    assert rerun.returncode == 0, rerun.stderr
    jobs = {url: [j for j in fake_api.jobs_for(url) if j.fail_reason is None]
            for url in (f"s3://{bucket}/{key}" for key in keys)}
    assert all(len(found) == 1 for found in jobs.values()), jobs
    assert {r.url: r.job_id for r in rows(manifest)} == {url: found[0].job_id for url, found in jobs.items()}
    assert left_on(sqs, queue) == []


def test_a_lost_event_is_found_by_the_backfill_listing(
    s3: Any, sqs: Any, bucket: str, queue: str, events_manifest: Callable[..., Path], fake_api: FakeZilliz,
    clock: Clock,
) -> None:
    s3.put_object(Bucket=bucket, Key="embeddings/before.parquet", Body=parquet_bytes())
    manifest = api.validate(events_manifest(backfill_every="1h"))
    clock.now = s3.head_object(Bucket=bucket, Key="embeddings/before.parquet")["LastModified"].timestamp()

    first = api.run(manifest, clock=clock)  # never listed whole: the backfill finds what came before
    assert first.exit_code() == 0 and first.planned["submit"] == 1
    s3.put_object(Bucket=bucket, Key="embeddings/lost.parquet", Body=parquet_bytes())  # its event is lost
    s3.put_object(Bucket=bucket, Key="embeddings/told.parquet", Body=parquet_bytes())
    announce(sqs, queue, bucket, ["embeddings/told.parquet"])
    clock.now += 600
    second = api.run(manifest, clock=clock)  # 10 minutes later: no backfill due
    assert second.planned["submit"] == 1 and second.messages["deleted"] == 1
    clock.now += 3000
    third = api.run(manifest, clock=clock)  # over an hour since the last full listing
    assert third.planned["submit"] == 1 and third.planned["skip"] == 2
    once_each(fake_api, [f"s3://{bucket}/embeddings/{k}.parquet" for k in ("before", "told", "lost")])
    found = {r.url.rsplit("/", 1)[1]: r for r in rows(events_manifest(backfill_every="1h"))}
    assert sorted(found) == ["before.parquet", "lost.parquet", "told.parquet"]


def test_follow_imports_as_messages_come_then_ends_on_sigterm(
    s3: Any, sqs: Any, bucket: str, queue: str, write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    tmp_path: Path,
) -> None:
    manifest = write_manifest(
        sources=[{"url": f"s3://{bucket}/embeddings/", "collection": "articles", "discovery": "events",
                  "queue": queue, "backfill_every": 0}],
        settings={"queue_wait_s": 1})
    metrics = tmp_path / "run.prom"
    proc = cli_child("run", str(manifest), "--follow", "--metrics-file", str(metrics), deadline_s=60)
    for made, batch in ((2, ["embeddings/a.parquet", "embeddings/b.parquet"]), (3, ["embeddings/c.parquet"])):
        for key in batch:
            s3.put_object(Bucket=bucket, Key=key, Body=parquet_bytes())
        announce(sqs, queue, bucket, batch, times=2)
        wait_for(lambda made=made: len(fake_api.creates()) == made, proc)
    wait_for(lambda: any(line.startswith("orchestrator_run_messages{") and 'fate="deleted"' in line
                         and line.endswith(" 6.0") for line in (
                             metrics.read_text() if metrics.exists() else "").splitlines()),
             proc)  # written after each round
    proc.send_signal(signal.SIGTERM)
    done = proc.finish()
    assert done.returncode == 0, done.stderr
    assert "summary: submitted=3 " in done.stdout and "messages_deleted=6" in done.stdout
    assert "stopped following on SIGTERM" in done.stderr
    once_each(fake_api, [f"s3://{bucket}/embeddings/{k}.parquet" for k in "abc"])
    assert left_on(sqs, queue) == []


def test_follow_needs_a_queue(write_manifest: Callable[..., Path]) -> None:
    result = invoke("run", str(write_manifest()), "--follow")
    assert result.exit_code == 2 and "--follow: no source reads a queue" in result.output


def wait_for(condition: Callable[[], bool], proc: Any, timeout_s: float = 30.0) -> None:
    """Poll a condition a child brings about, failing when the child ends first or the time is up."""
    ends = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, proc.finish()
        assert time.monotonic() < ends, "timed out"
        time.sleep(0.05)


def test_plan_ls_status_and_show_say_how_each_object_was_found(
    s3: Any, sqs: Any, bucket: str, queue: str, events_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    """``plan`` and ``ls`` list (receiving would count toward the queue's redrive policy): their objects
    are found by the listing; the ledger keeps how each imported one was found."""
    for key in ("embeddings/a.parquet", "embeddings/b.parquet"):
        s3.put_object(Bucket=bucket, Key=key, Body=parquet_bytes())
    manifest = events_manifest(backfill_every="1h")
    plan = invoke("plan", str(manifest), "--json")
    ls = invoke("ls", str(manifest), "--json")
    assert [json.loads(line)["found"] for line in plan.stdout.splitlines()] == ["listing", "listing"]
    assert [json.loads(line)["found"] for line in ls.stdout.splitlines()] == ["listing", "listing"]
    assert invoke("run", str(manifest)).exit_code == 0  # the first backfill lists both
    s3.put_object(Bucket=bucket, Key="embeddings/c.parquet", Body=parquet_bytes())
    announce(sqs, queue, bucket, ["embeddings/c.parquet"])
    assert invoke("run", str(manifest)).exit_code == 0
    status = json.loads(invoke("status", str(manifest), "--json").stdout)
    assert {o["url"].rsplit("/", 1)[1]: o["found"] for o in status["objects"]} == {
        "a.parquet": "listing", "b.parquet": "listing", "c.parquet": "event"}
    shown = invoke("show", str(manifest), f"s3://{bucket}/embeddings/c.parquet")
    assert "found by    event" in shown.stdout
    assert json.loads(invoke("show", str(manifest), f"s3://{bucket}/embeddings/c.parquet",
                             "--json").stdout)["versions"][0]["found"] == "event"


def test_an_inventory_and_a_queue_together(
    s3: Any, sqs: Any, bucket: str, queue: str, events_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    """The inventory brings what was there when it was made, the queue what came since; the same
    inventory is not read again."""
    for key in ("embeddings/a.parquet", "embeddings/b.parquet", "other/x.parquet"):
        s3.put_object(Bucket=bucket, Key=key, Body=parquet_bytes())
    s3.create_bucket(Bucket=f"{bucket}-inventory")
    write_inventory(s3, bucket=f"{bucket}-inventory", folder="lake/", source_bucket=bucket,
                    rows=rows_of(s3, bucket), when=datetime.now(UTC).replace(second=0, microsecond=0))
    manifest = events_manifest(discovery="inventory", inventory=f"s3://{bucket}-inventory/lake/")
    first = invoke("run", str(manifest))
    assert first.exit_code == 0 and "submitted=2 " in first.stdout, first.output
    s3.put_object(Bucket=bucket, Key="embeddings/c.parquet", Body=parquet_bytes())
    announce(sqs, queue, bucket, ["embeddings/c.parquet"], times=2)
    second = invoke("run", str(manifest), "--json-log")  # the same inventory: not read again; events bring c
    assert second.exit_code == 0 and "submitted=1 " in second.stdout and "skipped=0 " in second.stdout
    assert '"event": "inventory-seen"' in second.stderr and "messages_deleted=2" in second.stdout
    once_each(fake_api, [f"s3://{bucket}/embeddings/{k}.parquet" for k in "abc"])
    assert {r.url.rsplit("/", 1)[1]: r.found for r in rows(manifest)} == {
        "a.parquet": "inventory", "b.parquet": "inventory", "c.parquet": "event"}
    assert left_on(sqs, queue) == []


def test_follow_waits_between_tries_of_a_queue_out_of_reach(
    queue: str, write_manifest: Callable[..., Path], bucket: str,
) -> None:
    """A queue that cannot be read is a source error; --follow tries again a queue_wait_s later (it
    never spins), and ends with exit 1 on SIGTERM."""
    missing = queue.rsplit("/", 1)[0] + "/no-such-queue"
    manifest = write_manifest(
        sources=[{"url": f"s3://{bucket}/embeddings/", "collection": "articles", "discovery": "events",
                  "queue": missing, "backfill_every": 0}],
        settings={"queue_wait_s": 1})
    proc = cli_child("run", str(manifest), "--follow", deadline_s=60)
    started = time.monotonic()
    wait_for(lambda: time.monotonic() - started > 2.5, proc)
    proc.send_signal(signal.SIGTERM)
    done = proc.finish()
    errors = [line for line in done.stderr.splitlines() if "no-such-queue: cannot receive" in line]
    assert done.returncode == 1 and 1 <= len(errors) <= 4, done.stderr


def test_a_duplicate_in_a_later_round_needs_no_lookup(
    s3: Any, sqs: Any, bucket: str, queue: str, events_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    """120 messages (60 objects, each announced twice, shuffled) take two rounds: a duplicate of a
    version the first round settled is deleted without a HEAD; each object is looked up once."""
    keys = [f"embeddings/d-{i:02}.parquet" for i in range(60)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=parquet_bytes())
    etags = {key: s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"') for key in keys}
    announce(sqs, queue, bucket, keys, etags=etags, times=2, seed=11)
    heads: list[str] = []

    def counting(config: Any, settings: Any) -> Any:
        lister = registry.make_source(config, settings)
        look = lister.head  # type: ignore[attr-defined]
        lister.head = lambda key: heads.append(key) or look(key)  # type: ignore[attr-defined]
        return lister

    report = api.run(api.validate(events_manifest()), source_factory=counting)
    assert report.exit_code() == 0 and report.messages["deleted"] == 120
    assert report.messages["settled"] > 0  # some duplicates came in the second round
    assert sorted(heads) == sorted(keys)
    once_each(fake_api, [f"s3://{bucket}/{key}" for key in keys])


def test_a_cron_run_on_a_queue_fed_as_fast_as_it_drains_ends(
    sqs: Any, bucket: str, queue: str, events_manifest: Callable[..., Path], clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every receive finds a new message (a producer as fast as the run): without a bound the run read
    on for good; it stops reading after settings.queue_drain_s of its clock, and ends."""
    def fed(source: Any, settings: Any) -> Any:
        real = registry.make_queue(source, settings)
        receive = real.receive

        def always_one_more(most: int, wait_s: float) -> Any:
            sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"Event": "s3:TestEvent"}))
            clock.now += 100
            return receive(most, wait_s)
        real.receive = always_one_more
        return real

    caplog.set_level(logging.INFO, logger="orchestrator")
    manifest = api.validate(events_manifest())
    manifest = dataclasses.replace(manifest, settings=dataclasses.replace(manifest.settings,
                                                                          queue_drain_s=300))
    report = api.run(manifest, queue_factory=fed, clock=clock)
    assert report.exit_code() == 0 and report.messages["received"] <= 20, report.messages  # a round or two
    assert "read for settings.queue_drain_s (300 s)" in caplog.text
