"""Replies that may have made a job, through the whole run: a 5xx after the job was made, a success
without a usable job id. Each is looked up, never resubmitted blindly (every HTTP import API's fake)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import HTTP_TARGETS
from tests.fakes.base import FakeImportAPI
from tests.test_exactly_once import assert_exactly_once, invoke, rows

pytestmark = pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)


@pytest.mark.parametrize("fault", ["502", "503-after", "504", "no-id", "bad-id"])
def test_a_reply_that_may_have_made_a_job_is_looked_up(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    fault: str,
) -> None:
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(3)])
    fake_api.faults, fake_api.bad_id = [fault], "job\n1"
    manifest = write_manifest(settings={"concurrency": 1})
    result = invoke("run", str(manifest))
    assert result.exit_code == 0, result.output
    assert "adopted=1" in result.stdout and "submitted=2" in result.stdout
    assert_exactly_once(fake_api, manifest, urls)


def test_a_lagging_list_is_never_read_as_no_job(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(4)])
    fake_api.list_lag_s, fake_api.faults = 2.0, ["drop", "drop"]  # a new job shows in the list after 2 s
    manifest = write_manifest(settings={"concurrency": 1, "job_list_lag_s": 3})
    result = invoke("run", str(manifest))  # looked up at once: not listed yet; looked at again at the end
    assert result.exit_code == 0, result.output
    assert "adopted=2" in result.stdout and "submitted=2" in result.stdout
    assert_exactly_once(fake_api, manifest, urls)


def test_one_job_id_for_two_objects_is_not_recorded_twice(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put_objects([f"embeddings/{i}.parquet" for i in range(2)])
    fake_api.faults = ["none", "dup-id"]
    manifest = write_manifest(settings={"concurrency": 1})
    invoke("run", str(manifest))
    records = rows(manifest)
    job_ids = [r.job_id for r in records if r.job_id is not None]
    assert len(job_ids) == len(set(job_ids))
    assert sorted(r.state.value for r in records) == ["submitted", "uncertain"]
