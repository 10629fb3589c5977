"""Several objects per import job (``settings.objects_per_job``), end to end against the fakes of the APIs
that take them (Zilliz Cloud v2, Milvus REST): grouping, a failed or refused group, lost replies,
kill -9, look-alike names, the pre-flight check and the job window, with groups."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from orchestrator.targets.registry import CAPABILITIES
from tests.conftest import HTTP_TARGETS, parquet_bytes
from tests.fakes.base import FakeImportAPI, OddReply
from tests.test_exactly_once import assert_exactly_once, invoke, kill_runs, no_secrets, rows, run_until_clean
from tests.test_preflight_e2e import ARTICLES, parquet

GROUP_TARGETS = tuple(t for t in HTTP_TARGETS if CAPABILITIES[t].files_per_job > 1)  # zilliz-v2, milvus
pytestmark = pytest.mark.parametrize("fake_api", GROUP_TARGETS, indirect=True)


def names(urls: list[str]) -> list[str]:
    return [u.rsplit("/", 1)[1] for u in urls]


def created(fake: FakeImportAPI) -> list[list[str]]:
    """The objects of every create call received, in order, by file name."""
    return [names(fake.urls_of(r.body)) for r in fake.creates()]


def by_name(manifest: Path) -> dict[str, Any]:
    return {r.url.rsplit("/", 1)[1]: r for r in rows(manifest)}


def test_objects_share_jobs_in_listing_order_and_complete_together(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects([f"embeddings/p{i:02}.parquet" for i in range(23)])
    manifest = write_manifest(settings={"objects_per_job": 10, "concurrency": 2})
    plan = invoke("plan", str(manifest))
    assert plan.exit_code == 0, plan.output
    assert [line.split(":")[0] for line in plan.stdout.splitlines() if line.startswith("job ")] == \
        ["job 1", "job 2", "job 3"]
    assert "job 3: 3 object(s)" in plan.stdout and "3 import job(s) of up to 10 objects" in plan.stderr
    planned = [json.loads(line) for line in invoke("plan", str(manifest), "--json").stdout.splitlines()]
    assert [p["job"] for p in planned] == [1] * 10 + [2] * 10 + [3] * 3

    result = invoke("run", str(manifest))
    assert result.exit_code == 0, result.output
    assert "submitted=23 " in result.stdout
    assert sorted(created(fake_api)) == [names(urls[:10]), names(urls[10:20]), names(urls[20:])]
    assert len(fake_api.all_jobs()) == 3
    invoke("status", str(manifest), "--refresh")
    records = rows(manifest)
    assert {r.state.value for r in records} == {"completed"}
    assert len({r.job_id for r in records}) == 3
    assert {r.imported_rows for r in records} == {3}  # each file's own count, from the job's details
    assert all(fake_api.visible_rows(u) == 3 for u in urls)
    assert_exactly_once(fake_api, manifest, urls)
    status = json.loads(invoke("status", str(manifest), "--json").stdout)
    assert sorted({o["job_objects"] for o in status["objects"]}) == [3, 10]
    shown = invoke("show", str(manifest), urls[21])
    assert "companions  2 other objects in job" in shown.stdout and names(urls)[22] in shown.stdout


def test_a_failed_job_fails_only_the_file_it_names_which_goes_alone(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects([f"embeddings/p{i}.parquet" for i in range(6)])
    fake_api.fail_objects = {"p1.parquet": "the vector column holds nulls"}
    manifest = write_manifest(settings={"objects_per_job": 3, "concurrency": 1})
    assert invoke("run", str(manifest)).exit_code == 0
    invoke("status", str(manifest), "--refresh")
    first = by_name(manifest)
    assert [first[f"p{i}.parquet"].state.value for i in range(6)] == \
        ["pending", "failed", "pending"] + ["completed"] * 3
    # only the file named spends a failure (old code: one failure each, all three failed)
    assert [first[f"p{i}.parquet"].failures for i in range(3)] == [0, 1, 0]
    assert "the vector column holds nulls (file " in (first["p0.parquet"].error or "")
    assert [first[f"p{i}.parquet"].alone for i in range(3)] == [False, True, False]
    assert first["p0.parquet"].part == first["p2.parquet"].part is not None  # sent again together
    status = invoke("status", str(manifest)).stdout
    assert f"(job {first['p1.parquet'].job_id} of 3 objects)" in status

    plan = invoke("plan", str(manifest))
    assert "(alone: the cause of a failed job)" in plan.stdout
    fake_api.fail_objects = {}
    second = invoke("run", str(manifest))
    assert second.exit_code == 0, second.output
    assert created(fake_api)[2:] == [["p0.parquet", "p2.parquet"], ["p1.parquet"]] or \
        created(fake_api)[2:] == [["p1.parquet"], ["p0.parquet", "p2.parquet"]]
    invoke("status", str(manifest), "--refresh")
    assert {r.state.value for r in rows(manifest)} == {"completed"}
    assert_exactly_once(fake_api, manifest, urls)


def test_a_refusal_naming_one_file_fails_the_call_and_holds_only_that_file_alone(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put_objects([f"embeddings/p{i}.parquet" for i in range(3)])
    fake_api.refuse_objects = {"p2.parquet": (1100, "invalid parameter: the file is not parquet")}
    manifest = write_manifest(settings={"objects_per_job": 3})
    first = invoke("run", str(manifest))
    assert first.exit_code == 1 and "failed=3 " in first.stdout
    records = by_name(manifest)
    assert {r.failures for r in records.values()} == {1}
    assert [records[f"p{i}.parquet"].alone for i in range(3)] == [False, False, True]
    second = invoke("run", str(manifest))
    assert second.exit_code == 1 and "submitted=2 " in second.stdout and "failed=1 " in second.stdout
    assert sorted(map(tuple, created(fake_api)[1:])) == [("p0.parquet", "p1.parquet"), ("p2.parquet",)]


@pytest.mark.parametrize("fault", ["drop", "502", "no-id"])
def test_a_lost_reply_adopts_the_job_by_its_whole_file_set(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    fault: str,
) -> None:
    urls = put_objects([f"embeddings/p{i}.parquet" for i in range(6)] + ["embeddings/a b.parquet"])
    fake_api.faults = [fault]
    manifest = write_manifest(settings={"objects_per_job": 3, "concurrency": 1})
    result = invoke("run", str(manifest))
    assert result.exit_code == 0, result.output
    assert "adopted=3 " in result.stdout and "submitted=4 " in result.stdout
    assert len(fake_api.creates()) == 3  # the lost call's job was found: not sent again
    assert_exactly_once(fake_api, manifest, urls)


def test_a_job_naming_part_of_a_call_is_never_adopted(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects([f"embeddings/p{i}.parquet" for i in range(3)])
    manifest = write_manifest(settings={"objects_per_job": 3})
    fake_api.add_job(urls[0], "articles")  # someone else's job, naming one of the call's files
    fake_api.odd_replies = [OddReply(502, b"<html>Bad Gateway</html>")]  # the call's reply is lost
    result = invoke("run", str(manifest))
    assert result.exit_code == 1
    assert {r.state.value for r in rows(manifest)} == {"uncertain"}
    assert len(fake_api.creates()) == 1  # never resubmitted on a guess
    assert "names some of this job's 3 objects but not exactly them" in (rows(manifest)[0].error or "")


def test_an_invalid_file_is_left_out_of_its_group(
    s3: Any, bucket: str, write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    fake_api.collections["articles"] = ARTICLES
    for i in range(4):
        body = parquet(colour=pa.array(["red"] * 3)) if i == 2 else parquet()
        s3.put_object(Bucket=bucket, Key=f"embeddings/p{i}.parquet", Body=body)
    manifest = write_manifest(settings={"objects_per_job": 4})
    result = invoke("run", str(manifest))
    assert result.exit_code == 1 and "submitted=3 " in result.stdout and "invalid=1 " in result.stdout
    assert created(fake_api) == [["p0.parquet", "p1.parquet", "p3.parquet"]]
    assert by_name(manifest)["p2.parquet"].state.value == "invalid"


def test_look_alike_names_never_share_a_job(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects(["embeddings/a b.parquet", "embeddings/a%20b.parquet", "embeddings/c.parquet",
                        "embeddings/x y.parquet", "embeddings/x+y.parquet"])
    fake_api.faults = ["drop", "drop"]
    manifest = write_manifest(settings={"objects_per_job": 5, "concurrency": 1})
    result = invoke("run", str(manifest))
    assert result.exit_code == 0, result.output
    for call in created(fake_api):
        assert not {"a b.parquet", "a%20b.parquet"} <= set(call)
        assert not {"x y.parquet", "x+y.parquet"} <= set(call)
    assert_exactly_once(fake_api, manifest, urls)


def test_the_window_counts_jobs_not_objects(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    put_objects([f"embeddings/p{i:02}.parquet" for i in range(12)])
    fake_api.complete_after = 3600
    first = invoke("run", str(write_manifest(settings={"objects_per_job": 3, "max_jobs_in_flight": 2})))
    assert "submitted=6 " in first.stdout and "queued=6 " in first.stdout
    # two jobs of three still run: a window of four has room for two more, whatever the object count
    second = invoke("run", str(write_manifest(settings={"objects_per_job": 3, "max_jobs_in_flight": 4})))
    assert "submitted=6 " in second.stdout, second.output
    assert len(fake_api.creates()) == 4 and fake_api.unfinished() == 4


def test_kill_9_with_groups_never_duplicates_nor_forgets(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    look_alike = ["a b.parquet", "a%20b.parquet", "x+y.parquet", "x y.parquet"]
    urls = put_objects([f"embeddings/p{i:02}.parquet" for i in range(36)]
                       + [f"embeddings/{k}" for k in look_alike])
    manifest = write_manifest(settings={"concurrency": 2, "objects_per_job": 4})
    fake_api.latency_s = 0.1
    kills = kill_runs(fake_api, manifest, ["in-window", "after-reply"] * 3, random.Random(2027), most=3)
    assert kills >= 4, f"only {kills} runs were killed"
    out, err = run_until_clean(manifest)
    invoke("status", str(manifest), "--refresh")
    assert {r.state.value for r in rows(manifest)} == {"completed"}
    assert_exactly_once(fake_api, manifest, urls)
    no_secrets(out, err)


def test_a_faulty_api_converges_with_groups(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects([f"embeddings/{i:02}.parquet" for i in range(26)]
                       + ["embeddings/a b.parquet", "embeddings/a%20b.parquet", "embeddings/\u00e9.parquet",
                          "embeddings/%C3%A9.parquet"])
    fake_api.fault_rate = {"500": 0.08, "429": 0.05, "busy": 0.05, "drop": 0.1, "503-after": 0.05}
    fake_api.poll_fault_rate = 0.15
    manifest = write_manifest(settings={"concurrency": 3, "max_attempts": 2, "objects_per_job": 4})
    for _ in range(12):
        invoke("run", str(manifest))
        if {r.state.value for r in rows(manifest)} == {"completed"}:
            break
    assert {r.state.value for r in rows(manifest)} == {"completed"}
    assert_exactly_once(fake_api, manifest, urls)


def test_max_job_gb_bounds_the_bytes_of_a_job(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects([f"embeddings/p{i}.parquet" for i in range(5)])
    size = len(parquet_bytes())  # every object's
    manifest = write_manifest(settings={"objects_per_job": 10, "max_job_gb": 2.5 * size / 1024**3})
    planned = [json.loads(line) for line in invoke("plan", str(manifest), "--json").stdout.splitlines()]
    assert [p["job"] for p in planned] == [1, 1, 2, 2, 3]  # two objects fit under 2.5 objects' bytes
    assert invoke("run", str(manifest)).exit_code == 0
    assert sorted(map(len, created(fake_api))) == [1, 2, 2] and len(urls) == 5


def test_run_wait_drains_a_backlog_of_groups_and_counts_objects(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects([f"embeddings/p{i}.parquet" for i in range(7)])
    fake_api.complete_after, fake_api.max_jobs = 0.2, 1  # one job at a time on the server
    manifest = write_manifest(settings={"objects_per_job": 3, "max_jobs_in_flight": 1})
    result = invoke("run", str(manifest), "--wait", "--poll-interval", "0.05")
    assert result.exit_code == 0, result.output
    assert "submitted=7 " in result.stdout and "jobs_completed=7 " in result.stdout
    assert len(fake_api.all_jobs()) == 3 and {r.state.value for r in rows(manifest)} == {"completed"}
    assert_exactly_once(fake_api, manifest, urls)
