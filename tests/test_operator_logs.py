"""Operator logs and commands (issue 28): dated log lines, a JSON summary with its counts as fields,
problems that set the exit code printed as errors, ``status --check`` for health checks, ``check``
saying "not checked" where no schema is known, and help texts that tell the truth and the defaults."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from orchestrator.cli.main import cli
from tests.fakes.zilliz import FakeZilliz

# ISO 8601, UTC with its offset, to the millisecond, then one space
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 ")


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def unstamped(text: str) -> list[str]:
    """The lines of ``text`` without their leading time (for tests that compare what a line says)."""
    return [STAMP.sub("", line) for line in text.splitlines()]


def test_plain_and_verbose_log_lines_and_the_summary_carry_an_iso_utc_time(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    put_objects(["embeddings/a.parquet", "embeddings/bad.parquet"])
    fake_api.fail_objects = {"bad.parquet": "field 'vector' type mis-match"}
    manifest = write_manifest()
    for flags in ([], ["-v"]):
        result = invoke("run", str(manifest), "--wait", "--poll-interval", "0", *flags)
        lines = result.stderr.splitlines()
        logged = [line for line in lines if "bad.parquet" in line]
        assert logged, result.stderr
        assert all(STAMP.match(line) for line in logged), lines
        assert re.search(r" at=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$", result.stdout.strip()), \
            result.stdout
        if flags:  # -v: every line the logger wrote is dated
            assert sum(bool(STAMP.match(line)) for line in lines) >= 3, lines


def test_the_json_summary_event_carries_its_counts_as_fields(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    result = invoke("--json-log", "run", str(write_manifest()), "--wait", "--poll-interval", "0")
    assert result.exit_code == 0, result.output
    (summary,) = [e for e in map(json.loads, result.stderr.splitlines()) if e.get("event") == "summary"]
    assert summary["submitted"] == 2 and summary["jobs_completed"] == 2 and summary["exit"] == 0
    assert summary["failed"] == 0 and isinstance(summary["seconds"], float)
    assert summary["message"].startswith("summary: submitted=2 ")


def test_a_failed_job_and_an_invalid_file_are_printed_as_errors(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    put_objects(["embeddings/bad.parquet"])
    put_objects(["embeddings/broken.parquet"], b"not parquet at all")
    fake_api.fail_objects = {"bad.parquet": "field 'vector' type mis-match"}
    result = invoke("run", str(write_manifest()), "--wait", "--poll-interval", "0")
    assert result.exit_code == 1
    lines = unstamped(result.stderr)
    failed = [line for line in lines if "bad.parquet" in line]
    invalid = [line for line in lines if "broken.parquet" in line]
    assert failed and all(line.startswith("error: ") for line in failed), lines
    assert any("failed: field 'vector' type mis-match" in line for line in failed), lines
    assert invalid and all(line.startswith("error: ") for line in invalid), lines


def test_status_check_fails_on_failed_held_and_long_running_objects(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest()
    assert invoke("run", str(manifest), "--wait", "--poll-interval", "0").exit_code == 0
    healthy = invoke("status", str(manifest), "--check")
    assert healthy.exit_code == 0 and "error" not in healthy.stderr

    fake_api.fail_objects = {"bad.parquet": "field 'vector' type mis-match"}
    put_objects(["embeddings/bad.parquet"])
    invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    assert invoke("status", str(manifest)).exit_code == 0  # status alone: always 0
    failed = invoke("status", str(manifest), "--check")
    assert failed.exit_code == 1
    assert "error: 1 object(s) failed" in failed.stderr
    assert failed.stdout.rstrip().endswith("status: 1 completed, 1 failed")  # the table is still shown

    fake_api.complete_after = 3600  # a job that runs on
    put_objects(["embeddings/slow.parquet"])
    invoke("run", str(manifest))
    late = invoke("status", str(manifest), "--check", "--running-max", "0")
    assert late.exit_code == 1
    # (a failed object is submitted again by the run, within its failure budget: 2 running)
    assert "object(s) submitted more than 0 s ago and still running" in late.stderr
    in_time = invoke("status", str(manifest), "--check", "--json")  # within settings.stall_after_s
    assert in_time.exit_code == 0 and json.loads(in_time.stdout)["counts"] == {"completed": 1, "submitted": 2}


def test_check_says_not_checked_where_no_schema_is_known(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    put_objects(["embeddings/a.parquet"])
    target = fake_api.manifest_target()
    del target["cluster_endpoint"]  # Zilliz v1 without it: no describe call, no schema
    manifest = write_manifest(target=target)
    manifest.write_text(manifest.read_text().replace(f"  cluster_endpoint: {fake_api.url}\n", ""))
    result = invoke("check", str(manifest))
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.stdout.splitlines() if "a.parquet" in x]
    assert line.startswith("not checked s3://") and not line.startswith("ok"), line
    assert "no schema known for the collection: set schema_files" in line
    assert "check: 1 not checked" in result.stderr
    as_json = json.loads(invoke("check", str(manifest), "--json").stdout.splitlines()[0])
    assert as_json["not_checked"].startswith("no schema known") and as_json["problems"] == []


def test_help_tells_what_validate_does_and_shows_the_defaults() -> None:
    validate = invoke("validate", "--help").output
    assert "first problem" not in validate and "every problem" in validate
    run = " ".join(invoke("run", "--help").output.split())
    assert "--poll-interval SECONDS Seconds between progress polls with --wait. [default: 5.0;" in run
    assert "[default: 0.0;" in run  # --wait-lock
    export = " ".join(invoke("export", "--help").output.split())
    assert "[default: jsonl]" in export


def test_status_refresh_reads_the_job_list_once_and_records_zilliz_v1_rows(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    """100 completed jobs: one list call (a page of 100) settles them all; the rows imported are the
    files' (v1 counts none: a completed job imported its whole file)."""
    put_objects([f"embeddings/{i:03}.parquet" for i in range(100)])
    manifest = write_manifest()
    fake_api.complete_after = 3600
    assert invoke("run", str(manifest)).exit_code == 0  # 100 jobs, left running
    fake_api.complete_after = 0  # ... and now they have all completed
    fake_api.received.clear()
    result = invoke("status", str(manifest), "--refresh", "--json")
    assert result.exit_code == 0, result.output
    paths = [r.path for r in fake_api.received]
    assert paths.count("/v1/vector/collections/import/list") == 1
    assert paths.count("/v1/vector/collections/import/get") == 0, len(paths)
    (group,) = json.loads(result.stdout)["groups"]
    assert group["counts"] == {"completed": 100}
    assert group["rows_expected"] == group["rows_imported"] == 300  # 3 rows in each file
    table = invoke("status", str(manifest)).stdout
    assert re.search(r"articles\s+100\s+0\s+300\s+300", table), table
