"""The milvus-grpc target against a real Milvus 2.3.5 server (``milvus_uri``): real parquet files in a
local folder, bulk-inserted by the server from their absolute paths, row counts read back from the
collection. Crash tests run the orchestrator in a subprocess that dies just after the server made a
task (``tests/crash_grpc.py``), then rerun it and count tasks and rows."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from pymilvus import DataType, MilvusClient

from orchestrator import api
from orchestrator.config.manifest import Manifest
from orchestrator.errors import AmbiguousError, PermanentError
from orchestrator.models import ImportRequest, JobInfo
from orchestrator.sources.base import ObjectReader
from orchestrator.targets.base import Target
from orchestrator.targets.milvus_grpc import MilvusGrpcTarget
from tests.conftest import free_port, run_cli
from tests.crash_grpc import CRASH
from tests.test_cli_run import invoke, status_json
from tests.test_operator_logs import unstamped

ROOT = Path(__file__).resolve().parent.parent
DIM = 4
ROWS = 50


@pytest.fixture
def server(milvus_uri: str) -> Iterator[MilvusClient]:
    client = MilvusClient(milvus_uri)
    yield client
    client.close()


@pytest.fixture
def collection(server: MilvusClient) -> Iterator[str]:
    """A fresh collection (id Int64, vector FloatVector(4)) on the shared server, dropped afterwards."""
    name = f"c_{uuid.uuid4().hex[:12]}"
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    server.create_collection(name, schema=schema)
    yield name
    server.drop_collection(name)


def lake(tmp_path: Path, files: int, *, rows: int = ROWS) -> Path:
    folder = tmp_path / "lake"
    folder.mkdir()
    for n in range(files):
        ids = range(n * rows, (n + 1) * rows)
        pq.write_table(pa.table({
            "id": pa.array(ids, pa.int64()),
            "vector": pa.array([[float(i % 7), 1.0, 0.5, 0.25] for i in ids], pa.list_(pa.float32())),
        }), folder / f"part {n}.parquet")  # a space: local paths travel percent-encoded in the ledger
    return folder


def grpc_manifest(tmp_path: Path, uri: str, folder: Path, collection: str, **settings: Any) -> Path:
    doc = {"version": 1, "target": {"type": "milvus-grpc", "endpoint": uri},
           "sources": [{"url": folder.as_uri(), "collection": collection}],
           "settings": {"min_age_s": 0, "concurrency": 1, **settings}}
    path = tmp_path / "grpc.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def imported(server: MilvusClient, collection: str) -> int:
    """Rows in the collection's persisted segments (num_entities: what bulk insert writes)."""
    return int(server.get_collection_stats(collection)["row_count"])


def tasks_per_file(milvus_uri: str, collection: str) -> Counter[str]:
    """Import tasks the server made into ``collection`` that did not fail, by file."""
    target = MilvusGrpcTarget(milvus_uri)
    return Counter(j.file_name or "" for j in target.list_jobs()
                   if j.collection == collection and j.state.value != "failed")


def crash(manifest: Path, *args: str) -> None:
    done = run_cli(str(manifest), *args, module="tests.crash_grpc")
    assert done.returncode == CRASH, done.stdout + done.stderr


def run_waiting(manifest: Path) -> Any:
    return invoke("run", str(manifest), "--wait", "--poll-interval", "0.2")


def test_a_run_imports_every_file_once_and_a_rerun_imports_nothing(
    tmp_path: Path, milvus_uri: str, server: MilvusClient, collection: str,
) -> None:
    folder = lake(tmp_path, 3)
    manifest = grpc_manifest(tmp_path, milvus_uri, folder, collection, concurrency=2)
    result = run_waiting(manifest)
    assert result.exit_code == 0, result.output
    assert "submitted=3 " in result.stdout and "jobs_completed=3" in result.stdout
    assert imported(server, collection) == 3 * ROWS
    assert status_json(manifest)["counts"] == {"completed": 3}
    again = run_waiting(manifest)
    assert again.exit_code == 0 and "submitted=0 " in again.stdout
    assert imported(server, collection) == 3 * ROWS
    assert set(tasks_per_file(milvus_uri, collection).values()) == {1}


def test_a_run_killed_after_the_server_made_a_task_adopts_it_on_rerun(
    tmp_path: Path, milvus_uri: str, server: MilvusClient, collection: str,
) -> None:
    folder = lake(tmp_path, 3)
    manifest = grpc_manifest(tmp_path, milvus_uri, folder, collection)
    crash(manifest, "2")
    assert status_json(manifest)["counts"] == {"submitted": 1, "submitting": 1}

    result = run_waiting(manifest)
    assert result.exit_code == 0, result.output
    assert "adopted=1 " in result.stdout and "submitted=1 " in result.stdout
    assert imported(server, collection) == 3 * ROWS
    invoke("status", str(manifest), "--refresh")  # --wait waited for this run's jobs, not the first one
    assert status_json(manifest)["counts"] == {"completed": 3}
    files = tasks_per_file(milvus_uri, collection)
    assert len(files) == 3 and set(files.values()) == {1}, files


def test_a_run_killed_before_the_call_is_held_uncertain_then_retried_once(
    tmp_path: Path, milvus_uri: str, server: MilvusClient, collection: str,
) -> None:
    """gRPC replies carry no server time, so the absence of a task proves nothing (the server may have
    forgotten it): the object is held `uncertain` until a person re-arms it (`retry --uncertain
    --force`: without it, retry refuses), never resubmitted blindly."""
    folder = lake(tmp_path, 2)
    manifest = grpc_manifest(tmp_path, milvus_uri, folder, collection)
    crash(manifest, "2", "before")
    assert status_json(manifest)["counts"] == {"submitted": 1, "submitting": 1}
    held = run_waiting(manifest)
    assert held.exit_code == 1 and "submitted=0 " in held.stdout
    settle(milvus_uri, collection)
    invoke("status", str(manifest), "--refresh")
    assert status_json(manifest)["counts"] == {"completed": 1, "uncertain": 1}
    assert sum(tasks_per_file(milvus_uri, collection).values()) == 1
    assert invoke("retry", str(manifest), "--uncertain").exit_code == 1  # the list cannot prove it
    assert invoke("retry", str(manifest), "--uncertain", "--force").exit_code == 0  # the person can
    result = run_waiting(manifest)
    assert result.exit_code == 0 and "submitted=1 " in result.stdout, result.output
    assert imported(server, collection) == 2 * ROWS
    assert set(tasks_per_file(milvus_uri, collection).values()) == {1}


class LosesFirstReply(MilvusGrpcTarget):
    """The first import call reaches the server, which makes the task; its reply is lost."""

    lost = 0

    def create(self, request: ImportRequest) -> str:
        job_id = super().create(request)
        if not self.lost:
            self.lost += 1
            raise AmbiguousError("no reply from the server: DEADLINE_EXCEEDED")
        return job_id


def test_a_lost_reply_is_adopted_not_resubmitted(
    tmp_path: Path, milvus_uri: str, server: MilvusClient, collection: str,
) -> None:
    manifest = api.validate(grpc_manifest(tmp_path, milvus_uri, lake(tmp_path, 2), collection))

    def target(m: Manifest, _client: httpx.Client, _read: ObjectReader) -> Target:
        return LosesFirstReply(m.target.base_url)

    report = api.run(manifest, api.RunOptions(wait=True, poll_interval_s=0.2), target_factory=target)
    assert report.exit_code() == 0
    assert (report.outcomes["adopted"], report.outcomes["submitted"]) == (1, 1)
    assert imported(server, collection) == 2 * ROWS
    assert set(tasks_per_file(milvus_uri, collection).values()) == {1}


class CannotList(MilvusGrpcTarget):
    def list_jobs(self) -> Iterator[JobInfo]:
        raise PermanentError("ListImportTasks: unimplemented")


def test_an_interrupted_call_the_server_cannot_account_for_becomes_uncertain(
    tmp_path: Path, milvus_uri: str, server: MilvusClient, collection: str,
) -> None:
    folder = lake(tmp_path, 1)
    manifest = grpc_manifest(tmp_path, milvus_uri, folder, collection)
    crash(manifest, "1")

    def target(m: Manifest, _client: httpx.Client, _read: ObjectReader) -> Target:
        return CannotList(m.target.base_url)

    report = api.run(api.validate(manifest), target_factory=target)
    assert report.reconciled["uncertain"] == 1 and report.exit_code() == 1
    assert status_json(manifest)["counts"] == {"uncertain": 1}
    assert sum(tasks_per_file(milvus_uri, collection).values()) == 1  # nothing sent twice
    settle(milvus_uri, collection)


def settle(milvus_uri: str, collection: str) -> None:
    """Wait (bounded) for the collection's tasks to end: dropping a collection under a running import
    keeps the server's import worker busy for about 20 s, delaying the next test's tasks."""
    target = MilvusGrpcTarget(milvus_uri)
    deadline = time.monotonic() + 60
    while any(j.collection == collection and j.state.value == "running" for j in target.list_jobs()):
        assert time.monotonic() < deadline, "the server's tasks did not end"
        time.sleep(0.2)


def test_a_task_the_server_fails_is_recorded_with_its_reason(
    tmp_path: Path, milvus_uri: str, collection: str,
) -> None:
    folder = tmp_path / "lake"
    folder.mkdir()
    pq.write_table(pa.table({"id": pa.array([1, 2], pa.int64()),
                             "vector": pa.array([[0.5] * DIM, None], pa.list_(pa.float32()))}),
                   folder / "holes.parquet")
    manifest = grpc_manifest(tmp_path, milvus_uri, folder, collection, preflight="off")
    result = run_waiting(manifest)
    assert result.exit_code == 1 and "jobs_failed=1" in result.stdout
    [obj] = status_json(manifest)["objects"]
    assert obj["state"] == "failed" and "float vector is irregular" in obj["error"]


def test_check_judges_for_the_servers_version_and_run_holds_what_it_would_refuse(
    tmp_path: Path, milvus_uri: str, server: MilvusClient, collection: str,
) -> None:
    folder = lake(tmp_path, 1)
    ints = pa.table({"id": pa.array([900], pa.int64()),
                     "vector": pa.array([[1, 2, 3, 4]], pa.list_(pa.int64()))})
    pq.write_table(ints, folder / "ints.parquet")
    holes = pa.table({"id": pa.array([901], pa.int64()),
                      "vector": pa.array([[0.5, None, 0.5, 0.5]], pa.list_(pa.float32()))})
    pq.write_table(holes, folder / "holes.parquet")  # 2.3 imports the null as 0: a warning, not a problem
    manifest = grpc_manifest(tmp_path, milvus_uri, folder, collection)
    text = invoke("check", str(manifest), "--deep")
    assert "ok        " + (folder / "holes.parquet").as_uri() + " (1 rows)" in text.stdout
    assert "  warning column 'vector' has null elements inside its lists (first bad row 0, in the first " \
           "row group): servers before 2.6 import them as zeros (judging for Milvus 2.3)" in text.stdout
    checked = invoke("check", str(manifest), "--json")
    assert checked.exit_code == 1
    problems = {Path(r["url"]).name: r["problems"] for r in map(json.loads, checked.stdout.splitlines())}
    assert problems["part%200.parquet"] == []
    assert problems["ints.parquet"] == [
        "column 'vector' is list<int64> of unknown length; collection field 'vector' is FloatVector(dim=4): "
        "integer vectors: Milvus before 2.4 refuses it (Milvus 2.3)"]
    result = run_waiting(manifest)
    assert result.exit_code == 1 and "invalid=1" in result.stdout and "submitted=2 " in result.stdout
    assert imported(server, collection) == ROWS + 1


def test_a_server_that_does_not_answer_stops_the_run_with_one_line(tmp_path: Path) -> None:
    folder = lake(tmp_path, 1)
    port = free_port()
    manifest = grpc_manifest(tmp_path, f"http://127.0.0.1:{port}", folder, "articles", timeout_s=1)
    for command in ("run", "check"):
        result = invoke(command, str(manifest))
        assert result.exit_code == 1
        lines = [line for line in unstamped(result.stderr) if "cannot connect to Milvus" in line]
        assert len(lines) == 1 and lines[0].startswith("error: ")  # once (run: "error: stopping: ...")
        assert f"cannot connect to Milvus at http://127.0.0.1:{port}" in lines[0]
        assert "Traceback" not in result.output
    assert status_json(manifest)["counts"] == {}
