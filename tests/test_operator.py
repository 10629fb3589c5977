"""What an operator meets at the terminal: each fact once, advice that fits, true times, paths as typed,
failing objects with their problems, and filters for long outputs (issue 18)."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from orchestrator import api
from orchestrator.cli import views
from orchestrator.ledger.lock import hold
from orchestrator.models import Action, PlanItem, Route
from orchestrator.report.overview import GroupStatus, Overview
from orchestrator.run.wiring import manifest_ledger
from orchestrator.sources.base import log_page
from orchestrator.sources.local import LocalSource
from orchestrator.sources.registry import source_key
from tests.conftest import SECRETS
from tests.fakes.zilliz import FakeZilliz
from tests.test_operator_logs import unstamped


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli_group(), list(args), catch_exceptions=False)


def cli_group() -> Any:
    from orchestrator.cli.main import cli
    return cli


# -- each fact once; the summary's exit is the process's --------------------------------------------

def test_a_source_error_and_a_fatal_error_are_printed_once(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    put_objects(["embeddings/a.parquet"])
    missing = write_manifest(sources=[{"url": "s3://no-such-bucket/emb/", "collection": "articles"}])
    result = invoke("run", str(missing))
    assert result.exit_code == 1
    assert result.stderr.count("bucket not found") == 1, result.stderr
    assert "error: sources[0] s3://no-such-bucket/emb/: bucket not found" in unstamped(result.stderr)

    fatal = write_manifest(target={"cluster_id": "inxx-does-not-exist"}, name="fatal.yaml")
    result = invoke("run", str(fatal))
    assert result.exit_code == 1
    assert result.stderr.count("code 80020") == 1, result.stderr
    assert any(line.startswith("error: stopping: code 80020") for line in unstamped(result.stderr))


def test_metrics_that_cannot_be_written_make_the_summary_say_exit_1(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    tmp_path: Path,
) -> None:
    put_objects(["embeddings/a.parquet"])
    result = invoke("run", str(write_manifest()), "--metrics-file", str(tmp_path / "missing" / "x.prom"))
    assert result.exit_code == 1
    assert "summary: submitted=1 " in result.stdout and " exit=1 " in result.stdout
    assert "exit=0" not in result.stdout


def test_max_submissions_says_how_many_are_left(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    put_objects([f"embeddings/{i}.parquet" for i in range(5)])
    manifest = write_manifest()
    first = invoke("run", str(manifest), "--max-submissions", "2")
    assert first.exit_code == 0 and "submitted=2 " in first.stdout and " left=3 " in first.stdout
    second = invoke("run", str(manifest))
    assert "submitted=3 " in second.stdout and "left=" not in second.stdout


# -- the lock: advice that fits -------------------------------------------------------------------

def test_a_held_lock_gives_advice_that_fits(
    write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    manifest = write_manifest()
    with hold(manifest.with_name("nightly.ledger.sqlite")):
        at_once = invoke("run", str(manifest))
        waited = invoke("run", str(manifest), "--wait-lock", "0.3")
        status = invoke("status", str(manifest), "--refresh", "--wait-lock", "0.3")
        retry = invoke("retry", str(manifest), "--wait-lock", "0")
    assert at_once.exit_code == 75 and "or pass --wait-lock SECONDS" in at_once.stderr
    for result in (waited, status):
        assert result.exit_code == 75
        assert "still held the ledger after 0.3 s of waiting" in result.stderr, result.stderr
        assert "pass --wait-lock" not in result.stderr
    assert retry.exit_code == 75 and "--wait-lock" in retry.stderr


# -- half-set credentials ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["plan", "ls", "run"])
def test_half_set_aws_credentials_are_one_line(
    command: str, write_manifest: Callable[..., Path], fake_api: FakeZilliz, monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest = write_manifest()
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = CliRunner().invoke(cli_group(), [command, str(manifest)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "PartialCredentialsError" not in result.output
    lines = [line for line in unstamped(result.stderr) if "AWS_SECRET_ACCESS_KEY" in line]
    assert lines == ["error: sources[0] s3://" + lines[0].split("s3://", 1)[1]]
    assert "incomplete AWS credentials in the environment: AWS_SECRET_ACCESS_KEY is missing" in lines[0]


# -- times that are true ----------------------------------------------------------------------------

def test_times_from_a_clock_ahead_are_said_to_be_in_the_future() -> None:
    assert views.ago(90) == "1m ago"
    assert views.ago(0.4) == "0s ago"
    assert views.ago(-125) == "in the future: clock skew of 2m"
    assert views.ago(-125, suffix="") == "in the future: clock skew of 2m"
    assert views.ago(30, suffix="") == "30s"
    overview = Overview(now=1000.0, stall_after_s=60, groups=[], stalled=[], failing_total=0,
                            failing=[], last_success_at=1300.0)
    (first, *_) = views.status_lines(overview, {}, [], Path("l.sqlite"))
    assert first == "ledger: l.sqlite"  # no groups: no last-run clause
    overview = Overview(now=1000.0, stall_after_s=60, groups=[GroupStatus(
        "s3://b/", "c", {"completed": 1}, 0, None, None)], stalled=[], failing_total=0, failing=[],
        last_success_at=1300.0)
    first = views.status_lines(overview, {"completed": 1}, [], Path("l.sqlite"))[0]
    assert first.endswith("(in the future: clock skew of 5m)") and "0s ago" not in first


def test_an_empty_prefix_says_nothing_was_listed(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    bucket: str,
) -> None:
    put_objects(["embeddings/a.parquet"])
    typo = write_manifest(sources=[{"url": f"s3://{bucket}/embedings/", "collection": "articles"}])
    result = invoke("run", str(typo))
    assert result.exit_code == 0
    assert "nothing to import: the sources listed no object" in result.stderr
    assert "imported before" not in result.stderr
    manifest = write_manifest(name="right.yaml")
    invoke("run", str(manifest))
    again = invoke("run", str(manifest))
    assert "every object listed was imported before" in again.stderr


# -- status lists invalid objects; --problems-only ---------------------------------------------------

def test_status_lists_invalid_objects_with_their_problems(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest()
    m = api.validate(manifest)
    (item,) = list(_plan(m))
    with manifest_ledger(m) as ledger:
        assert ledger.mark_invalid(item, ["field vector: missing", "field id: int32, expected int64"], rows=3)
    out = invoke("status", str(manifest)).stdout
    assert "failing: 1 object" in out
    assert "  invalid    " in out and item.obj.url in out
    assert "field vector: missing; field id: int32, expected int64" in out


def _plan(m: Any) -> Iterator[PlanItem]:
    found: list[PlanItem] = []
    api.plan(m, on_item=found.append)
    return iter(found)


def test_problems_only_shows_what_needs_a_person(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    bucket: str,
) -> None:
    put_objects(["embeddings/articles/1.parquet", "embeddings/articles/2.parquet",
                 "embeddings/Bad-Name/1.parquet", "embeddings/notes.txt"])
    manifest = write_manifest(sources=[{
        "url": f"s3://{bucket}/embeddings/", "collection": "{coll}", "pattern": r"(?P<coll>[A-Za-z-]+)/",
        "include": ["**/*.parquet"]}])
    plan = invoke("plan", str(manifest), "--problems-only")
    lines = plan.stdout.splitlines()
    assert len(lines) == 1 and "Bad-Name/1.parquet" in lines[0] and "not a valid Milvus name" in lines[0]
    assert "plan: 1 skip, 2 submit" in plan.stderr
    ls = invoke("ls", str(manifest), "--problems-only")
    assert [line.split()[0] for line in ls.stdout.splitlines()] == ["dropped"]
    assert "notes.txt" in ls.stdout and "ls: " in ls.stderr
    everything = invoke("ls", str(manifest))
    assert len(everything.stdout.splitlines()) == 4


# -- paths as people type them ----------------------------------------------------------------------

@pytest.fixture
def hive(tmp_path: Path) -> tuple[Path, Path]:
    """A local lake with Hive-style folders and a key with glob characters, and a manifest over it."""
    lake = tmp_path / "lake"
    for rel in ("day=01/part 0.parquet", "day=01/a[1].parquet", "day=01/a1.parquet", "day=02/x.parquet"):
        (lake / rel).parent.mkdir(parents=True, exist_ok=True)
        (lake / rel).write_bytes(b"PAR1")
    manifest = tmp_path / "local.yaml"
    manifest.write_text(yaml.safe_dump({
        "version": 1, "target": {"type": "milvus-lite", "uri": "lite.db"},
        "sources": [{"url": "lake", "collection": "c"}], "settings": {"min_age_s": 0}}))
    return lake, manifest


def _fail_all(manifest: Path, lake: Path) -> list[str]:
    m = api.validate(manifest)
    urls = []
    with manifest_ledger(m) as ledger:
        for obj in LocalSource(lake, label="lake").list():
            claim = ledger.begin_submission(PlanItem(obj, 0, Action.SUBMIT, "new", Route("c", None)))
            assert claim is not None
            ledger.refuse(claim.row, "refused", permanent=True)
            urls.append(obj.url)
    return urls


def test_local_keys_are_stored_as_typed(hive: tuple[Path, Path]) -> None:
    lake, manifest = hive
    urls = _fail_all(manifest, lake)
    assert f"file://{lake}/day=01/a%5B1%5D.parquet" in urls  # brackets: a URI must encode them
    assert f"file://{lake}/day=01/part%200.parquet" in urls
    assert f"file://{lake}/day=02/x.parquet" in urls
    assert not any("%3D" in u for u in urls)
    assert source_key(api.validate(manifest).sources[0]) == f"file://{lake}/"


@pytest.mark.parametrize("form", ["relative", "absolute", "url", "old url"])
def test_show_takes_a_path_as_typed(hive: tuple[Path, Path], form: str) -> None:
    lake, manifest = hive
    _fail_all(manifest, lake)
    typed = {"relative": "day=02/x.parquet", "absolute": str(lake / "day=02/x.parquet"),
             "url": f"file://{lake}/day=02/x.parquet", "old url": f"file://{lake}/day%3D02/x.parquet"}[form]
    result = invoke("show", str(manifest), typed)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"file://{lake}/day=02/x.parquet"


def test_show_of_an_unknown_path_names_the_forms_it_looked_for(hive: tuple[Path, Path]) -> None:
    lake, manifest = hive
    _fail_all(manifest, lake)
    result = invoke("show", str(manifest), "day=03/x.parquet")
    assert result.exit_code == 1
    assert f"looked for file://{lake}/day=03/x.parquet" in result.stderr


def test_retry_exact_rearms_one_key_with_glob_characters_and_names_it(hive: tuple[Path, Path]) -> None:
    lake, manifest = hive
    _fail_all(manifest, lake)
    result = invoke("retry", str(manifest), "--exact", "day=01/a[1].parquet")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"re-armed file://{lake}/day=01/a%5B1%5D.parquet",
                                          "re-armed 1 object; the next `run` submits them"]
    glob = invoke("retry", str(manifest), "--url", "day=01/*")  # a glob relative to the source
    assert sorted(glob.stdout.splitlines()[:-1]) == [f"re-armed file://{lake}/day=01/a1.parquet",
                                                     f"re-armed file://{lake}/day=01/part%200.parquet"]


def test_retry_that_matches_nothing_says_so(hive: tuple[Path, Path]) -> None:
    lake, manifest = hive
    _fail_all(manifest, lake)
    result = invoke("retry", str(manifest), "--url", "day=09/*")
    assert result.exit_code == 1
    assert f"no failed or invalid object matches file://{lake}/day=09/*" in result.stderr
    both = invoke("retry", str(manifest), "--url", "*", "--exact", "x")
    assert both.exit_code == 2


def test_a_schema_2_ledger_gets_local_urls_as_typed(hive: tuple[Path, Path]) -> None:
    lake, manifest = hive
    urls = _fail_all(manifest, lake)
    ledger_path = api.validate(manifest).ledger_path
    old = f"file://{lake}/day%3D02/x.parquet"
    with sqlite3.connect(ledger_path) as db:  # as schema 2 stored it
        db.execute("UPDATE objects SET url=?, source=? WHERE url=?",
                   (old, f"file://{lake}/".replace("=", "%3D"), f"file://{lake}/day=02/x.parquet"))
        db.execute("UPDATE meta SET value='2' WHERE key='schema'")
    with manifest_ledger(api.validate(manifest)) as ledger:
        assert sorted(r.url for r in ledger.records()) == sorted(urls)
    with sqlite3.connect(ledger_path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("5",)


def test_json_events_carry_the_run_and_manifest_and_flags_go_after_the_command(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest()
    result = invoke("run", str(manifest), "--json-log")
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert events and {e["manifest"] for e in events} == {str(manifest)}
    assert len({e["run_id"] for e in events}) == 1
    (done,) = [e for e in events if e.get("event") == "submitted"]
    assert done["collection"] == "articles"
    verbose = invoke("status", str(manifest), "-v")
    assert verbose.exit_code == 0


def test_verbose_logs_what_an_operator_needs_when_a_run_is_slow(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    put_objects(["embeddings/a.parquet"])
    fake_api.faults = ["429"]
    result = invoke("run", str(write_manifest()), "--wait", "--poll-interval", "0", "-v")
    assert result.exit_code == 0, result.output
    lines = unstamped(result.stderr)
    assert any(re.fullmatch(r"sources\[0\] s3://.*/embeddings/: listed page 1 under 'embeddings/': 1 entries "
                            r"in \d+\.\d\d s", line) for line in lines), lines
    assert any(re.fullmatch(r"HTTP POST /v1/vector/collections/import -> 429 in \d+ ms "
                            r"\(Retry-After: 0\)", line) for line in lines), lines
    assert any(re.fullmatch(r"HTTP POST /v1/vector/collections/import -> 200 in \d+ ms", line)
               for line in lines), lines
    assert any(re.fullmatch(r"s3://.*/a\.parquet: rate limited \(HTTP 429\); attempt 1 of 4 failed, "
                            r"next in \d+\.\d s, Retry-After 0 s", line) for line in lines), lines
    assert any(re.fullmatch(r"s3://.*/a\.parquet: job \S+ completed( \(\d+ rows\))?", line) for line in lines)
    for secret in SECRETS:
        assert secret not in result.output


def test_a_listing_page_is_counted_only_when_its_line_is_printed(caplog: pytest.LogCaptureFixture) -> None:
    """Counting a page's entries scans the reply on the walk's thread: done for ``-v`` only."""
    counted: list[int] = []

    def entries() -> int:
        counted.append(1)
        return 7

    with caplog.at_level(logging.INFO, logger="orchestrator"):
        log_page("sources[0] s3://b/p/", "p/", 1, entries, 0.05)
    assert counted == [] and not caplog.records
    with caplog.at_level(logging.DEBUG, logger="orchestrator"):
        log_page("sources[0] s3://b/p/", "p/", 2, entries, 0.05)
    assert counted == [1]
    assert caplog.records[-1].getMessage().endswith("listed page 2 under 'p/': 7 entries in 0.05 s")
