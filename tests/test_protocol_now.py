"""The import protocol as Milvus 2.6 / 3.0 speak it (reference section 10), through the command line
against the real-socket fakes: every create has a job timeout, Idempotency-Keys Milvus accepts for any
object name, a job list without pages, and uncommitted jobs that the server never forgets."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator import api
from orchestrator.run.wiring import make_target, manifest_ledger
from tests.conftest import Clock, cli_child, run_cli
from tests.fakes.milvus import MAX_KEY_BYTES, FakeMilvus, duration_s, key_problem

MILVUS = pytest.mark.parametrize("fake_api", ["milvus"], indirect=True)


def _records(manifest: Path) -> list[Any]:
    with manifest_ledger(api.validate(manifest)) as ledger:
        return list(ledger.records())


def _run(manifest: Path, *args: str) -> Any:
    done = run_cli("run", str(manifest), *args)
    assert done.returncode in (0, 1), done.stderr
    return done


# -- 1. every create has a job timeout ---------------------------------------------------------------

@MILVUS
@pytest.mark.parametrize("two_phase", [False, True])
def test_every_milvus_create_sends_the_job_timeout_as_a_duration(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
    two_phase: bool,
) -> None:
    put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    fake_api.two_phase_manifest = two_phase
    _run(write_manifest())
    _run(write_manifest(settings={"job_timeout_s": 7200, "objects_per_job": 2}, name="other.yaml"))
    options = [r.body.get("options") for r in fake_api.creates()]
    extra = {"auto_commit": "false"} if two_phase else {}
    assert options == [{"timeout": "86400s", **extra}] * 2 + [{"timeout": "7200s", **extra}], options
    assert all(j.timeout_s in (86400.0, 7200.0) for j in fake_api.jobs.values())


@MILVUS
def test_a_job_the_server_timed_out_is_failed_with_its_reason(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
    clock: Clock,
) -> None:
    urls = put_objects(["embeddings/slow.parquet"])
    fake_api.clock = clock
    fake_api.complete_after = 10_000.0  # longer than the job may take
    manifest = write_manifest(settings={"job_timeout_s": 600, "max_job_failures": 1})
    assert "submitted=1" in _run(manifest).stdout
    clock.now += 599.0
    _run(manifest)
    assert _records(manifest)[0].state.value == "submitted"  # still within its time
    clock.now += 1.0
    done = _run(manifest)
    record = _records(manifest)[0]
    assert (record.url, record.state.value) == (urls[0], "failed"), done.stdout
    assert "import timeout, expired the specified time limit 600s" in (record.error or "")
    assert "import timeout" in done.stderr


@MILVUS
def test_after_a_timeout_the_next_try_has_a_new_key(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
    clock: Clock,
) -> None:
    urls = put_objects(["embeddings/slow.parquet"])
    fake_api.clock = clock
    fake_api.honour_idempotency = True  # a failed job's key keeps returning that failed job
    fake_api.complete_after = 10_000.0
    manifest = write_manifest(settings={"job_timeout_s": 600, "max_job_failures": 2})
    _run(manifest)
    clock.now += 600.0
    _run(manifest)  # timed out: failed once, pending again
    fake_api.complete_after = 0.0
    _run(manifest)  # sent again: a new job, not the failed one
    first, second = fake_api.jobs_for(urls[0])
    assert first.idempotency_key != second.idempotency_key and first.fail_reason and not second.fail_reason
    _run(manifest)
    assert _records(manifest)[0].state.value == "completed"


@MILVUS
@pytest.mark.parametrize("value", [0, 59, 30 * 86400 + 1, "1h"])
def test_validate_refuses_a_job_timeout_out_of_range(
    write_manifest: Callable[..., Path], value: object,
) -> None:
    done = run_cli("validate", str(write_manifest(settings={"job_timeout_s": value})))
    assert done.returncode != 0 and "settings.job_timeout_s" in done.stderr, done.stderr


def test_the_fake_reads_durations_like_go() -> None:
    assert [duration_s(t) for t in ("3600s", "1.5h", "1h30m", "300ms", "s", "3600", "-1s", "1 s")] == [
        3600.0, 5400.0, 5400.0, 0.3, None, None, None, None]


# -- 2. Idempotency-Key as Milvus defines it ---------------------------------------------------------

ODD_NAMES = [
    "embeddings/" + "long-" * 201 + ".parquet",  # 1,024 characters: the longest S3 key
    "embeddings/données-日本語-ü.parquet",
    "embeddings/a%20b%2Fc.parquet",
    "embeddings/with spaces and\ttab.parquet",
    "embeddings/quote\"back\\slash.parquet",
]


@MILVUS
def test_keys_are_what_milvus_accepts_for_every_object_name(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
) -> None:
    assert len(ODD_NAMES[0]) == 1024
    urls = put_objects(ODD_NAMES)
    fake_api.honour_idempotency = True  # a 2.6.24+ server: it checks the key's format
    fake_api.faults = ["full"]  # the job limit: the call is queued for the next run, with the same key
    manifest = write_manifest(settings={"concurrency": 1})
    assert "queued=5" in _run(manifest).stdout
    second = _run(manifest)
    refused, *sent = fake_api.creates()
    assert all(key_problem(r.headers["Idempotency-Key"]) is None for r in sent)
    assert {r.state.value for r in _records(manifest)} == {"submitted"}, second.stdout + second.stderr
    assert [len(fake_api.jobs_for(u)) for u in urls] == [1] * len(urls)
    retried = [r for r in sent if r.body["files"] == refused.body["files"]]
    assert [r.headers["Idempotency-Key"] for r in retried] == [refused.headers["Idempotency-Key"]]
    assert len({r.headers["Idempotency-Key"] for r in sent}) == len(urls)


def test_the_fake_checks_keys_and_remembers_them_per_collection_for_a_day(clock: Clock) -> None:
    fake = FakeMilvus(clock=clock, honour_idempotency=True)
    with httpx.Client(transport=fake.transport()) as client:
        def create(key: str, collection: str = "c") -> dict[str, Any]:
            reply = client.post(f"{fake.url}/v2/vectordb/jobs/import/create", headers={
                "Authorization": f"Bearer {fake.api_key}", "Idempotency-Key": key},
                json={"collectionName": collection, "files": [["a.parquet"]]})
            return dict(reply.json())

        assert create("k" * (MAX_KEY_BYTES + 1))["code"] == 1100
        assert create("tab\tin-key")["code"] == 1100
        first = create("k" * MAX_KEY_BYTES)["data"]["jobId"]
        assert create("k" * MAX_KEY_BYTES)["data"]["jobId"] == first
        assert create("k" * MAX_KEY_BYTES, "other")["data"]["jobId"] != first  # scoped to the collection
        clock.now += 86_400.0
        assert create("k" * MAX_KEY_BYTES)["data"]["jobId"] != first  # forgotten after a day
        fake.faults = ["full"]
        assert create("late")["code"] == 2100 and not [j for j in fake.all_jobs() if j.idempotency_key
                                                          == "late"]  # the limit check comes first


# -- 5. the Milvus job list has no pages ----------------------------------------------------------

@MILVUS
def test_polling_by_list_when_one_reply_holds_every_job(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
) -> None:
    urls = put_objects([f"embeddings/p{i}.parquet" for i in range(5)])
    for i in range(600):  # more jobs than a page of any list: other collections' and earlier ones
        fake_api.add_job(f"s3://elsewhere/x{i}.parquet", "other")
    fake_api.complete_after = 10_000.0
    manifest = write_manifest()
    assert "submitted=5" in _run(manifest).stdout
    before = len(fake_api.received)
    _run(manifest)
    paths = [r.path.rsplit("/", 1)[1] for r in fake_api.received[before:]]
    assert paths == ["list"], paths  # one reply held every job: no paging, no call per job after it
    fake_api.complete_after = 0.0
    before = len(fake_api.received)
    done = _run(manifest)
    paths = [r.path.rsplit("/", 1)[1] for r in fake_api.received[before:]]
    assert paths == ["list"] + ["describe"] * 5, paths  # the list has no rows: one describe each
    assert "jobs_completed=5" in done.stdout, done.stdout  # each counted once
    status = json.loads(run_cli("status", str(manifest), "--json").stdout)
    assert status["counts"] == {"completed": 5}
    assert [fake_api.visible_rows(u) for u in urls] == [3] * 5


def test_the_milvus_fake_ignores_page_fields() -> None:
    fake = FakeMilvus()
    for i in range(12):
        fake.add_job(f"s3://b/{i}.parquet", "c")
    with httpx.Client(transport=fake.transport()) as client:
        reply = client.post(f"{fake.url}/v2/vectordb/jobs/import/list", headers={
            "Authorization": f"Bearer {fake.api_key}"}, json={"pageSize": 5, "currentPage": 2}).json()
    assert reply["code"] == 0 and len(reply["data"]["records"]) == 12 and "count" not in reply["data"]


# -- 4. uncommitted jobs are never garbage-collected: a run leaves none of its own ------------------

def _proven(manifest: Any, client: httpx.Client, read: Any) -> Any:
    """The target, as after a commit earlier in this process: two-phase import is proven."""
    target = make_target(manifest, client, read)
    target.two_phase_proven = True
    return target


@MILVUS
def test_run_wait_aborts_the_uncommitted_orphan_of_its_own_lost_reply(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="orchestrator")
    from orchestrator.run.state import RunOptions

    urls = put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    fake_api.two_phase_manifest = True
    fake_api.faults = ["drop"]  # a's reply is lost, its job made: sent again, the first job an orphan
    manifest = write_manifest(settings={"concurrency": 1})
    report = api.run(api.validate(manifest), RunOptions(wait=True, poll_interval_s=0.05, deadline_s=60),
                     target_factory=_proven)
    assert report.exit_code() == 0, report
    orphan, owned = fake_api.jobs_for(urls[0])
    assert owned.committed_at is not None
    assert orphan.failed_at is not None and orphan.committed_at is None  # aborted by the same run
    assert [fake_api.visible_rows(u) for u in urls] == [3, 3]
    assert "an uncommitted orphan of a lost reply" in caplog.text


@MILVUS
def test_a_run_that_leaves_an_orphan_uncommitted_says_why(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="orchestrator")
    urls = put_objects(["embeddings/a.parquet"])
    fake_api.two_phase_manifest = True
    fake_api.complete_after = 10_000.0  # still importing when the run ends: it cannot be told apart yet
    fake_api.faults = ["drop"]
    report = api.run(api.validate(write_manifest()), target_factory=_proven)
    assert report.exit_code() == 0 and len(fake_api.jobs_for(urls[0])) == 2
    assert "1 create call(s) of this run were sent again after a lost reply" in caplog.text, caplog.text


def test_the_fake_keeps_uncommitted_jobs_forever(clock: Clock) -> None:
    fake = FakeMilvus(clock=clock, job_memory_s=3 * 3600.0)
    with httpx.Client(transport=fake.transport()) as client:
        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            return dict(client.post(f"{fake.url}/v2/vectordb/jobs/import/{path}", headers={
                "Authorization": f"Bearer {fake.api_key}"}, json=body).json())

        kept = post("create", {"collectionName": "c", "files": [["a.parquet"]],
                               "options": {"auto_commit": "false"}})["data"]["jobId"]
        done = post("create", {"collectionName": "c", "files": [["b.parquet"]]})["data"]["jobId"]
        clock.now += 365 * 86400.0
        assert post("describe", {"jobId": kept})["data"]["state"] == "Uncommitted"
        assert post("describe", {"jobId": done})["code"] == 2100  # a completed job is forgotten
        assert [r["jobId"] for r in post("list", {})["data"]["records"]] == [kept]


@pytest.mark.parametrize("fake_api", ["zilliz-v1", "zilliz-v2"], indirect=True)
def test_a_paged_list_whose_server_ignores_pages_is_read_once(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: Any,
) -> None:
    put_objects([f"embeddings/p{i}.parquet" for i in range(5)])
    for i in range(150):  # more than a page: every page would answer all of them, with no count
        fake_api.add_job(f"s3://elsewhere/x{i}.parquet", "other")
    fake_api.pages_ignored = True
    fake_api.complete_after = 10_000.0
    fake_api.faults = ["drop"]  # a lost reply: the whole list is read to find its job
    manifest = write_manifest(settings={"concurrency": 1})
    done = cli_child("run", str(manifest), deadline_s=60).finish()  # old code: paged on for ever
    assert "submitted=4 adopted=1" in done.stdout, done.stdout + done.stderr
    lists = [r for r in fake_api.received if r.path.endswith("/list")]
    assert len(lists) <= 2, len(lists)  # one read per look, not page after page of the same jobs


@MILVUS
def test_the_orphan_of_an_object_left_failed_is_aborted_by_the_next_run(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeMilvus,
) -> None:
    urls = put_objects(["embeddings/a.parquet"])
    fake_api.two_phase_manifest = True
    fake_api.complete_after = 10_000.0
    fake_api.faults = ["drop"]  # the reply is lost, the job made: sent again, the first job an orphan
    manifest = write_manifest(settings={"max_job_failures": 1})
    assert api.run(api.validate(manifest), target_factory=_proven).exit_code() == 0
    orphan, owned = fake_api.jobs_for(urls[0])
    owned.fail_reason = "the server failed it"  # the owned job fails: the object is left failed (held)
    fake_api.complete_after = 0.0  # and the orphan waits Uncommitted, for ever unless aborted
    done = _run(manifest)
    assert _records(manifest)[0].state.value == "failed", done.stdout
    assert orphan.failed_at is not None and orphan.committed_at is None, done.stdout + done.stderr
    assert fake_api.visible_rows(urls[0]) == 0
