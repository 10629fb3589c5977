"""Benchmark: the rerun that costs what is new (discovery: events) against the full-listing rerun.

  events:     a ledger of N completed objects (N = 1,000,000 in ``make bench``) and 1,000 new objects
              announced by S3 notifications on an SQS queue: one whole ``run`` (receive, HEAD each new
              object, plan against the ledger, import through the fake API, delete the messages), its
              seconds and calls (S3 list and HEAD, SQS receive and delete, import creates)
  duplicates: the same with each message delivered twice, shuffled: every object imported exactly
              once, and what the duplicates cost (messages, HEADs, seconds)
  listing:    the full-listing no-op rerun of N completed objects from bench/list_fanout.py's S3
              server (64 sub-prefixes, 50 ms pages; plan_scale's ``noop-listed``), its seconds and list
              calls. It imports nothing, so it is a lower bound of a listing rerun of the same state.

S3 and SQS of the events runs are moto's server in a process of its own (its HEAD and receive take a
few milliseconds each, as a region's do); the fake import API answers at once on a socket.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx

from bench import list_fanout, plan_scale
from orchestrator import api
from orchestrator.config.manifest import Manifest, PreflightMode, Settings, SourceConfig, TargetConfig
from orchestrator.ledger.factory import open_ledger
from orchestrator.models import Credentials, Secret
from orchestrator.sources.notices import EventQueue
from orchestrator.sources.registry import make_queue, make_source, source_key
from orchestrator.targets.registry import CAPABILITIES
from tests.fakes.zilliz import FakeZilliz

NEW = 1_000
SQS_CALL_S = 0.02  # a receive or a batch delete of SQS in the queue's region
CREDENTIALS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "region_name": "us-east-1"}


@contextlib.contextmanager
def moto() -> Iterator[str]:
    """moto's S3 and SQS server in a process of its own."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(url, timeout=1)
                break
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait()


def manifest(ledger: Path, fake: FakeZilliz, endpoint: str, queue: str) -> Manifest:
    source = SourceConfig(index=0, url="s3://bench/data/", scheme="s3", bucket="bench", prefix="data/",
                          collection="bench", partition=None, pattern=None, include=("**/*.parquet",),
                          exclude=(), endpoint_url=endpoint, region="us-east-1", credentials=None,
                          path_style=True, discovery="events", queue=queue, backfill_every_s=86_400.0)
    return Manifest(
        path=ledger.with_suffix(".yaml"),
        target=TargetConfig(type="zilliz-v1", capabilities=CAPABILITIES["zilliz-v1"], base_url=fake.url,
                            cluster_id=fake.cluster_id, api_key=Secret(fake.api_key)),
        credentials=Credentials(access_key=Secret("bench-ak"), secret_key=Secret("bench-sk")),
        sources=(source,), ledger_path=ledger,
        settings=Settings(concurrency=16, requests_per_second=10_000, min_age_s=0,
                          preflight=PreflightMode.OFF, max_jobs_in_flight=100_000))


def counted(client: Any, calls: Counter[str], spent: Counter[str]) -> None:
    """Count every call ``client`` makes, by operation, and the seconds spent in each (by all threads)."""
    started: dict[int, float] = {}

    def before(model: Any, **_: Any) -> None:
        calls.update([model.name])
        started[threading.get_ident()] = time.perf_counter()

    def after(model: Any, **_: Any) -> None:
        spent[model.name] += time.perf_counter() - started.pop(threading.get_ident(), time.perf_counter())

    client.meta.events.register("before-call", before)
    client.meta.events.register("after-call", after)


def events_run(count: int, *, times: int) -> dict[str, Any]:
    """One events rerun over a ledger of ``count`` completed objects and :data:`NEW` new ones, each
    message delivered ``times`` times."""
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
    with tempfile.TemporaryDirectory() as tmp, moto() as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, **CREDENTIALS)
        sqs = boto3.client("sqs", endpoint_url=endpoint, **CREDENTIALS)
        s3.create_bucket(Bucket="bench")
        queue = sqs.create_queue(QueueName="bench-events")["QueueUrl"]
        keys = [f"data/new-{i:05}.parquet" for i in range(NEW)]
        for key in keys:
            s3.put_object(Bucket="bench", Key=key, Body=b"PAR1")
        etag = hashlib.md5(b"PAR1").hexdigest()  # what S3 says of a 4-byte object put whole
        bodies = [json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
            "bucket": {"name": "bench"}, "object": {"key": key, "size": 4, "eTag": etag}}}]})
            for key in keys] * times
        random.Random(1).shuffle(bodies)
        for start in range(0, len(bodies), 10):
            sqs.send_message_batch(QueueUrl=queue, Entries=[
                {"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start:start + 10])])
        path = Path(tmp) / "bench.ledger.sqlite"
        plan_scale.fill_completed(path, count)  # data/part-*.parquet, completed
        fake = FakeZilliz(api_key="bench-key").start()
        try:
            m = manifest(path, fake, endpoint, queue)
            with open_ledger(path) as ledger:  # the last full listing is recent: no backfill in this run
                ledger.note_listed(source_key(m.sources[0]), time.time())
            calls: Counter[str] = Counter()
            spent: Counter[str] = Counter()

            def source(config: SourceConfig, settings: Settings) -> Any:
                made = make_source(config, settings)
                counted(made.client, calls, spent)  # type: ignore[attr-defined]
                return made

            def events(config: SourceConfig, settings: Settings) -> EventQueue:
                made = make_queue(config, settings)
                counted(made.client, calls, spent)  # type: ignore[attr-defined]
                return made

            start = time.perf_counter()
            report = api.run(m, source_factory=source, queue_factory=events)
            seconds = time.perf_counter() - start
            creates = fake.creates()
        finally:
            fake.stop()
    made = Counter(c.body["objectUrl"] for c in creates)
    assert report.exit_code() == 0, report.summary()
    assert sorted(made) == sorted(f"s3://bench/{k}" for k in keys) and set(made.values()) == {1}, "not once"
    in_sqs = spent["ReceiveMessage"] + spent["DeleteMessageBatch"]
    return {"ledger_objects": count, "new": NEW, "messages": len(bodies), "seconds": round(seconds, 2),
            # moto's SQS takes 0.1 to 0.6 s a receive (it scans the queue), SQS about 0.02 s: the run
            # without that time, plus SQS_CALL_S for each SQS call, is what it would take against SQS
            "seconds_in_moto_sqs": round(in_sqs, 2),
            "seconds_at_sqs_latency": round(seconds - in_sqs + SQS_CALL_S * (
                calls["ReceiveMessage"] + calls["DeleteMessageBatch"]), 2),
            "creates": len(creates), "list_calls": calls["ListObjectsV2"], "head_calls": calls["HeadObject"],
            "receive_calls": calls["ReceiveMessage"], "delete_calls": calls["DeleteMessageBatch"],
            "messages_deleted": report.messages["deleted"],
            "duplicates_without_lookup": report.messages["settled"]}


def listing_run(count: int) -> dict[str, Any]:
    """The full-listing no-op rerun of ``count`` completed objects (plan_scale's ``noop-listed``), with
    its list calls counted."""
    pages = -(-count // list_fanout.PREFIXES // 1000) * list_fanout.PREFIXES + 1  # + the level listing
    done = plan_scale.listed_rerun(count)
    return {"ledger_objects": count, "seconds": done["seconds"], "list_calls_at_least": pages,
            "head_calls": 0}


def main(count: int = 1_000_000) -> dict[str, Any]:
    results = {}
    for name, args in (("events", ["events", str(count), "1"]), ("duplicates", ["events", str(count), "2"]),
                       ("listing", ["listing", str(count)])):
        done = subprocess.run([sys.executable, "-m", "bench.events_rerun", *args], capture_output=True,
                              text=True, check=True)
        results[name] = json.loads(done.stdout)
    events, dup, listing = results["events"], results["duplicates"], results["listing"]
    results["time_ratio"] = round(events["seconds"] / listing["seconds"], 3)
    results["time_ratio_at_sqs_latency"] = round(events["seconds_at_sqs_latency"] / listing["seconds"], 3)
    results["duplicate_cost"] = {"extra_seconds": round(dup["seconds"] - events["seconds"], 2),
                                 "extra_receive_calls": dup["receive_calls"] - events["receive_calls"],
                                 "extra_head_calls": dup["head_calls"] - events["head_calls"],
                                 "extra_delete_calls": dup["delete_calls"] - events["delete_calls"]}
    return results


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "events":
        print(json.dumps(events_run(int(sys.argv[2]), times=int(sys.argv[3]))))
    elif len(sys.argv) == 3 and sys.argv[1] == "listing":
        print(json.dumps(listing_run(int(sys.argv[2]))))
    else:
        print(json.dumps(main(*(int(a) for a in sys.argv[1:2])), indent=2))
