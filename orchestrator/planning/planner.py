"""Pure decisions: one listed object + the manifest's rules + the ledger's history -> one action.

No I/O here: the caller lists, looks the history up in the ledger (in batches) and acts.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from ..config.manifest import OnChange, Settings, SourceConfig
from ..config.reader import MILVUS_NAME
from ..ledger.states import CLAIMABLE, HOLDS_JOB
from ..models import Action, LedgerRecord, ObjectState, PastImport, PlanItem, Route, StoredObject


@functools.lru_cache(maxsize=64)
def _fixed_route(collection: str, partition: str | None) -> Route:
    return Route(collection, partition)


def route(obj: StoredObject, source: SourceConfig) -> Route | str:
    """The collection and partition for ``obj``, or the reason it has none."""
    if source.pattern is None:  # one route for the whole source, validated with the manifest
        return _fixed_route(source.collection, source.partition)
    groups: dict[str, str] = {}
    if source.pattern is not None:
        match = source.pattern.match(obj.relative_key)
        if match is None:
            return f"key {obj.relative_key!r} does not match pattern {source.pattern.pattern!r}"
        groups = {k: v for k, v in match.groupdict().items() if v is not None}
    try:
        collection = source.collection.format_map(groups)
        partition = source.partition.format_map(groups) if source.partition is not None else None
    except KeyError as exc:
        return f"pattern group {exc} did not take part in the match"
    if not MILVUS_NAME.match(collection):
        return f"collection {collection!r} is not a valid Milvus name"
    if partition is not None and not MILVUS_NAME.match(partition):
        return f"partition {partition!r} is not a valid Milvus name"
    return Route(collection, partition)


def too_new(obj: StoredObject, settings: Settings, now: float) -> str | None:
    """Why ``obj`` is left for a later run (it may still be being written), or None. ``min_age_s: 0``
    holds nothing back, even when the store's clock is ahead of this machine's."""
    age = now - obj.modified
    if age >= settings.min_age_s or settings.min_age_s <= 0:
        return None
    when = f"{age:.0f}s ago" if age >= 0 else \
        f"{-age:.0f}s in the future (clock skew: this machine's clock is behind the store's)"
    return f"modified {when}, under settings.min_age_s ({settings.min_age_s:g}s): a later run takes it"


def decide(
    obj: StoredObject,
    source: SourceConfig,
    history: Sequence[LedgerRecord | PastImport],
    settings: Settings,
    *,
    now: float | None = None,
    owner: str = "",
) -> PlanItem:
    """Decide what to do with ``obj``; ``history`` holds the ledger's rows for its URL, any version,
    any destination. Only the rows of this destination count: ``owner`` (the target's identity), the
    routed collection and partition. An import into another destination is a new import.

    ``now`` (seconds since the epoch) holds back objects younger than ``settings.min_age_s`` that would
    otherwise be submitted; None leaves age out of the decision.
    """
    item = _decide(obj, source, history, settings, owner)
    if now is not None and item.action in (Action.SUBMIT, Action.RETRY, Action.CHANGED):
        reason = too_new(obj, settings, now)
        if reason is not None:
            return item._replace(action=Action.SKIP, reason=reason)
    return item


def _decide(obj: StoredObject, source: SourceConfig, history: Sequence[LedgerRecord | PastImport],
            settings: Settings, owner: str) -> PlanItem:
    target = route(obj, source)
    if isinstance(target, str):
        return PlanItem(obj, source.index, Action.SKIP, target, None)

    def item(action: Action, reason: str, *, alone: bool = False, part: int | None = None) -> PlanItem:
        return PlanItem(obj, source.index, action, reason, target, alone, part)

    here = [r for r in history if r.target == owner and r.collection == target.collection
            and r.partition == target.partition]
    if not here:
        elsewhere = [r for r in history if r.state in HOLDS_JOB]
        if elsewhere:
            before = elsewhere[-1]
            where = before.collection + (f"/{before.partition}" if before.partition else "")
            moved = f"another target ({before.target})" if before.target != owner else where
            return item(Action.SUBMIT, f"new destination: imported before into {moved}, "
                                       "not into this one")
        return item(Action.SUBMIT, "new object")
    history = here
    current = next((r for r in history if r.version == obj.version), None)
    if current is None:
        imported = [r for r in history if r.state in HOLDS_JOB]
        if not imported:
            return item(Action.SUBMIT, "new object")
        old = imported[-1]
        change = f"{_since(old)} (version {old.version} -> {obj.version})"
        if settings.on_change is OnChange.REIMPORT:
            return item(Action.SUBMIT, f"{change}; settings.on_change is reimport")
        return item(Action.CHANGED, f"{change}; settings.on_change is skip")

    if current.state in CLAIMABLE:  # what the ledger's claim takes (ledger/states.py): submit or retry
        if current.state is ObjectState.FAILED:
            if current.failures < settings.max_job_failures:
                alone = "; the cause of a failed job, it goes in a job of its own" if current.alone else ""
                return item(Action.RETRY, f"failed {current.failures} of {settings.max_job_failures} "
                                          f"allowed times: {current.error}{alone}", alone=current.alone)
            return item(Action.HOLD, f"failed {current.failures} times, the limit: {current.error}; "
                                     "re-arm with `orchestrator retry`")
        last = f" (last try: {current.error})" if current.error else ""
        if current.part is not None:  # a part of a failed job of several (jobs/isolation.py)
            return item(Action.SUBMIT, f"sent again with the rest of part {current.part} of a failed job, no "
                                       f"failure counted{last}", part=current.part)
        return item(Action.SUBMIT, f"not submitted yet{last}", alone=current.alone)
    job = f" (job {current.job_id})" if current.job_id else ""
    match current.state:
        case ObjectState.COMPLETED:
            return item(Action.SKIP, f"already imported{job}")
        case ObjectState.SUBMITTED:
            return item(Action.SKIP, f"import running{job}")
        case ObjectState.SUBMITTING:
            return item(Action.RECONCILE, "a previous run stopped during the create call: "
                                          "look for its job before submitting")
        case ObjectState.UNCERTAIN:
            return item(Action.HOLD, f"a job may exist but the evidence cannot decide yet ({current.error}); "
                                     "each run looks again, and `orchestrator retry --uncertain` looks at "
                                     "the job list and re-arms only what it proves has no job")
        case ObjectState.INVALID:
            return item(Action.HOLD, f"invalid: {current.error}; fix the file (a new version is checked "
                                     "again) or re-arm it with `orchestrator retry`")
    raise AssertionError(current.state)  # pragma: no cover - every state is claimable or matched above


def _since(old: LedgerRecord | PastImport) -> str:
    """How a new version relates to the import of an older one, as far as the ledger knows it."""
    job = f" (job {old.job_id})" if old.job_id else ""
    match old.state:
        case ObjectState.COMPLETED:
            return "changed since it was imported"
        case ObjectState.SUBMITTED:
            return f"changed while the import of an earlier version runs{job}"
        case ObjectState.SUBMITTING:
            return "changed while the import of an earlier version is unresolved (its create call is " \
                   "still `submitting`)"
        case _:
            return f"changed since an import of an earlier version that may have made a job{job} " \
                   "(`uncertain`)"
