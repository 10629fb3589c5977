"""Errors that concern the whole run are reported once, and stop it, leaving the objects as they were."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator import api
from orchestrator.cli.main import cli
from orchestrator.run.wiring import manifest_ledger
from tests.conftest import free_port
from tests.fakes.base import FakeImportAPI

zilliz = pytest.mark.parametrize("fake_api", ["zilliz-v1", "zilliz-v2"], indirect=True)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("region", ["us-west1", "gcp_us_west1", "GCP-US-WEST1", "gcp"])
def test_validate_checks_the_shape_of_a_zilliz_region(write_manifest: Callable[..., Path],
                                                      region: str) -> None:
    manifest = write_manifest(target={"type": "zilliz-v1", "endpoint": None, "region": region,
                                      "cluster_endpoint": None})
    result = invoke("validate", str(manifest))
    assert result.exit_code == 2 and "target.region" in result.stderr and "gcp-us-west1" in result.stderr


@pytest.mark.parametrize("region", ["gcp-us-west1", "aws-us-east-2", "az-eastus", "ali-cn-hangzhou"])
def test_real_regions_pass(write_manifest: Callable[..., Path], region: str) -> None:
    manifest = write_manifest(target={"type": "zilliz-v1", "endpoint": None, "region": region,
                                      "cluster_endpoint": None})
    assert invoke("validate", str(manifest)).exit_code == 0


@zilliz
def test_an_endpoint_that_cannot_be_reached_stops_the_run_with_one_line(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put_objects([f"embeddings/{i:02}.parquet" for i in range(20)])
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    manifest = write_manifest(target={"endpoint": dead, "cluster_endpoint": None},
                              settings={"concurrency": 2, "max_attempts": 2})
    result = invoke("run", str(manifest))
    assert result.exit_code == 1
    assert result.stderr.count("check target.region or target.endpoint") == 1, result.stderr
    assert result.stderr.count("gave up after") <= 2  # the calls in flight, not one line per object
    left = rows(manifest)
    assert {r.state.value for r in left} == {"pending"} and all(r.failures == 0 for r in left)


@zilliz
def test_credentials_the_service_cannot_read_with_stop_the_run_and_cost_no_failures(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put_objects([f"embeddings/{i:02}.parquet" for i in range(20)])
    fake_api.refuse_objects = {"embeddings/": (83001, "access denied: cannot read the object")}
    manifest = write_manifest(settings={"concurrency": 1})
    result = invoke("run", str(manifest))
    assert result.exit_code == 1
    assert result.stderr.count("check credentials.access_key and credentials.secret_key") == 1
    assert len(fake_api.creates()) == 3  # three refusals told it: the other 17 were never sent
    assert all(r.failures == 0 and r.state.value == "pending" for r in rows(manifest))
    assert ": refused:" not in result.stderr  # no line per object


@zilliz
def test_one_unreadable_object_among_good_ones_is_its_own_failure(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put_objects(["embeddings/a.parquet", "embeddings/b.parquet", "embeddings/c.parquet"])
    fake_api.refuse_objects = {"b.parquet": (83001, "access denied")}
    result = invoke("run", str(write_manifest(settings={"concurrency": 1})))
    assert result.exit_code == 1 and "submitted=2" in result.stdout and "failed=1" in result.stdout


def rows(manifest: Path) -> list[Any]:
    with manifest_ledger(api.validate(manifest)) as ledger:
        return list(ledger.records())
