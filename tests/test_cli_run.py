"""End to end through the CLI: real S3 (moto server), a real HTTP fake of the Zilliz v1 API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from orchestrator.cli.main import cli
from tests.conftest import ACCESS_KEY, SECRET_KEY, SECRETS
from tests.fakes.zilliz import FakeZilliz


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def status_json(manifest: Path) -> dict[str, Any]:
    result = invoke("status", str(manifest), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_clean_run_then_rerun_submits_nothing(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    bucket: str,
) -> None:
    urls = put_objects([f"embeddings/part-{i:03}.parquet" for i in range(12)]
                       + ["embeddings/_SUCCESS", "embeddings/nested/deep.parquet", "other/x.parquet"])
    manifest = write_manifest()

    first = invoke("run", str(manifest))
    assert first.exit_code == 0, first.output
    assert "summary: submitted=13 " in first.stdout
    expected = sorted(u for u in urls if u.endswith(".parquet") and "/embeddings/" in u)
    creates = fake_api.creates()
    assert sorted(c.body["objectUrl"] for c in creates) == expected
    for c in creates:
        assert c.body == {"clusterId": fake_api.cluster_id, "collectionName": "articles",
                          "objectUrl": c.body["objectUrl"], "accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}
        assert c.headers["Idempotency-Key"].startswith("orch-")

    status = status_json(manifest)
    assert status["counts"] == {"submitted": 13}
    by_url = {o["url"]: o for o in status["objects"]}
    assert sorted(by_url) == expected
    jobs = {j.object_url: j.job_id for j in fake_api.jobs.values()}
    for url, obj in by_url.items():
        assert obj["job_id"] == jobs[url]
        assert obj["attempts"] == 1 and obj["collection"] == "articles" and obj["error"] is None
        assert obj["etag"]

    second = invoke("run", str(manifest))
    assert second.exit_code == 0, second.output
    assert "summary: submitted=0 " in second.stdout
    assert "jobs_completed=13" in second.stdout  # the rerun refreshed the jobs it knew
    assert len(fake_api.creates()) == 13
    assert status_json(manifest)["counts"] == {"completed": 13}
    third = invoke("run", str(manifest))
    assert "summary: submitted=0 " in third.stdout and "skipped=13" in third.stdout
    for text in (first.output, second.output, third.output, manifest.with_name(
            "nightly.ledger.sqlite").read_bytes().decode("latin-1")):
        for secret in SECRETS:
            assert secret not in text


def test_pattern_routes_to_two_collections(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    bucket: str,
) -> None:
    put_objects(["embeddings/articles/1.parquet", "embeddings/articles/2.parquet",
                 "embeddings/authors/1.parquet", "embeddings/Bad-Name/1.parquet", "embeddings/loose.parquet"])
    manifest = write_manifest(sources=[{
        "url": f"s3://{bucket}/embeddings", "collection": "{coll}", "pattern": r"(?P<coll>[A-Za-z_-]+)/"}])

    plan = invoke("plan", str(manifest), "--json")
    assert plan.exit_code == 0, plan.output
    items = {i["url"].split("/embeddings/")[1]: i for i in map(json.loads, plan.stdout.splitlines())}
    assert items["articles/1.parquet"]["collection"] == "articles"
    assert items["authors/1.parquet"]["action"] == "submit"
    assert items["Bad-Name/1.parquet"]["action"] == "skip"
    assert "not a valid Milvus name" in items["Bad-Name/1.parquet"]["reason"]
    assert "does not match pattern" in items["loose.parquet"]["reason"]
    assert fake_api.creates() == []  # plan submits nothing

    result = invoke("run", str(manifest))
    assert result.exit_code == 0, result.output
    routed = sorted((c.body["collectionName"], c.body["objectUrl"].split("/embeddings/")[1])
                    for c in fake_api.creates())
    assert routed == [("articles", "articles/1.parquet"), ("articles", "articles/2.parquet"),
                      ("authors", "authors/1.parquet")]


def test_http_200_with_error_code_is_a_failure(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest(target={"cluster_id": "inxx-does-not-exist"})
    result = invoke("run", str(manifest))
    assert result.exit_code == 1
    assert "code 80020" in result.stderr and "target.cluster_id" in result.stderr
    assert fake_api.jobs == {}
    assert status_json(manifest)["counts"] == {"pending": 1}


def test_permanent_body_code_is_recorded_per_object(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    manifest = write_manifest()
    fake_api.success_code = 0  # the docs also show code 0 as success
    fake_api.refuse_objects = {"b.parquet": (90001, "collection not found: articles")}
    result = invoke("run", str(manifest))
    assert result.exit_code == 1
    assert "failed=1" in result.stdout and "submitted=1" in result.stdout
    objects = {o["url"].rsplit("/", 1)[1]: o for o in status_json(manifest)["objects"]}
    assert objects["b.parquet"]["state"] == "failed"
    assert "code 90001: collection not found" in objects["b.parquet"]["error"]
    assert objects["a.parquet"]["state"] == "submitted"


def test_overlapping_sources_import_each_object_once(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    bucket: str,
) -> None:
    urls = put_objects(["embeddings/a/1.parquet", "embeddings/a/2.parquet", "embeddings/b/1.parquet"])
    manifest = write_manifest(sources=[
        {"url": f"s3://{bucket}/embeddings/", "collection": "articles"},
        {"url": f"s3://{bucket}/embeddings/a/", "collection": "articles"},
    ])
    result = invoke("run", str(manifest))
    assert result.exit_code == 0, result.output
    assert sorted(c.body["objectUrl"] for c in fake_api.creates()) == sorted(urls)
