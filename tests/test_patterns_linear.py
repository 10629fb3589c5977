"""Patterns and globs run in time linear in the key (RE2): a key chosen to make a backtracking engine
spin for hours is judged in microseconds, so `plan` and `run` end and a signal is handled at once;
what RE2 cannot run is refused by `validate`, naming the place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.fakes.base import FakeImportAPI

DEADLINE_S = 60.0  # the old code spun at 100% CPU on these keys for far longer
EVIL = "a" * 40 + "!"  # (a+)+$ tries 2**40 ways to split it before it fails


def source(bucket: str, **more: Any) -> dict[str, Any]:
    return {"url": f"s3://{bucket}/embeddings/", "collection": "{c}", "include": ["**"], **more}


def test_a_backtracking_pattern_against_a_hostile_key_ends_at_once(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    bucket: str,
) -> None:
    put_objects([f"embeddings/{EVIL}", "embeddings/aaaa"])
    manifest = write_manifest(sources=[source(bucket, pattern="(?P<c>(a+)+)$")])
    plan = run_cli("plan", str(manifest), deadline_s=DEADLINE_S)
    assert plan.returncode == 0, plan.stderr
    assert f"key '{EVIL}' does not match pattern" in plan.stdout
    assert "-> aaaa" in plan.stdout
    run = run_cli("run", str(manifest), deadline_s=DEADLINE_S)
    assert "submitted=1 " in run.stdout, run.stderr
    assert [j.collection for j in fake_api.jobs.values()] == ["aaaa"]


def test_a_glob_that_would_backtrack_ends_at_once(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], bucket: str,
) -> None:
    put_objects(["embeddings/" + "a" * 300 + ".csv", "embeddings/abababab.parquet"])
    manifest = write_manifest(sources=[{"url": f"s3://{bucket}/embeddings/", "collection": "articles",
                                        "include": ["*a*a*a*a*a*a*a*.parquet", "*b*b*b*b*.parquet"]}])
    done = run_cli("ls", str(manifest), deadline_s=DEADLINE_S)
    assert done.returncode == 0, done.stderr
    assert "kept     s3://" in done.stdout and "dropped  s3://" in done.stdout
    assert "ls: 1 dropped, 1 kept" in done.stderr


@pytest.mark.parametrize(("pattern", "why"), [
    ("(?P<c>[a-z]+)(?=/)", "invalid perl operator: (?="),
    ("(?P<c>[a-z]+)/(?P=c)", "invalid perl operator: (?P"),
    ("(?P<c>[a-z+", "unexpected end of regular expression"),
])
def test_a_pattern_re2_cannot_run_is_refused_by_validate(
    write_manifest: Callable[..., Path], bucket: str, pattern: str, why: str,
) -> None:
    done = run_cli("validate", str(write_manifest(sources=[source(bucket, pattern=pattern)])))
    assert done.returncode == 2 and done.stdout == ""
    assert "nightly.yaml: sources[0].pattern: not a valid regular expression for RE2" in done.stderr
    assert why in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
