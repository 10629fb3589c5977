"""discovery: events, end to end (moto's S3 and SQS, the fake import API on a socket, the CLI): an object
whose job fails on the server, or is sent back to ``pending``, after the message that named it was
deleted is planned again by the next run that does not list the source whole, as a listing rerun
would; a gone one needs nothing; one also announced again is planned once."""

from __future__ import annotations

import dataclasses
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator import api
from orchestrator.errors import SourceError
from orchestrator.run.state import RunOptions
from orchestrator.sources import registry
from tests import test_discovery_s3 as events
from tests.conftest import Clock, cli_child, parquet_bytes
from tests.fakes.base import FakeImportAPI
from tests.inventories import rows_of, write_inventory
from tests.test_discovery_s3 import announce, invoke, left_on, rows, wait_for
from tests.test_exactly_once import assert_exactly_once

sqs, queue, events_manifest = events.sqs, events.queue, events.events_manifest
MISMATCH = "field 'vector' type mis-match"
WAIT = ("--wait", "--poll-interval", "0.1")
REFUSED = (90001, "field count mismatch: expected 2, got 3")  # Zilliz v1: a permanent refusal


def events_source(bucket: str, queue: str) -> dict[str, Any]:
    """The manifest's source of ``embeddings/`` by events, never listed whole."""
    return {"url": f"s3://{bucket}/embeddings/", "collection": "articles", "discovery": "events",
            "queue": queue, "backfill_every": 0}


def put(s3: Any, bucket: str, names: list[str]) -> list[str]:
    """``embeddings/<name>`` for each name, and their URLs."""
    for name in names:
        s3.put_object(Bucket=bucket, Key=f"embeddings/{name}", Body=parquet_bytes())
    return [f"s3://{bucket}/embeddings/{name}" for name in names]


def test_a_job_that_fails_after_its_message_was_deleted_is_retried_by_the_next_run(
    s3: Any, sqs: Any, bucket: str, queue: str, events_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    [url] = put(s3, bucket, ["a.parquet"])
    announce(sqs, queue, bucket, ["embeddings/a.parquet"])
    fake_api.fail_objects = {"a.parquet": MISMATCH}  # its first job fails on the server
    manifest = events_manifest(backfill_every="1h")
    first = invoke("run", str(manifest))  # listed whole (never before), the message read and deleted
    assert first.exit_code == 0 and "messages_deleted=1" in first.stdout, first.output
    assert left_on(sqs, queue) == []
    fake_api.fail_objects = {}
    second = invoke("run", str(manifest), *WAIT, "-v")  # an empty queue, the backfill not due
    assert "jobs_failed=1" in second.stdout and "submitted=1 " in second.stdout, second.output
    assert "1 unfinished object(s) planned again (0 gone" in second.stderr
    assert [job.fail_reason for job in fake_api.jobs_for(url)] == [MISMATCH, None]
    assert [(r.state.value, r.failures, r.found) for r in rows(manifest)] == [("completed", 1, "listing")]
    third = invoke("run", str(manifest))
    assert third.exit_code == 0 and "submitted=0 " in third.stdout, third.output
    assert_exactly_once(fake_api, manifest, [url])


@pytest.mark.parametrize("fake_api", ["zilliz-v2"], indirect=True)
def test_objects_sent_back_to_pending_after_their_message_was_deleted_are_sent_again(
    s3: Any, sqs: Any, bucket: str, queue: str, write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    """A job of two fails and names no file: both go back to ``pending``, in parts (regroup), when the
    next run sees it; that run sends each part."""
    urls = put(s3, bucket, ["a.parquet", "b.parquet"])
    announce(sqs, queue, bucket, ["embeddings/a.parquet", "embeddings/b.parquet"])
    fake_api.fail_objects = {"a.parquet": MISMATCH}
    fake_api.reason_names_file, fake_api.file_details = False, "job"  # the cause is not known
    manifest = write_manifest(sources=[events_source(bucket, queue)], settings={"objects_per_job": 2})
    first = invoke("run", str(manifest))
    assert first.exit_code == 0 and "messages_deleted=2" in first.stdout, first.output
    assert len(fake_api.creates()) == 1
    fake_api.fail_objects = {}
    second = invoke("run", str(manifest), *WAIT, "-v")
    assert "2 unfinished object(s) planned again (0 gone" in second.stderr, second.output
    assert sorted(len(fake_api.urls_of(c.body)) for c in fake_api.creates()) == [1, 1, 2]  # the parts
    assert {(r.state.value, r.failures, r.found) for r in rows(manifest)} == {("completed", 0, "event")}
    assert_exactly_once(fake_api, manifest, urls)


def test_an_unfinished_object_deleted_since_needs_nothing(
    s3: Any, sqs: Any, bucket: str, queue: str, events_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put(s3, bucket, ["gone.parquet"])
    announce(sqs, queue, bucket, ["embeddings/gone.parquet"])
    fake_api.fail_objects = {"gone.parquet": MISMATCH}
    manifest = events_manifest()
    first = invoke("run", str(manifest), *WAIT)  # its job fails in this run: the next one retries it
    assert first.exit_code == 1 and "jobs_failed=1" in first.stdout, first.output
    assert [r.state.value for r in rows(manifest)] == ["failed"] and len(fake_api.creates()) == 1
    s3.delete_object(Bucket=bucket, Key="embeddings/gone.parquet")
    second = invoke("run", str(manifest), "-v")
    assert second.exit_code == 0, second.output
    assert "0 unfinished object(s) planned again (1 gone" in second.stderr
    assert len(fake_api.creates()) == 1


def test_an_unfinished_object_announced_again_is_planned_once(
    s3: Any, sqs: Any, bucket: str, queue: str, events_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    """Both refused (``failed``, retried by a rerun); then ``a`` is announced again and still refused:
    its message plans it, and the pass over the unfinished rows leaves it (and plans ``b``)."""
    a, b = put(s3, bucket, ["a.parquet", "b.parquet"])
    announce(sqs, queue, bucket, ["embeddings/a.parquet", "embeddings/b.parquet"])
    fake_api.refuse_objects = {"a.parquet": REFUSED, "b.parquet": REFUSED}
    manifest = events_manifest()
    first = invoke("run", str(manifest))
    assert "failed=2 " in first.stdout and "messages_deleted=2" in first.stdout, first.output
    fake_api.refuse_objects = {"a.parquet": REFUSED}
    announce(sqs, queue, bucket, ["embeddings/a.parquet"])
    second = invoke("run", str(manifest), "-v")
    assert "submitted=1 " in second.stdout and "failed=1 " in second.stdout, second.output
    assert "1 unfinished object(s) planned again (0 gone" in second.stderr
    sent = [url for c in fake_api.creates() for url in fake_api.urls_of(c.body)]
    assert (sent.count(a), sent.count(b)) == (2, 2)
    assert {r.url: (r.state.value, r.failures) for r in rows(manifest)} == {
        a: ("failed", 2), b: ("submitted", 1)}


def test_follow_retries_a_job_of_its_own_that_failed_in_a_later_round(
    s3: Any, sqs: Any, bucket: str, queue: str, write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    """``run --follow``: the unfinished rows once at start, then each round in which one changed since
    the last pass: a job that fails while it follows is sent again without a new message."""
    [url] = put(s3, bucket, ["a.parquet"])
    fake_api.fail_objects = {"a.parquet": MISMATCH}
    manifest = write_manifest(sources=[events_source(bucket, queue)], settings={"queue_wait_s": 1})
    proc = cli_child("run", str(manifest), "--follow", "--poll-interval", "0.1", "-v", deadline_s=60)
    announce(sqs, queue, bucket, ["embeddings/a.parquet"])
    wait_for(lambda: len(fake_api.jobs_for(url)) == 1, proc)
    fake_api.fail_objects = {}  # the job made fails all the same
    wait_for(lambda: [job.fail_reason for job in fake_api.jobs_for(url)] == [MISMATCH, None], proc)
    wait_for(lambda: [r.state.value for r in rows(manifest)] == ["completed"], proc)
    proc.send_signal(signal.SIGTERM)
    done = proc.finish()
    assert "submitted=2 " in done.stdout and "messages_deleted=1" in done.stdout, done.stderr
    assert "1 unfinished object(s) planned again (0 gone" in done.stderr
    assert_exactly_once(fake_api, manifest, [url])


def test_inventory_between_inventories_retries_a_job_that_failed(
    s3: Any, bucket: str, events_manifest: Callable[..., Path], fake_api: FakeImportAPI, clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """discovery: inventory (a delivery written as AWS writes it): a run with no newer inventory and no
    backfill due retries the job that failed since the last one."""
    a, b = put(s3, bucket, ["a.parquet", "b.parquet"])
    destination = f"{bucket}-inventory"
    s3.create_bucket(Bucket=destination)
    clock.now = time.time()
    made = datetime.fromtimestamp(clock.now - 60, UTC).replace(microsecond=0)
    write_inventory(s3, bucket=destination, folder="lake/", source_bucket=bucket, rows=rows_of(s3, bucket),
                    file_format="CSV", when=made)
    m = api.validate(events_manifest(backfill_every="1d"))
    m = dataclasses.replace(m, sources=(dataclasses.replace(
        m.sources[0], discovery="inventory", inventory=f"s3://{destination}/lake/"),))
    fake_api.fail_objects = {"a.parquet": MISMATCH}
    first = api.run(m, clock=clock)
    assert (first.exit_code(), first.planned["submit"]) == (0, 2)
    fake_api.fail_objects = {}
    clock.now += 600
    caplog.clear()
    second = api.run(m, RunOptions(wait=True, poll_interval_s=0.1), clock=clock)  # the same inventory
    assert "not read: no newer than the source's last full view" in caplog.text
    assert (second.planned["retry"], second.outcomes["submitted"]) == (1, 1)
    assert {r.url: (r.state.value, r.found) for r in rows(events_manifest())} == {
        a: ("completed", "inventory"), b: ("completed", "inventory")}
    assert_exactly_once(fake_api, events_manifest(), [a, b])


def test_an_unfinished_row_that_cannot_be_looked_up_waits_for_the_next_run(
    s3: Any, sqs: Any, bucket: str, queue: str, events_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [url] = put(s3, bucket, ["a.parquet"])
    announce(sqs, queue, bucket, ["embeddings/a.parquet"])
    fake_api.refuse_objects = {"a.parquet": REFUSED}
    m = api.validate(events_manifest())
    assert api.run(m).outcomes["failed"] == 1
    fake_api.refuse_objects = {}

    def timed_out(key: str) -> None:
        raise SourceError(f"cannot look {key} up: timed out")

    def unreachable(config: Any, settings: Any) -> Any:
        lister = registry.make_source(config, settings)
        lister.head = timed_out
        return lister

    second = api.run(m, source_factory=unreachable)
    assert (second.exit_code(), second.planned["retry"]) == (0, 0)
    assert "cannot look embeddings/a.parquet up: timed out; its unfinished row waits for the next pass" \
        in caplog.text
    third = api.run(m)
    assert (third.planned["retry"], third.outcomes["submitted"]) == (1, 1)
    assert [(r.url, r.state.value) for r in rows(events_manifest())] == [(url, "submitted")]
