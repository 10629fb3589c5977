"""End to end through the CLI, once per HTTP import API: real S3 (moto), a real HTTP fake of each API.

The fakes check the documented request shapes and refuse anything else, so a clean run proves the
shape; these tests add what each API spells differently (object URLs or keys, partitions, databases,
tokens) and the errors that arrive as HTTP 200 with a body code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ACCESS_KEY, HTTP_TARGETS, SECRETS
from tests.fakes.base import FakeImportAPI
from tests.fakes.milvus import FakeMilvus
from tests.fakes.zilliz_v2 import FakeZillizV2
from tests.test_cli_run import invoke, status_json

every_api = pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)


@every_api
def test_clean_run_then_rerun_submits_nothing(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects([f"embeddings/part-{i:02}.parquet" for i in range(6)] + ["embeddings/_SUCCESS"])
    manifest = write_manifest()

    first = invoke("run", str(manifest))
    assert first.exit_code == 0, first.output
    assert "summary: submitted=6 " in first.stdout
    parquet = sorted(u for u in urls if u.endswith(".parquet"))
    assert sorted(fake_api.created_urls()) == parquet
    assert sorted(j.object_url for j in fake_api.jobs.values()) == parquet
    for create in fake_api.creates():
        assert create.headers["Idempotency-Key"].startswith("orch-")
    assert status_json(manifest)["counts"] == {"submitted": 6}

    second = invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    assert second.exit_code == 0, second.output
    assert "summary: submitted=0 " in second.stdout and "jobs_completed=6" in second.stdout
    assert "nothing new to import" in second.stderr
    assert len(fake_api.creates()) == 6
    assert status_json(manifest)["counts"] == {"completed": 6}
    for text in (first.output, second.output, manifest.with_name("nightly.ledger.sqlite").read_bytes()
                 .decode("latin-1")):
        for secret in SECRETS:
            assert secret not in text


@every_api
def test_permanent_body_code_on_http_200_fails_one_object(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    fake_api.refuse_objects = {"b.parquet": (100, "collection not found[collection=articles]")}
    manifest = write_manifest()
    result = invoke("run", str(manifest))
    assert result.exit_code == 1
    assert "failed=1" in result.stdout and "submitted=1" in result.stdout
    objects = {o["url"].rsplit("/", 1)[1]: o for o in status_json(manifest)["objects"]}
    assert objects["b.parquet"]["state"] == "failed"
    assert "code 100: collection not found" in objects["b.parquet"]["error"]
    assert objects["a.parquet"]["state"] == "submitted"


@every_api
def test_failed_job_reason_is_recorded(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    fake_api.fail_objects = {"b.parquet": "field 'vector' type mis-match"}
    manifest = write_manifest()
    result = invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    assert result.exit_code == 1
    assert "jobs_completed=1 jobs_failed=1" in result.stdout
    objects = {o["url"].rsplit("/", 1)[1]: o for o in status_json(manifest)["objects"]}
    assert objects["a.parquet"]["state"] == "completed"
    assert objects["b.parquet"]["state"] == "failed"
    assert "failed: field 'vector' type mis-match" in objects["b.parquet"]["error"]


@every_api
def test_refused_credentials_stop_the_run(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    fake_api.api_key = "another-key"  # the server no longer accepts ours
    manifest = write_manifest()
    result = invoke("run", str(manifest))
    assert result.exit_code == 1
    assert "refused" in result.stderr
    assert fake_api.jobs == {}
    assert set(status_json(manifest)["counts"]) <= {"pending"}  # nothing submitted, nothing lost


@every_api
def test_busy_and_lost_replies_still_make_one_job_each(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects(["embeddings/a.parquet", "embeddings/b.parquet", "embeddings/c.parquet"])
    fake_api.faults = ["busy", "drop", "500", "garbage"]
    manifest = write_manifest(settings={"concurrency": 1, "max_attempts": 6})
    result = invoke("run", str(manifest))
    assert result.exit_code == 0, result.output
    for url in urls:
        assert len(fake_api.jobs_for(url)) == 1, url
    assert status_json(manifest)["counts"] == {"submitted": 3}


@pytest.mark.parametrize("fake_api", ["zilliz-v2", "milvus"], indirect=True)
def test_partition_and_database_reach_the_api(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    bucket: str,
) -> None:
    put_objects(["embeddings/2024/a.parquet"])
    manifest = write_manifest(
        target={"db_name": "analytics"},
        sources=[{"url": f"s3://{bucket}/embeddings/", "collection": "articles", "partition": "y{year}",
                  "pattern": r"(?P<year>\d{4})/"}])
    result = invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    assert result.exit_code == 0, result.output
    (job,) = fake_api.jobs.values()
    assert (job.collection, job.partition, job.db_name) == ("articles", "y2024", "analytics")
    assert job.object_url == f"s3://{bucket}/embeddings/2024/a.parquet"
    body: dict[str, Any] = fake_api.creates()[0].body
    assert body["dbName"] == "analytics"
    if isinstance(fake_api, FakeMilvus):
        assert body["files"] == [["embeddings/2024/a.parquet"]]
        assert fake_api.creates()[0].headers["DB-Name"] == "analytics"


@pytest.mark.parametrize("fake_api", ["zilliz-v2"], indirect=True)
def test_zilliz_v2_spellings_sts_token_and_old_progress_route(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZillizV2,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    monkeypatch.setenv("IMPORT_SESSION_TOKEN", "sts-SESSION-token-do-not-leak")
    fake_api.job_id_key = "jobID"
    fake_api.running_state = "InProgress"
    fake_api.progress_paths = ("get_progress",)  # an older server: describe is a 404
    manifest = write_manifest(settings={"concurrency": 1})
    text = manifest.read_text().replace("secret_key: ${IMPORT_SECRET_KEY}",
                                        "secret_key: ${IMPORT_SECRET_KEY}\n  token: ${IMPORT_SESSION_TOKEN}")
    manifest.write_text(text)
    result = invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    assert result.exit_code == 0, result.output
    assert "jobs_completed=2" in result.stdout
    body = fake_api.creates()[0].body
    assert body["token"] == "sts-SESSION-token-do-not-leak" and body["accessKey"] == ACCESS_KEY
    progress_calls = [r.path.rsplit("/", 1)[1] for r in fake_api.received if "/jobs/import/" in r.path
                      and not r.path.endswith(("create", "list"))]
    assert progress_calls.count("describe") == 1  # tried once, then remembered for the run
    assert "sts-SESSION-token-do-not-leak" not in result.output
