"""settings.min_age_s: the planner holds back objects that may still be being written; `now` is passed in."""

from __future__ import annotations

from orchestrator.config.manifest import Settings, SourceConfig
from orchestrator.models import Action, LedgerRecord, ObjectState, StoredObject
from orchestrator.planning.planner import decide, too_new

SOURCE = SourceConfig(index=0, url="gs://lake/emb/", scheme="gs", bucket="lake", prefix="emb/",
                      collection="articles", partition=None, pattern=None, include=("**/*.parquet",),
                      exclude=(), endpoint_url=None, region=None, credentials=None)
SETTINGS = Settings(min_age_s=60)
NOW = 1_800_000_000.0


def obj(age: float, version: str = "17") -> StoredObject:
    return StoredObject(url="gs://lake/emb/a.parquet", bucket="lake", key="emb/a.parquet",
                        relative_key="a.parquet", size=10, version=version, modified=NOW - age)


def test_young_objects_wait_with_a_reason() -> None:
    item = decide(obj(age=12), SOURCE, [], SETTINGS, now=NOW)
    assert item.action is Action.SKIP and item.route is not None
    assert item.reason == "modified 12s ago, under settings.min_age_s (60s): a later run takes it"
    assert decide(obj(age=60), SOURCE, [], SETTINGS, now=NOW).action is Action.SUBMIT
    assert decide(obj(age=12), SOURCE, [], Settings(min_age_s=0), now=NOW).action is Action.SUBMIT


def test_age_only_holds_back_what_would_be_sent() -> None:
    done = LedgerRecord(url="gs://lake/emb/a.parquet", version="17", source=0, collection="articles",
                        partition=None, state=ObjectState.COMPLETED, job_id="j1", attempts=1, failures=0,
                        error=None, size=10, updated_at=0.0)
    assert decide(obj(age=1), SOURCE, [done], SETTINGS, now=NOW).reason == "already imported (job j1)"
    rewritten = decide(obj(age=1, version="18"), SOURCE, [done], SETTINGS, now=NOW)
    assert rewritten.action is Action.SKIP and rewritten.reason.startswith("modified 1s ago")


def test_clock_skew_is_named_not_shown_as_a_negative_age() -> None:
    assert too_new(obj(age=-5), SETTINGS, NOW) == (
        "modified 5s in the future (clock skew: this machine's clock is behind the store's), "
        "under settings.min_age_s (60s): a later run takes it")
    assert too_new(obj(age=61), SETTINGS, NOW) is None
    # min_age_s: 0 holds nothing back, whatever the clocks say (it said "modified 0s ago, under 0s")
    assert too_new(obj(age=-5), Settings(min_age_s=0), NOW) is None
