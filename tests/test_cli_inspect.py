"""Inspecting a ledger through the CLI: the status table, show, export, metrics files, stalled jobs,
and progress bars only on a terminal. Real S3 (moto), the fake Zilliz v1 API on a real socket."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator import api
from orchestrator.cli.main import cli
from orchestrator.ledger.factory import open_ledger
from orchestrator.models import LedgerRecord, ObjectState
from tests.conftest import run_cli
from tests.fakes.zilliz import FakeZilliz


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def ledger_rows(manifest: Path) -> list[LedgerRecord]:
    with open_ledger(manifest.with_name(manifest.stem + ".ledger.sqlite")) as ledger:
        return list(ledger.records())


@pytest.fixture
def two_collections(put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path],
                    fake_api: FakeZilliz, bucket: str) -> Path:
    """Five objects in two collections after two runs: one refused, one job failed (and resubmitted
    by the second run), the others running (their jobs never finish)."""
    put_objects(["embeddings/articles/1.parquet", "embeddings/articles/2.parquet",
                 "embeddings/articles/3.parquet", "embeddings/authors/1.parquet",
                 "embeddings/authors/2.parquet"])
    fake_api.complete_after = 1e9
    fake_api.refuse_objects = {"articles/3.parquet": (90001, "field count mismatch: expected 2, got 3")}
    fake_api.fail_objects = {"authors/2.parquet": "the file is not a parquet file"}
    manifest = write_manifest(sources=[{"url": f"s3://{bucket}/embeddings/", "collection": "{coll}",
                                        "pattern": r"(?P<coll>[a-z]+)/"}])
    assert invoke("run", str(manifest)).exit_code == 1
    assert invoke("run", str(manifest)).exit_code == 1  # refreshes: authors/2's job failed
    return manifest


def test_status_table_and_json(two_collections: Path, bucket: str) -> None:
    result = invoke("status", str(two_collections))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"^source\s+collection\s+submitted\s+failed\s+stalled\s+rows expected\s+rows imported"
                     r"\s+oldest running$", out, re.M)
    assert re.search(r"^total\s+4\s+1\s+0\s+15\s+-$", out, re.M)  # 5 files of 3 rows, none imported yet
    assert re.search(rf"^s3://{bucket}/embeddings/\s+articles\s+2\s+1\s+0\s+9\s+-\s+\d+s$", out, re.M)
    assert re.search(rf"^s3://{bucket}/embeddings/\s+authors\s+2\s+0\s+0\s+6\s+-\s+\d+s$", out, re.M)
    assert "last successful run: never" in out
    assert re.search(r"^  articles: job-\d+ since .* UTC \(\d+s\)  s3://.*/articles/[12]\.parquet$", out,
                     re.M)
    assert "failing: 1 object" in out
    assert "failed     " in out and f"s3://{bucket}/embeddings/articles/3.parquet" in out
    assert "code 90001: field count mismatch" in out
    assert "stalled:" not in out
    assert out.rstrip().endswith("status: 4 submitted, 1 failed")

    result = invoke("status", str(two_collections), "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["counts"] == {"submitted": 4, "failed": 1}
    assert len(doc["objects"]) == 5
    for obj in doc["objects"]:
        assert set(obj) == {"url", "etag", "collection", "partition", "state", "job_id", "job_objects",
                            "attempts", "error", "rows", "imported_rows", "found"}
    groups = {g["collection"]: g for g in doc["groups"]}
    assert groups["articles"]["counts"] == {"submitted": 2, "failed": 1}
    assert groups["authors"]["oldest_running"]["url"].endswith("/authors/1.parquet")
    assert doc["stalled"] == [] and doc["last_success"] is None


def test_status_of_a_manifest_never_run(write_manifest: Callable[..., Path]) -> None:
    result = invoke("status", str(write_manifest()))
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].startswith("ledger: ")
    assert result.stdout.rstrip().endswith("status: empty ledger")


def test_show_prints_every_attempt(two_collections: Path, bucket: str, fake_api: FakeZilliz,
                                   write_manifest: Callable[..., Path]) -> None:
    url = f"s3://{bucket}/embeddings/authors/2.parquet"
    result = invoke("show", str(two_collections), url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    first, second = (j.job_id for j in fake_api.jobs_for(url))
    assert out.startswith(url + "\n")
    assert re.search(r"^version \w+: submitted$", out, re.M)
    assert re.search(r"^  attempts    2 \(1 failed on the server\)$", out, re.M)
    states = re.findall(r"^    \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC  (\w+)\s+(\S+)\s*(.*)$", out, re.M)
    assert [(s, j) for s, j, _ in states] == [
        ("submitting", "-"), ("submitted", first), ("failed", first), ("submitting", "-"),
        ("submitted", second)]
    assert states[2][2] == f"job {first} failed: the file is not a parquet file"
    assert states[3][2].startswith("failed 1 of 3 allowed times: job ")
    assert "  progress " not in out  # the second job was never polled

    as_json = json.loads(invoke("show", str(two_collections), url, "--json").stdout)
    (version,) = as_json["versions"]
    assert version["state"] == "submitted" and version["job_id"] == second and version["attempts"] == 2
    assert [e["state"] for e in version["events"]] == ["submitting", "submitted", "failed", "submitting",
                                                       "submitted"]

    result = invoke("show", str(two_collections), f"s3://{bucket}/embeddings/nope.parquet")
    assert result.exit_code == 1
    assert "nope.parquet: not in the ledger" in result.stderr and result.stdout == ""
    fresh = write_manifest(name="fresh.yaml")
    result = invoke("show", str(fresh), "s3://x/y")
    assert result.exit_code == 1 and "no ledger yet" in result.stderr


def test_export_round_trips_in_both_formats(two_collections: Path, tmp_path: Path) -> None:
    expected = ledger_rows(two_collections)
    for fmt in ("jsonl", "csv"):
        result = invoke("export", str(two_collections), "--format", fmt)
        assert result.exit_code == 0, result.output
        assert result.stderr == "export: 5 row(s)\n"
        if fmt == "jsonl":
            rows = [json.loads(line) for line in result.stdout.splitlines()]
        else:
            rows = [{k: (v if v != "" else None) for k, v in r.items()}
                    for r in csv.DictReader(io.StringIO(result.stdout))]
        back = [LedgerRecord(**{**r, "attempts": int(r["attempts"]), "key_gen": int(r["key_gen"]),
                                "id": int(r["id"]),
                                "batch": None if r["batch"] is None else int(r["batch"]),
                                "alone": r["alone"] in (True, "True"),
                                "server_at": None if r["server_at"] is None else float(r["server_at"]),
                                "rows": None if r["rows"] is None else int(r["rows"]),
                                "imported_rows": None if r["imported_rows"] is None
                                else int(r["imported_rows"]),
                                "failures": int(r["failures"]), "size": int(r["size"]),
                                "state": ObjectState(r["state"]),
                                "updated_at": datetime.fromisoformat(r["updated_at"]).timestamp()})
                for r in rows]
        assert [r._replace(updated_at=0) for r in back] == [r._replace(updated_at=0) for r in expected]
        assert all(abs(a.updated_at - b.updated_at) < 1e-5 for a, b in zip(back, expected, strict=True))

        out = tmp_path / f"ledger.{fmt}"
        to_file = invoke("export", str(two_collections), "--format", fmt, "--output", str(out))
        assert to_file.exit_code == 0 and to_file.stdout == ""
        assert out.read_text() == result.stdout


def test_export_of_an_empty_ledger(write_manifest: Callable[..., Path]) -> None:
    result = invoke("export", str(write_manifest()), "--format", "csv")
    assert result.exit_code == 0
    assert result.stdout == ",".join(LedgerRecord._fields) + "\n"


class Samples(dict[str, float]):
    """Samples keyed ``name{label="v",...}``, found whatever the order of the labels."""

    def __getitem__(self, key: str) -> float:
        return super().__getitem__(_canonical(key))


def _canonical(key: str) -> str:
    name, _, labels = key.partition("{")
    pairs = sorted(re.findall(r'\w+="(?:[^"\\]|\\.)*"', labels))
    return name + ("{" + ",".join(pairs) + "}" if labels else "")


def parse_metrics(text: str) -> Samples:
    """Prometheus text exposition -> {'name{label="v",...}': value}; checks HELP/TYPE precede samples."""
    samples = Samples()
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind == "gauge"
            typed.add(name)
        elif not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            assert key.split("{")[0] in typed, line
            samples[_canonical(key)] = float(value)
    return samples


def test_metrics_file(put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path],
                      fake_api: FakeZilliz, tmp_path: Path) -> None:
    put_objects([f"embeddings/{i}.parquet" for i in range(4)])
    fake_api.refuse_objects = {"/3.parquet": (90001, "no such collection")}
    fake_api.faults = ["429", "500"]
    manifest = write_manifest(settings={"concurrency": 1})
    metrics = tmp_path / "textfile" / "orchestrator.prom"
    metrics.parent.mkdir()
    before = time.time()
    result = invoke("run", str(manifest), "--metrics-file", str(metrics))
    assert result.exit_code == 1, result.output
    m = parse_metrics(metrics.read_text())
    label = 'manifest="nightly.yaml"'
    assert m[f'orchestrator_objects{{{label},state="submitted"}}'] == 3
    assert m[f'orchestrator_objects{{{label},state="failed"}}'] == 1
    assert m[f'orchestrator_objects{{{label},state="uncertain"}}'] == 0
    assert m[f'orchestrator_run_planned_objects{{{label},action="submit"}}'] == 4
    assert m[f'orchestrator_run_submissions{{{label},outcome="submitted"}}'] == 3
    assert m[f'orchestrator_run_submissions{{{label},outcome="failed"}}'] == 1
    assert m[f"orchestrator_run_retries{{{label}}}"] == 2
    assert m[f"orchestrator_run_failures{{{label}}}"] == 1
    assert m[f"orchestrator_run_exit_code{{{label}}}"] == 1
    assert m[f"orchestrator_jobs_stalled{{{label}}}"] == 0
    assert 0 < m[f"orchestrator_run_duration_seconds{{{label}}}"] < 60
    assert before <= m[f"orchestrator_run_end_timestamp_seconds{{{label}}}"] <= time.time()
    assert m[f"orchestrator_last_success_timestamp_seconds{{{label}}}"] == 0  # never
    assert os.listdir(metrics.parent) == ["orchestrator.prom"]  # no temp file left behind

    fake_api.refuse_objects = {}
    assert invoke("retry", str(manifest)).exit_code == 0
    second = invoke("run", str(manifest), "--metrics-file", str(metrics))
    assert second.exit_code == 0, second.output
    m = parse_metrics(metrics.read_text())
    assert m[f'orchestrator_run_jobs_finished{{{label},result="completed"}}'] == 3
    assert m[f'orchestrator_objects{{{label},state="completed"}}'] == 3
    assert before <= m[f"orchestrator_last_success_timestamp_seconds{{{label}}}"] <= time.time()
    assert m[f"orchestrator_run_exit_code{{{label}}}"] == 0

    # a run that went well but cannot write its metrics exits 1, so that cron notices
    result = invoke("run", str(manifest), "--metrics-file", str(tmp_path / "missing" / "x.prom"))
    assert result.exit_code == 1
    assert "summary: submitted=0 " in result.stdout and " exit=1 " in result.stdout  # the process's code
    assert "x.prom: cannot write the metrics file (No such file or directory)" in result.stderr


def test_a_job_with_no_progress_is_reported_stalled_not_resubmitted(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    bucket: str,
) -> None:
    put_objects(["embeddings/a.parquet"])
    fake_api.complete_after = 1e9  # stays ImportRunning at readyPercentage 0.5
    manifest = api.validate(write_manifest(settings={"stall_after_s": 3600}))
    t0 = time.time()
    # submitted; seen running at 0.5 (first sight); seen again an hour later, still at 0.5
    reports = [api.run(manifest, clock=lambda at=at: at) for at in (t0, t0 + 60, t0 + 3660)]
    assert [r.stalled for r in reports] == [0, 0, 1]
    assert "jobs_stalled=1" in reports[-1].summary() and reports[-1].exit_code() == 0
    assert len(fake_api.creates()) == 1  # left running, never resubmitted

    out = invoke("status", str(manifest.path)).stdout
    (job,) = fake_api.jobs
    assert re.search(r"^stalled: 1 job whose progress stood still for 1h00m or more", out, re.M)
    assert re.search(rf"^  {job}  progress 0\.5 since .* UTC \(1h00m unchanged\)  s3://{bucket}/embeddings/a\.parquet$",
                     out, re.M)
    assert re.search(r"^s3://\S+\s+articles\s+1\s+1\s+3\s+-\s+\S+$", out, re.M)  # submitted, stalled
    shown = invoke("show", str(manifest.path), f"s3://{bucket}/embeddings/a.parquet").stdout
    assert "STALLED (settings.stall_after_s)" in shown
    assert json.loads(invoke("status", str(manifest.path), "--json").stdout)["stalled"][0]["job_id"] == job


def test_no_progress_bars_without_a_terminal(put_objects: Callable[..., list[str]],
                                             write_manifest: Callable[..., Path]) -> None:
    put_objects([f"embeddings/{i}.parquet" for i in range(3)])
    manifest = write_manifest(settings={"preflight": "off"})  # no schema warning on stderr either
    result = invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # no bars, no escape codes: only the summary line, on stdout
    assert result.stdout.startswith("summary: submitted=3 ")


def test_progress_bars_on_a_terminal(put_objects: Callable[..., list[str]],
                                     write_manifest: Callable[..., Path]) -> None:
    put_objects([f"embeddings/{i}.parquet" for i in range(3)])
    manifest = write_manifest()
    controller, terminal = pty.openpty()
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(controller, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    done = run_cli("run", str(manifest), "--wait", "--poll-interval", "0", stderr=terminal,
                   env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"})
    os.close(terminal)
    reader.join(timeout=10)
    os.close(controller)
    shown = b"".join(chunks).decode(errors="replace")
    assert done.returncode == 0, shown
    assert done.stdout.startswith("summary: submitted=3 ")  # stdout stays clean
    assert "listed and planned" in shown and "submitted" in shown and "waiting for jobs" in shown
    assert "3/3" in shown and "\x1b[" in shown
