"""The planner is pure: object + source rules + ledger history -> action and reason."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from orchestrator.config.globs import judge
from orchestrator.config.manifest import OnChange, Settings, SourceConfig
from orchestrator.models import Action, LedgerRecord, ObjectState, StoredObject
from orchestrator.planning.planner import decide, route

SOURCE = SourceConfig(index=0, url="s3://lake/emb/", scheme="s3", bucket="lake", prefix="emb/",
                      collection="articles", partition=None, pattern=None, include=("**/*.parquet",),
                      exclude=(), endpoint_url=None, region=None, credentials=None)
SETTINGS = Settings()


def obj(rel: str = "a/1.parquet", version: str = "e1") -> StoredObject:
    return StoredObject(url=f"s3://lake/emb/{rel}", bucket="lake", key=f"emb/{rel}", relative_key=rel,
                        size=10, version=version, modified=0.0)


def rec(state: ObjectState, version: str = "e1", failures: int = 0, job: str | None = "j1") -> LedgerRecord:
    return LedgerRecord(url="s3://lake/emb/a/1.parquet", version=version, source=0, collection="articles",
                        partition=None, state=state, job_id=job, attempts=1, failures=failures,
                        error="boom" if state is ObjectState.FAILED else None, size=10, updated_at=0.0)


def test_new_object_is_submitted() -> None:
    item = decide(obj(), SOURCE, [], SETTINGS)
    assert (item.action, item.reason, item.route and item.route.collection) == (
        Action.SUBMIT, "new object", "articles")


@pytest.mark.parametrize(("state", "action", "words"), [
    (ObjectState.COMPLETED, Action.SKIP, "already imported (job j1)"),
    (ObjectState.SUBMITTED, Action.SKIP, "import running (job j1)"),
    (ObjectState.SUBMITTING, Action.RECONCILE, "look for its job"),
    (ObjectState.UNCERTAIN, Action.HOLD, "retry --uncertain"),
    (ObjectState.INVALID, Action.HOLD, "retry"),
    (ObjectState.PENDING, Action.SUBMIT, "not submitted yet"),
])
def test_history_decides(state: ObjectState, action: Action, words: str) -> None:
    item = decide(obj(), SOURCE, [rec(state)], SETTINGS)
    assert item.action is action and words in item.reason


def test_failed_objects_are_retried_until_the_limit() -> None:
    retry = decide(obj(), SOURCE, [rec(ObjectState.FAILED, failures=2)], SETTINGS)
    assert retry.action is Action.RETRY and "failed 2 of 3" in retry.reason and "boom" in retry.reason
    stuck = decide(obj(), SOURCE, [rec(ObjectState.FAILED, failures=3)], SETTINGS)
    assert stuck.action is Action.HOLD and "orchestrator retry" in stuck.reason


def test_changed_object_follows_on_change() -> None:
    history = [rec(ObjectState.COMPLETED, version="old")]
    skipped = decide(obj(version="new"), SOURCE, history, SETTINGS)
    assert skipped.action is Action.CHANGED and "old -> new" in skipped.reason
    again = decide(obj(version="new"), SOURCE, history, replace(SETTINGS, on_change=OnChange.REIMPORT))
    assert again.action is Action.SUBMIT and "reimport" in again.reason
    # a version that never got a job is not an import to protect
    fresh = decide(obj(version="new"), SOURCE, [rec(ObjectState.PENDING, version="old")], SETTINGS)
    assert fresh.action is Action.SUBMIT


def test_pattern_templates_collection_and_partition() -> None:
    source = replace(SOURCE, pattern=re.compile(r"(?P<coll>[a-z]+)/(?P<day>\d+)/"),
                     collection="{coll}", partition="d{day}")
    r = route(obj("news/20240101/x.parquet"), source)
    assert not isinstance(r, str) and (r.collection, r.partition) == ("news", "d20240101")
    assert "does not match pattern" in str(route(obj("news/x.parquet"), source))
    assert "not a valid Milvus name" in str(route(obj("9bad/1/x.parquet"), replace(
        source, pattern=re.compile(r"(?P<coll>\w+)/(?P<day>\d+)/"))))


@pytest.mark.parametrize(("key", "kept", "rule"), [
    ("a.parquet", True, "include '**/*.parquet'"),
    ("x/y/a.parquet", True, "include '**/*.parquet'"),
    ("x/a.csv", False, "no include matched"),
    ("tmp/a.parquet", False, "exclude 'tmp/**'"),
    ("x/tmp/a.parquet", True, "include '**/*.parquet'"),
])
def test_globs(key: str, kept: bool, rule: str) -> None:
    verdict = judge(key, ("**/*.parquet",), ("tmp/**",))
    assert (verdict.kept, verdict.rule) == (kept, rule)


def test_star_stays_in_one_segment() -> None:
    assert judge("a.parquet", ("*.parquet",), ()).kept
    assert not judge("x/a.parquet", ("*.parquet",), ()).kept
