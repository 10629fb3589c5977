"""Exactly once at the edges: whose job a job is, where an import goes, one ledger per run.

Each test here reproduces a way the earlier code imported an object twice or recorded one as imported
that never was: names that look alike, destinations that changed, clocks that disagree, ledgers reached
by two paths.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from orchestrator import api
from orchestrator.cli.main import cli
from orchestrator.config.manifest import Settings
from orchestrator.errors import MAX_RETRY_AFTER_S, TransientError
from orchestrator.jobs.evidence import Verdict, judge, name_key, reported_names
from orchestrator.ledger.factory import open_ledger
from orchestrator.models import (
    Action,
    JobInfo,
    JobState,
    LedgerRecord,
    ObjectState,
    PlanItem,
    Route,
    StoredObject,
)
from orchestrator.run.wiring import make_target, manifest_ledger, object_url, one_run
from tests.conftest import API_KEY, HTTP_TARGETS, MILVUS_TOKEN, parquet_bytes
from tests.fakes.base import FakeImportAPI
from tests.fakes.milvus import FakeMilvus
from tests.fakes.zilliz import FakeZilliz
from tests.fakes.zilliz_v2 import FakeZillizV2
from tests.test_ledger_migrations import SCHEMA_1_TABLES

ZILLIZ = ("zilliz-v1", "zilliz-v2")
every_api = pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)
zilliz_apis = pytest.mark.parametrize("fake_api", ZILLIZ, indirect=True)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def ledger_rows(manifest: Path) -> list[LedgerRecord]:
    with manifest_ledger(api.validate(manifest)) as ledger:
        return list(ledger.records())


def crash_state(manifest: Path, *, server_at: float | None = None, updated_at: float | None = None,
                only: Callable[[PlanItem], bool] = lambda item: True) -> list[PlanItem]:
    """Leave the ledger as a run killed during its create calls would: every planned object claimed
    (``submitting``), named as the create call named it, at ``server_at`` on the server's clock."""
    m = api.validate(manifest)
    items: list[PlanItem] = []
    api.plan(m, on_item=items.append)
    items = [i for i in items if i.action is Action.SUBMIT and only(i)]
    at = time.time() - 5 if server_at is None else server_at
    with httpx.Client() as client, \
            manifest_ledger(m, clock=(lambda: updated_at) if updated_at is not None else time.time) as ledger:
        target = make_target(m, client)
        for item in items:
            sent = target.object_ref(item.obj, object_url(item, m))
            assert ledger.begin_submission(item, sent_as=sent, server_at=at) is not None
    return items


def live_jobs(fake: FakeImportAPI, url: str) -> list[str]:
    return [j.job_id for j in fake.jobs_for(url) if j.fail_reason is None]


def assert_each_once(fake: FakeImportAPI, manifest: Path, urls: list[str]) -> None:
    """Each object has exactly one job, and its ledger row names that job (not another object's)."""
    recorded = {r.url: r.job_id for r in ledger_rows(manifest)}
    for url in urls:
        jobs = live_jobs(fake, url)
        assert len(jobs) == 1, f"{url}: {len(jobs)} jobs"
        assert recorded[url] == jobs[0], f"{url}: the ledger names {recorded[url]}, its job is {jobs[0]}"


# -- 1. a job belongs to one object, proven, or to nobody --------------------------------------

@zilliz_apis
def test_the_same_key_in_two_buckets_is_never_adopted_on_a_guess(
    s3: Any, write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    buckets = ["lake-eu-1", "lake-us-1"]
    for b in buckets:
        s3.create_bucket(Bucket=b)
        s3.put_object(Bucket=b, Key="emb/part-1.parquet", Body=parquet_bytes())
    manifest = write_manifest(sources=[{"url": f"s3://{b}/emb/", "collection": "articles"} for b in buckets])
    crash_state(manifest)
    fake_api.add_job("s3://lake-eu-1/emb/part-1.parquet", "articles")  # one of the two calls made a job
    result = invoke("run", str(manifest))
    # the server reports the job as emb/part-1.parquet: it may be either object's, so neither adopts it
    assert result.exit_code == 1 and "unsure=2" in result.stdout, result.output
    assert [r.state for r in ledger_rows(manifest)] == [ObjectState.UNCERTAIN] * 2
    assert "cannot be proven" in (ledger_rows(manifest)[0].error or "")
    assert len(fake_api.jobs) == 1 and not fake_api.creates()  # nothing resubmitted on a guess


@pytest.mark.parametrize("fake_api", ["zilliz-v2"], indirect=True)
def test_jobs_of_several_with_the_same_keys_in_two_buckets_are_told_apart_or_left_alone(
    s3: Any, write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    buckets = ["lake-eu-3", "lake-us-3"]
    urls = []
    for b in buckets:
        s3.create_bucket(Bucket=b)
        for k in ("emb/p0.parquet", "emb/p1.parquet"):
            s3.put_object(Bucket=b, Key=k, Body=parquet_bytes())
            urls.append(f"s3://{b}/{k}")
    sources = [{"url": f"s3://{b}/emb/", "collection": "articles"} for b in buckets]
    # both calls' replies lost: the server names each job {emb/p0, emb/p1}, bucket unsaid; the second
    # call waits until the first is resolved, so each job is proven its call's
    fake_api.faults = ["drop", "drop"]
    manifest = write_manifest(sources=sources, settings={"objects_per_job": 2, "concurrency": 2})
    result = invoke("run", str(manifest))
    assert result.exit_code == 0 and "adopted=4" in result.stdout, result.output
    assert_each_once(fake_api, manifest, urls)
    # a crash with both calls in doubt: the one job could be either's, so neither adopts it
    s3.put_object(Bucket=buckets[0], Key="emb/p2.parquet", Body=parquet_bytes())
    s3.put_object(Bucket=buckets[1], Key="emb/p2.parquet", Body=parquet_bytes())
    fresh = write_manifest(sources=sources, settings={"objects_per_job": 2}, name="again.yaml")
    items = crash_state(fresh, only=lambda i: i.obj.key == "emb/p2.parquet")
    assert len(items) == 2
    fake_api.add_job(f"s3://{buckets[0]}/emb/p2.parquet", "articles")
    again = invoke("run", str(fresh))
    assert again.exit_code == 1 and "unsure=2" in again.stdout, again.output
    assert {r.state for r in ledger_rows(fresh) if r.url.endswith("p2.parquet")} == {ObjectState.UNCERTAIN}


@zilliz_apis
def test_two_objects_the_server_would_name_alike_are_never_in_flight_together(
    s3: Any, write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    buckets = ["lake-eu-2", "lake-us-2"]
    for b in buckets:
        s3.create_bucket(Bucket=b)
        s3.put_object(Bucket=b, Key="emb/part-1.parquet", Body=parquet_bytes())
    manifest = write_manifest(sources=[{"url": f"s3://{b}/emb/", "collection": "articles"} for b in buckets],
                              settings={"concurrency": 2})
    seen_at_first_reply: list[int] = []

    def hold_first_reply(job: Any) -> None:  # long enough for a second create to arrive, if it may
        if not seen_at_first_reply:
            deadline = time.monotonic() + 1.5
            while len(fake_api.creates()) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            seen_at_first_reply.append(len(fake_api.creates()))

    fake_api.before_reply = hold_first_reply
    fake_api.faults = ["drop"]  # and the first reply is lost
    result = invoke("run", str(manifest))
    assert result.exit_code == 0, result.output
    assert seen_at_first_reply == [1]  # the second waited until the first was resolved
    assert "adopted=1" in result.stdout and "submitted=1" in result.stdout
    assert_each_once(fake_api, manifest, [f"s3://{b}/emb/part-1.parquet" for b in buckets])


LOOK_ALIKE = [("a b.parquet", "a%20b.parquet"), ("x+y.parquet", "x y.parquet"),
              ("\u00e9.parquet", "%C3%A9.parquet")]


@every_api
@pytest.mark.parametrize("keys", LOOK_ALIKE, ids=["space", "plus", "utf8"])
@pytest.mark.parametrize("jobs_made", ["both", "first"])
def test_keys_equal_once_decoded_each_adopt_only_their_own_job(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    keys: tuple[str, str], jobs_made: str,
) -> None:
    urls = put_objects([f"embeddings/{k}" for k in keys])
    manifest = write_manifest()
    crash_state(manifest)
    for url in urls if jobs_made == "both" else urls[:1]:
        fake_api.add_job(url, "articles")
    result = invoke("run", str(manifest))
    assert result.exit_code == 0, result.output
    assert_each_once(fake_api, manifest, urls)
    assert f"adopted={2 if jobs_made == 'both' else 1}" in result.stdout


@zilliz_apis
@pytest.mark.parametrize("style", ["https-path", "https-virtual"])
def test_https_urls_are_matched_in_the_encoded_form_the_server_reports(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    bucket: str, style: str,
) -> None:
    urls = put_objects(["embeddings/a b+\u00e9.parquet"])
    manifest = write_manifest(sources=[{"url": f"s3://{bucket}/embeddings/", "collection": "articles",
                                        "region": "us-east-1", "object_url_style": style}])
    crash_state(manifest)
    m = api.validate(manifest)
    sent = ledger_rows(manifest)[0].sent_as
    assert sent is not None and "a%20b%2B%C3%A9.parquet" in sent
    fake_api.add_job(sent, "articles")  # the server knows it by the URL it was sent, percent-encoded
    result = invoke("run", str(manifest))
    assert result.exit_code == 0 and "adopted=1" in result.stdout, result.output
    assert not fake_api.creates() and ledger_rows(manifest)[0].state is ObjectState.SUBMITTED
    assert m.sources[0].object_url_style == style and urls


# -- 2. the clock: decide from the server's own time ---------------------------------------------

@every_api
def test_a_crash_under_a_fast_clock_is_judged_on_the_servers_clock(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest()
    now = time.time()
    # claimed 4 h ago by the server's clock, by a machine whose clock was 5 h fast; the server has
    # forgotten the job since (it remembers finished jobs about 3 h)
    crash_state(manifest, server_at=now - 4 * 3600, updated_at=now + 5 * 3600)
    result = invoke("run", str(manifest))
    assert result.exit_code == 1 and "unsure=1" in result.stdout, result.output
    row = ledger_rows(manifest)[0]
    assert row.state is ObjectState.UNCERTAIN and "server's clock" in (row.error or "")
    assert not fake_api.creates()


@every_api
def test_no_job_listed_soon_after_a_lost_call_proves_nothing(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest(settings={"job_list_lag_s": 60})
    crash_state(manifest)  # 5 s ago by the server's clock; its list may lag a minute
    result = invoke("run", str(manifest))
    assert result.exit_code == 1 and "unsure=1" in result.stdout, result.output
    assert ledger_rows(manifest)[0].state is ObjectState.SUBMITTING and not fake_api.creates()
    later = write_manifest(settings={"job_list_lag_s": 1})  # the same, once the lag has passed
    result = invoke("run", str(later))
    assert result.exit_code == 0 and "submitted=1" in result.stdout, result.output


# -- 3. an import is an object version into a destination ---------------------------------------

def other_fake(fake: FakeImportAPI) -> FakeImportAPI:
    if isinstance(fake, FakeMilvus):
        return FakeMilvus(api_key=MILVUS_TOKEN, bucket=fake.bucket).start()
    if isinstance(fake, FakeZillizV2):
        return FakeZillizV2(api_key=API_KEY, cluster_id="inxx-other000000002").start()
    return FakeZilliz(api_key=API_KEY, cluster_id="inxx-other000000001").start()


@every_api
def test_another_cluster_is_a_new_destination_and_never_judges_the_first_ones_jobs(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    fake_api.complete_after = 3600  # jobs take an hour on the first cluster
    first = write_manifest()
    assert invoke("run", str(first)).exit_code == 0
    second_cluster = other_fake(fake_api)
    try:
        moved = write_manifest(target=second_cluster.manifest_target())
        plan = invoke("plan", str(moved))
        assert plan.stdout.count("new destination") == 2, plan.output
        calls_before = len(fake_api.received)
        result = invoke("run", str(moved))
        assert result.exit_code == 0 and "submitted=2" in result.stdout, result.output
        assert sorted(second_cluster.created_urls()) == sorted(urls)
        assert len(fake_api.received) == calls_before  # the first cluster's jobs were not polled
        states = {(r.target.split()[0], r.state) for r in ledger_rows(moved)}
        assert len(ledger_rows(moved)) == 4 and all(s is ObjectState.SUBMITTED for _, s in states)
        again = invoke("run", str(first))  # back on the first cluster: its jobs are still its own
        assert again.exit_code == 0 and "submitted=0" in again.stdout
    finally:
        second_cluster.stop()


@every_api
def test_a_new_route_is_a_new_import_and_plan_says_so(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    bucket: str,
) -> None:
    urls = put_objects(["embeddings/a.parquet"])
    fake_api.complete_after = 3600
    assert invoke("run", str(write_manifest())).exit_code == 0
    rerouted = write_manifest(sources=[{"url": f"s3://{bucket}/embeddings/", "collection": "articles2"}])
    plan = invoke("plan", str(rerouted)).stdout
    assert "submit" in plan and "articles2" in plan and "new destination" in plan
    assert "import running" not in plan
    assert "submitted=1" in invoke("run", str(rerouted)).stdout
    assert [j.collection for j in fake_api.jobs_for(urls[0])] == ["articles", "articles2"]


def test_status_names_sources_by_url_whatever_their_order(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], bucket: str,
) -> None:
    put_objects(["x/a.parquet", "y/b.parquet"])
    sources = [{"url": f"s3://{bucket}/x/", "collection": "xs"},
               {"url": f"s3://{bucket}/y/", "collection": "ys"}]
    assert invoke("run", str(write_manifest(sources=sources))).exit_code == 0
    swapped = write_manifest(sources=sources[::-1])
    out = invoke("status", str(swapped), "--json").stdout
    import json
    groups = {g["collection"]: g["source"] for g in json.loads(out)["groups"]}
    assert groups == {"xs": f"s3://{bucket}/x/", "ys": f"s3://{bucket}/y/"}


@every_api
def test_retry_sends_a_fresh_idempotency_key(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects(["embeddings/bad.parquet"])
    fake_api.honour_idempotency = True
    fake_api.fail_objects = {"bad.parquet": "type mis-match"}
    manifest = write_manifest(settings={"max_job_failures": 1})
    invoke("run", str(manifest))
    assert "held=1" in invoke("run", str(manifest)).stdout  # the job failed: out of failures
    fake_api.fail_objects = {}  # the file was fixed in place
    assert invoke("retry", str(manifest)).exit_code == 0
    result = invoke("run", str(manifest))
    assert "submitted=1" in result.stdout
    jobs = fake_api.jobs_for(urls[0])
    assert len(jobs) == 2 and len({j.idempotency_key for j in jobs}) == 2
    assert ledger_rows(manifest)[0].job_id == jobs[1].job_id


# -- 4. one ledger, one run, whatever the path ---------------------------------------------------

def manifest_at(folder: Path, source: Path, ledger: str) -> Path:
    doc = yaml.safe_load(source.read_text())
    doc["ledger"] = ledger
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_one_ledger_reached_by_two_paths_still_takes_one_run(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], tmp_path: Path, link: str,
) -> None:
    put_objects(["embeddings/a.parquet"])
    base = write_manifest()
    one = manifest_at(tmp_path / "one", base, str(tmp_path / "shared" / "l.sqlite"))
    manifest_ledger(api.validate(one)).close()  # the ledger exists
    other_path = tmp_path / "two" / "alias.sqlite"
    other_path.parent.mkdir()
    if link == "symlink":
        other_path.symlink_to(tmp_path / "shared" / "l.sqlite")
    else:
        os.link(tmp_path / "shared" / "l.sqlite", other_path)
    two = manifest_at(tmp_path / "two", base, "alias.sqlite")
    if link == "symlink":
        with one_run(api.validate(one)):
            result = invoke("run", str(two))
        assert result.exit_code == 75, result.output
        assert "another run" in result.stderr
        assert invoke("run", str(two)).exit_code == 0  # once the first is gone, the second runs
    else:  # SQLite keeps a file consistent under one name only: refused by every path to it
        for manifest in (one, two):
            result = invoke("run", str(manifest))
            assert result.exit_code == 1 and "2 hard links" in result.stderr, result.output
        assert not (tmp_path / "two" / "alias.sqlite-wal").exists()


def test_a_ledger_replaced_during_a_run_stops_it(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put_objects([f"embeddings/{i}.parquet" for i in range(4)])
    manifest = write_manifest(settings={"concurrency": 1, "preflight": "off"})
    ledger = manifest.with_name("nightly.ledger.sqlite")

    def replace_ledger(_job: Any) -> None:
        if len(fake_api.jobs) == 1:
            shutil.copy(ledger, ledger.with_name("copy.sqlite"))
            os.replace(ledger.with_name("copy.sqlite"), ledger)

    fake_api.before_reply = replace_ledger
    result = invoke("run", str(manifest))
    assert result.exit_code == 1
    assert "deleted or replaced" in result.stderr
    assert len(fake_api.jobs) == 1  # nothing more was sent


# -- 5. a reconcile is per object, and stops when asked ------------------------------------------

@every_api
def test_sigterm_while_reconciling_stops_before_the_next_call(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest(settings={"concurrency": 1})
    crash_state(manifest)
    for n in range(60):  # another tool's jobs: each costs a progress call to learn its file
        fake_api.add_job(f"s3://elsewhere/other/{n}.parquet", "articles")
    stop = threading.Event()
    progress_calls: list[str] = []
    m = api.validate(manifest)

    def target_factory(manifest: Any, client: httpx.Client, read: Any) -> Any:
        target = make_target(manifest, client, read)
        real = target.progress

        def progress(job_id: str) -> JobInfo:
            progress_calls.append(job_id)
            if len(progress_calls) == 5:
                stop.set()  # SIGTERM arrives here
            return real(job_id)

        target.progress = progress
        return target

    report = api.run(m, stop=stop, target_factory=target_factory)
    assert len(progress_calls) == 5  # not 60: the sixth call was never made
    assert report.unsure == 1 and ledger_rows(manifest)[0].state is ObjectState.SUBMITTING
    assert not fake_api.creates()


# -- pure rules ----------------------------------------------------------------------------------

def rec(url: str, sent: str | None = None, *, row: int = 1, collection: str = "c",
        server_at: float | None = 1000.0, state: ObjectState = ObjectState.SUBMITTING) -> LedgerRecord:
    return LedgerRecord(url, "e", "s3://b/", collection, None, state, None, 1, 0, None, 1, 0.0,
                        sent_as=sent or url, server_at=server_at, id=row)


def job(job_id: str, name: str | None, collection: str | None = "c") -> JobInfo:
    return JobInfo(job_id, JobState.RUNNING, collection=collection, file_name=name)


def test_judge_adopts_only_a_proven_match() -> None:
    a = rec("s3://b1/k/1.parquet", row=1)
    b = rec("s3://b2/k/1.parquet", row=2)
    one = [job("j1", "k/1.parquet")]
    verdicts = judge([a], [b], one, server_now=1010.0, lag_s=0, memory_s=3600)
    assert verdicts[0].verdict is Verdict.UNCERTAIN and "s3://b2/k/1.parquet" in verdicts[0].why
    assert judge([a], [], one, server_now=1010.0, lag_s=0, memory_s=3600)[0].verdict is Verdict.ADOPT
    two = [job("j1", "k/1.parquet"), job("j2", "b1/k/1.parquet")]
    assert judge([a], [], two, server_now=1010.0, lag_s=0, memory_s=3600)[0].verdict is Verdict.UNCERTAIN
    elsewhere = [job("j1", "k/1.parquet", collection="other")]
    assert judge([a], [], elsewhere, server_now=1010.0, lag_s=0, memory_s=3600)[0].verdict is Verdict.RELEASE


def test_judge_weighs_absence_on_the_servers_clock() -> None:
    a = rec("s3://b/k.parquet")
    def verdict(now: float | None, row: LedgerRecord = a) -> Verdict:
        return judge([row], [], [], server_now=now, lag_s=30, memory_s=3 * 3600)[0].verdict

    assert verdict(1010.0) is Verdict.WAIT  # the list may not show it yet
    assert verdict(1100.0) is Verdict.RELEASE
    assert verdict(1000.0 + 4 * 3600) is Verdict.UNCERTAIN  # the server may have forgotten it
    assert verdict(1100.0, rec("s3://b/k.parquet", server_at=None)) is Verdict.UNCERTAIN
    assert verdict(None) is Verdict.UNCERTAIN


def test_names_exact_and_loose() -> None:
    sent = "https://s3.us-east-1.amazonaws.com/lake/a%20b/1%2B1.parquet"
    assert reported_names(sent, "lake") == {sent, "s3.us-east-1.amazonaws.com/lake/a%20b/1%2B1.parquet",
                                            "lake/a%20b/1%2B1.parquet", "a%20b/1%2B1.parquet"}
    assert "a b/1+1.parquet" not in reported_names(sent, "lake")  # never compared decoded
    assert reported_names("emb/1.parquet", "") == {"emb/1.parquet"}  # a key in Milvus's own bucket
    assert name_key("c", "s3://one/a%20b.parquet") == name_key("c", "s3://two/a b.parquet")
    assert name_key("c", "s3://one/x+y.parquet") == name_key("c", "s3://one/x y.parquet")
    assert name_key("c", "s3://one/%C3%A9.parquet") == name_key("c", "s3://one/e\u0301.parquet")
    assert name_key("c", "s3://one/a.parquet") != name_key("d", "s3://one/a.parquet")


def test_a_job_id_belongs_to_one_import(tmp_path: Path) -> None:
    def item(n: int) -> PlanItem:
        o = StoredObject(f"s3://b/k{n}", "b", f"k{n}", f"k{n}", 1, "e", 0.0)
        return PlanItem(o, 0, Action.SUBMIT, "new object", Route("c", None))

    with open_ledger(tmp_path / "l.sqlite", owner="t") as ledger:
        first, second = ledger.begin_submission(item(1)), ledger.begin_submission(item(2))
        assert first is not None and second is not None
        assert ledger.record_job(first.row, "job-1")
        assert not ledger.record_job(second.row, "job-1")  # the server gave one id for two objects
        row = ledger.row(second.row)
        assert row is not None and row.state is ObjectState.UNCERTAIN and row.job_id is None


def test_a_schema_1_ledger_is_migrated_and_a_newer_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # what orchestrator wrote before destinations (and before rows)
        db.executescript(SCHEMA_1_TABLES + """
            INSERT INTO objects
                VALUES (1, 's3://b/a', 'e', 1, 'c', NULL, 5, 'completed', 'j1', 1, 0, NULL, 1, 2);
            INSERT INTO events VALUES (1, 1, 2, 'completed', 'j1', 'job completed');
        """)
    with open_ledger(path, owner="zilliz-v2 cluster=x db=default", sources=["s3://a/", "s3://b/"]) as ledger:
        (row,) = ledger.records()
        assert (row.target, row.source, row.state, row.job_id, row.rows) == (
            "zilliz-v2 cluster=x db=default", "s3://b/", ObjectState.COMPLETED, "j1", None)
        assert ledger.known_job_ids(["j1"]) == {"j1"}
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("5",)
        db.execute("UPDATE meta SET value='9' WHERE key='schema'")
    with pytest.raises(Exception, match="newer orchestrator"):
        open_ledger(path)


def test_a_partial_job_list_proves_nothing() -> None:
    stop = threading.Event()
    stop.set()
    from orchestrator.jobs.policy import SubmitPolicy
    from orchestrator.jobs.reconcile import Reconciler

    class Lister:
        def list_jobs(self) -> Any:
            yield job("j1", "k.parquet")

    class NoLedger:
        def known_job_ids(self, ids: Any) -> set[str]:
            return set()

    settings = Settings(concurrency=4, max_attempts=1, max_retry_after_s=MAX_RETRY_AFTER_S)
    policy = SubmitPolicy(settings=settings, list_lag_s=0, job_memory_s=1)
    reconciler = Reconciler(Lister(), NoLedger(), policy, stop=stop,  # type: ignore[arg-type]
                            server_clock=lambda: 0.0)
    with pytest.raises(TransientError, match="stopping"):
        reconciler.unknown_jobs({"c"})


def test_the_run_record_inside_the_ledger_meets_a_run_that_holds_another_lock_file(tmp_path: Path) -> None:
    from orchestrator.errors import LockHeldError
    from orchestrator.ledger import lock

    path = tmp_path / "l.sqlite"
    with lock.hold(path) as held, open_ledger(path) as first:
        first.claim_run(held, holder_alive=lock.is_held)
        # reached by a path whose lock file is another (a bind mount)
        with open_ledger(path) as second, pytest.raises(LockHeldError, match=f"pid {os.getpid()}"):
            second.claim_run(tmp_path / "elsewhere.lock", holder_alive=lock.is_held)
    with open_ledger(path) as later:  # the first run died without ending its record: its lock is free
        later.claim_run(tmp_path / "elsewhere.lock", holder_alive=lock.is_held)
        later.end_run()


def test_azure_names_are_the_key_below_the_container() -> None:
    sent = "https://acct.blob.core.windows.net/box/emb/a%20b.parquet"
    assert "emb/a%20b.parquet" in reported_names(sent, "box")
    a = rec("az://acct/box/emb/a b.parquet", sent)
    verdict = judge([a], [], [job("j1", "emb/a%20b.parquet")], server_now=1010.0, lag_s=0, memory_s=3600)
    assert verdict[0].verdict is Verdict.ADOPT
    assert name_key("c", "az://one/box/a b.parquet") == name_key("c", "s3://box/a%20b.parquet")


@every_api
def test_a_listed_job_the_server_no_longer_describes_does_not_hold_up_the_others(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    from orchestrator.errors import JobNotFoundError

    urls = put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    manifest = write_manifest()
    crash_state(manifest)
    gone = fake_api.add_job("s3://elsewhere/old.parquet", "articles")  # listed, but describe forgot it
    ours = fake_api.add_job(urls[0], "articles")

    def target_factory(m: Any, client: httpx.Client, read: Any) -> Any:
        target = make_target(m, client, read)
        real = target.progress

        def progress(job_id: str) -> JobInfo:
            if job_id == gone.job_id:
                raise JobNotFoundError(f"job {job_id}: not found")
            return real(job_id)

        target.progress = progress
        return target

    report = api.run(api.validate(manifest), target_factory=target_factory)
    assert report.exit_code() == 0, report.summary()
    rows = {r.url: r for r in ledger_rows(manifest)}
    assert rows[urls[0]].job_id == ours.job_id  # adopted
    assert rows[urls[1]].state is ObjectState.SUBMITTED  # proven to have none: submitted once
    assert len(fake_api.jobs_for(urls[1])) == 1


@zilliz_apis
def test_the_first_claim_of_a_run_knows_the_servers_time(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    """Without a server time, a crash in the first create call would leave an object that no later
    run can release (only `uncertain`): the run asks the server's clock before its first claim."""
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest(target={"cluster_endpoint": None})  # no describe call before the create
    assert invoke("run", str(manifest)).exit_code == 0
    (row,) = ledger_rows(manifest)
    assert row.server_at is not None and abs(row.server_at - time.time()) < 5
