"""Exactly once under faults: lost replies, 5xx, 429, busy clusters, failed jobs, kill -9, two runs.
The crash and lock tests run over both ledgers (SQLite, PostgreSQL: the ``ledger_url`` fixture)."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator import api
from orchestrator.cli.main import cli
from orchestrator.ledger.factory import hold_ledger
from orchestrator.models import LedgerRecord
from orchestrator.run.wiring import manifest_ledger
from tests.conftest import HTTP_TARGETS, LEDGERS, SECRETS, Child, cli_child, parquet_bytes
from tests.fakes.base import FakeImportAPI as FakeZilliz
from tests.fakes.base import Job

# Every test here runs against every HTTP import API's fake.
pytestmark = pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def spawn(*args: str) -> Child:
    return cli_child(*args)


def rows(manifest: Path) -> list[LedgerRecord]:
    with manifest_ledger(api.validate(manifest)) as ledger:
        return list(ledger.records())


def hold(manifest: Path) -> Any:
    """The manifest's run lock, held by this process (a SQLite lock file, or PostgreSQL's advisory lock)."""
    m = api.validate(manifest)
    return hold_ledger(m.ledger_url or m.ledger_path)


over_both_ledgers = pytest.mark.parametrize("ledger_url", LEDGERS, indirect=True)


def assert_exactly_once(fake: FakeZilliz, manifest: Path, urls: list[str]) -> None:
    """Every object has exactly one job that did not fail, and the ledger knows exactly those jobs."""
    live = {}
    for url in urls:
        jobs = [j for j in fake.jobs_for(url) if j.fail_reason is None]
        assert len(jobs) == 1, f"{url}: {len(jobs)} live jobs"
        live[url] = jobs[0].job_id
    recorded = {r.url: r.job_id for r in rows(manifest) if r.state.value in ("submitted", "completed")}
    assert recorded == live


def die_between_job_and_reply(fake: FakeZilliz, manifest: Path) -> None:
    """A run killed in the uncertain window: the server made the job, its id never reached the ledger."""
    proc = spawn("run", str(manifest))
    fake.before_reply = lambda job: proc.send_signal(signal.SIGKILL)
    assert proc.wait(60) == -signal.SIGKILL
    fake.before_reply = None


def kill_runs(fake: FakeZilliz, manifest: Path, modes: list[str], rng: random.Random, *, most: int) -> int:
    """One run per mode, killed with SIGKILL: ``in-window`` once the server made its job (the
    1st to ``most``th create of the run) and before the reply, ``after-reply`` just after that reply,
    ``timer`` at a random moment. Returns how many runs died of it."""
    kills = 0
    for mode in modes:
        proc = spawn("run", str(manifest))
        creates_before = len(fake.creates())
        target = rng.randint(1, most)
        fired = threading.Event()

        def hook(job: Job, proc: Child = proc, mode: str = mode, target: int = target,
                 start: int = creates_before, fired: threading.Event = fired) -> None:
            if fired.is_set() or len(fake.creates()) - start < target:
                return
            fired.set()
            if mode == "in-window":
                proc.send_signal(signal.SIGKILL)  # the job exists; its id never reaches the ledger
            elif mode == "after-reply":
                threading.Timer(rng.uniform(0.0, 0.03), proc.send_signal, (signal.SIGKILL,)).start()

        fake.before_reply = hook if mode != "timer" else None
        if mode == "timer":
            threading.Timer(rng.uniform(0.2, 1.5), lambda p=proc: p.poll() is None and p.send_signal(
                signal.SIGKILL)).start()
        kills += proc.wait(60) == -signal.SIGKILL
    fake.before_reply = None
    return kills


def run_until_clean(manifest: Path, tries: int = 3) -> tuple[str, str]:
    """Run until one run exits 0 (at most ``tries``); its stdout and stderr."""
    for _ in range(tries):
        final = spawn("run", str(manifest))
        out, err = final.communicate(timeout=60)
        if final.returncode == 0:
            break
    assert final.returncode == 0, err
    return out, err


def no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_a_dropped_reply_is_adopted_not_resubmitted(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(6)])
    fake_api.faults = ["drop", "drop", "500"]
    manifest = write_manifest(settings={"concurrency": 1})
    result = invoke("run", str(manifest))
    assert result.exit_code == 0, result.output
    assert "adopted=2" in result.stdout and "submitted=4" in result.stdout
    assert_exactly_once(fake_api, manifest, urls)


def test_transient_errors_are_retried_and_permanent_ones_recorded(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(5)])
    fake_api.faults = ["429", "busy", "garbage", "500", "slow"]
    fake_api.refuse_objects = {"/4.parquet": (47036, "field count mismatch")}
    manifest = write_manifest(settings={"concurrency": 1, "max_attempts": 6})
    result = invoke("run", str(manifest))
    assert result.exit_code == 1
    assert "failed=1" in result.stdout and "submitted=4" in result.stdout
    assert_exactly_once(fake_api, manifest, urls[:4])
    failed = [r for r in rows(manifest) if r.state.value == "failed"]
    assert [r.url for r in failed] == [urls[4]] and "47036" in (failed[0].error or "")


def test_retries_run_out_and_the_object_stays_pending_for_the_next_run(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    urls = put_objects(["embeddings/a.parquet"])
    fake_api.faults = ["busy"] * 4  # max_attempts is 4 in the test manifest
    manifest = write_manifest()
    first = invoke("run", str(manifest))
    assert first.exit_code == 1 and "deferred=1" in first.stdout
    assert [r.state.value for r in rows(manifest)] == ["pending"]
    assert f"gave up after 4 attempts: code {fake_api.BUSY[0]}" in (rows(manifest)[0].error or "")
    second = invoke("run", str(manifest))
    assert second.exit_code == 0 and "submitted=1" in second.stdout
    assert_exactly_once(fake_api, manifest, urls)


def test_failed_jobs_are_resubmitted_until_the_limit_then_rearmed_by_retry(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    urls = put_objects(["embeddings/good.parquet", "embeddings/bad.parquet"])
    fake_api.fail_objects = {"bad.parquet": "field 'vector' type mis-match"}
    manifest = write_manifest(settings={"max_job_failures": 2})
    invoke("run", str(manifest))
    second = invoke("run", str(manifest))  # refreshes: bad failed once -> retried
    # a job found failed while refreshing is a failure of this run, as one found while waiting is
    assert "jobs_failed=1" in second.stdout and second.exit_code == 1
    plan = invoke("plan", str(manifest))
    assert "skip" in plan.stdout  # both have jobs now
    third = invoke("run", str(manifest))  # bad failed twice: the limit
    assert "jobs_failed=1" in third.stdout
    plan = invoke("plan", str(manifest))
    assert "failed 2 times, the limit: job " in plan.stdout and "type mis-match" in plan.stdout
    assert len(fake_api.jobs_for(urls[1])) == 2
    held = invoke("run", str(manifest))  # out of failures: held for a person, and every run says so
    assert held.stdout.startswith("summary: submitted=0 ") and "held=1" in held.stdout
    assert held.exit_code == 1
    rearm = invoke("retry", str(manifest), "--url", "*/bad.parquet")
    assert rearm.exit_code == 0 and "re-armed 1 object" in rearm.stdout
    assert "submitted=1" in invoke("run", str(manifest)).stdout
    assert len(fake_api.jobs_for(urls[1])) == 3 and len(fake_api.jobs_for(urls[0])) == 1


def test_bad_api_key_stops_the_run_after_a_handful_of_calls(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    monkeypatch: Any,
) -> None:
    put_objects([f"embeddings/{i}.parquet" for i in range(40)])
    for variable in ("ZILLIZ_API_KEY", "MILVUS_TOKEN"):
        monkeypatch.setenv(variable, "wrong-key-value-123")
    manifest = write_manifest(settings={"concurrency": 4})
    result = invoke("run", str(manifest))
    assert result.exit_code == 1
    assert "code 80001" in result.stderr or "code 1800" in result.stderr
    assert "check target." in result.stderr
    assert len(fake_api.creates()) <= 4
    assert {r.state.value for r in rows(manifest)} <= {"pending"}  # nothing submitted, nothing lost
    assert "wrong-key-value-123" not in result.output


def test_faulty_api_converges_to_all_completed(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    urls = put_objects([f"embeddings/{i:02}.parquet" for i in range(26)]
                       + ["embeddings/a b.parquet", "embeddings/a%20b.parquet", "embeddings/\u00e9.parquet",
                          "embeddings/%C3%A9.parquet"])
    fake_api.fault_rate = {"500": 0.05, "429": 0.03, "busy": 0.03, "drop": 0.04, "garbage": 0.03}
    fake_api.poll_fault_rate = 0.15
    fake_api.slow_s = 0.05
    fake_api.fault_rate["slow"] = 0.02
    manifest = write_manifest(settings={"concurrency": 4, "max_attempts": 2})
    outputs = []
    for _ in range(10):
        result = invoke("--json-log", "run", str(manifest))
        outputs.append(result.output)
        if {r.state.value for r in rows(manifest)} == {"completed"}:
            break
    assert {r.state.value for r in rows(manifest)} == {"completed"}
    assert_exactly_once(fake_api, manifest, urls)
    no_secrets(*outputs)


@over_both_ledgers
def test_two_runs_at_once_one_exits_75(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    ledger_url: str | None,
) -> None:
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(8)])
    manifest = write_manifest(settings={"concurrency": 1}, ledger=ledger_url)
    with hold(manifest):
        held = invoke("run", str(manifest))
    assert held.exit_code == 75 and f"pid {os.getpid()}" in held.stderr and "--wait-lock" in held.stderr
    fake_api.latency_s = 0.05
    a, b = spawn("run", str(manifest)), spawn("run", str(manifest))
    codes = sorted([a.wait(60), b.wait(60)])
    assert codes == [0, 75], (a.stderr.read() if a.stderr else "", b.stderr.read() if b.stderr else "")
    assert_exactly_once(fake_api, manifest, urls)


@over_both_ledgers
def test_wait_lock_waits_for_the_other_run(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    ledger_url: str | None,
) -> None:
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest(ledger=ledger_url)
    released, taken = threading.Event(), threading.Event()

    def holder() -> None:
        with hold(manifest):
            taken.set()
            released.wait(0.5)

    t = threading.Thread(target=holder)
    t.start()
    assert taken.wait(30)  # the run below starts while the lock is held
    result = invoke("run", str(manifest), "--wait-lock", "30")
    t.join()
    assert result.exit_code == 0 and "submitted=1" in result.stdout


@over_both_ledgers
def test_kill_9_at_many_moments_never_duplicates_nor_forgets(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    ledger_url: str | None,
) -> None:
    # among them, names a server could report alike once decoded: never two in flight at once
    look_alike = ["a b.parquet", "a%20b.parquet", "x+y.parquet", "x y.parquet"]
    urls = put_objects([f"embeddings/p{i:02}.parquet" for i in range(46)]
                       + [f"embeddings/{k}" for k in look_alike])
    manifest = write_manifest(settings={"concurrency": 2}, ledger=ledger_url)
    fake_api.latency_s = 0.06  # a run takes about 2 s: long enough to be killed in every phase
    kills = kill_runs(fake_api, manifest, ["in-window", "after-reply", "timer"] * 3, random.Random(2026),
                      most=4)
    assert kills >= 5, f"only {kills} runs were killed"
    out, err = run_until_clean(manifest)
    status = invoke("status", str(manifest), "--refresh", "--json")
    counts = json.loads(status.stdout)["counts"]
    assert counts == {"completed": 50}, counts
    assert_exactly_once(fake_api, manifest, urls)
    sqlite = manifest.with_name("nightly.ledger.sqlite")
    no_secrets(out, err, invoke("export", str(manifest)).stdout,
               sqlite.read_bytes().decode("latin-1") if ledger_url is None else "")


def test_sigterm_finishes_calls_in_flight_and_exits_143(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    urls = put_objects([f"embeddings/{i:02}.parquet" for i in range(20)])
    manifest = write_manifest(settings={"concurrency": 2})
    fake_api.latency_s = 0.05
    proc = spawn("run", str(manifest))
    sent = threading.Event()

    def hook(job: Job) -> None:
        if not sent.is_set():
            sent.set()
            proc.send_signal(signal.SIGTERM)

    fake_api.before_reply = hook
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "SIGTERM: finishing the calls in flight" in err
    assert "summary:" in out
    states = {r.state.value for r in rows(manifest)}
    assert "submitting" not in states  # every call in flight finished and was recorded
    assert len(fake_api.jobs) < 20
    fake_api.before_reply = None
    assert invoke("run", str(manifest)).exit_code == 0
    assert_exactly_once(fake_api, manifest, urls)


def test_unknowable_interrupted_call_becomes_uncertain_until_rearmed(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    urls = put_objects(["embeddings/a.parquet"])
    manifest = write_manifest()
    die_between_job_and_reply(fake_api, manifest)
    fake_api.list_enabled = False  # the server cannot say whether the job exists
    rerun = invoke("run", str(manifest))
    # a row turned uncertain is trouble a cron job must report: exit 1, and every run after it too
    assert "unsure=1" in rerun.stdout and rerun.exit_code == 1
    again = invoke("run", str(manifest))
    assert "held=1" in again.stdout and again.exit_code == 1
    assert [r.state.value for r in rows(manifest)] == ["uncertain"]
    assert len(fake_api.jobs) == 1  # not resubmitted
    assert "retry --uncertain" in invoke("plan", str(manifest)).stdout
    refused = invoke("retry", str(manifest), "--uncertain")  # the list cannot tell: not re-armed
    assert refused.exit_code == 1 and "--force" in refused.output, refused.output
    assert "re-armed 1" in invoke("retry", str(manifest), "--uncertain", "--force").stdout
    assert "submitted=1" in invoke("run", str(manifest)).stdout
    assert len(fake_api.jobs_for(urls[0])) == 2  # the user chose to resubmit


def test_changed_objects_are_reported_and_reimported_on_request(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    urls = put_objects(["embeddings/a.parquet"])
    manifest = write_manifest()
    invoke("run", str(manifest))
    put_objects(["embeddings/a.parquet"], body=parquet_bytes(rows=7))
    changed = invoke("run", str(manifest))
    assert "changed=1" in changed.stdout and "submitted=0" in changed.stdout
    assert "changed since it was imported" in invoke("plan", str(manifest)).stdout
    reimport = write_manifest(settings={"on_change": "reimport"})
    assert "submitted=1" in invoke("run", str(reimport)).stdout
    assert len(fake_api.jobs_for(urls[0])) == 2


def test_wait_polls_until_jobs_end_and_reports_failures(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    fake_api.complete_after = 0.3
    fake_api.fail_objects = {"b.parquet": "not aligned"}
    manifest = write_manifest()
    result = invoke("run", str(manifest), "--wait", "--poll-interval", "0.1")
    assert result.exit_code == 1
    assert "jobs_completed=1" in result.stdout and "jobs_failed=1" in result.stdout
    states = {r.url.rsplit("/", 1)[1]: r for r in rows(manifest)}
    assert states["a.parquet"].state.value == "completed"
    assert states["b.parquet"].state.value == "failed" and "not aligned" in (states["b.parquet"].error or "")


def test_max_submissions_and_json_log(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    put_objects([f"embeddings/{i}.parquet" for i in range(5)])
    manifest = write_manifest()
    result = invoke("--json-log", "run", str(manifest), "--max-submissions", "2")
    assert result.exit_code == 0 and "submitted=2" in result.stdout
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert [e["event"] for e in events].count("submitted") == 2
    assert events[-1]["event"] == "summary"
    assert all(e.get("job_id") for e in events if e["event"] == "submitted")
    no_secrets(result.output)
    assert "submitted=3" in invoke("run", str(manifest)).stdout


def test_wait_also_waits_for_jobs_adopted_from_an_interrupted_run(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    urls = put_objects(["embeddings/a.parquet"])
    manifest = write_manifest()
    die_between_job_and_reply(fake_api, manifest)
    result = invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    assert result.exit_code == 0, result.output
    assert "adopted=1" in result.stdout and "jobs_completed=1" in result.stdout
    assert_exactly_once(fake_api, manifest, urls)
