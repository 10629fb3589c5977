"""What the sources hold and what a run would do with it, without submitting or writing anything:
``validate``, ``ls``, ``plan``, and ``check`` (the pre-flight check alone)."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..config.manifest import Manifest
from ..errors import ManifestError, SourceError
from ..models import Action, PlanItem
from ..planning import planner
from ..preflight.checks import Inspection, Preflight
from ..run.grouping import batches
from ..run.pipeline import plan_source
from ..run.policy import submit_policy
from ..run.wiring import (
    SourceFactory,
    TargetFactory,
    ledger_exists,
    load_manifest,
    make_http_client,
    make_reader,
    make_target,
    manifest_ledger,
    redacting,
)
from ..sources.base import Listed, judged
from ..sources.registry import make_source
from ..targets.pacing import RateLimiter


def validate(path: str | Path, environ: Mapping[str, str] | None = None) -> Manifest:
    """Load and check a manifest; raises :class:`ManifestError`."""
    return load_manifest(path, environ)


@dataclass(frozen=True, slots=True)
class LsEntry:
    """One listed object, the rule that kept or dropped it, and whether ``min_age_s`` holds it back."""

    source: int
    listed: Listed
    held_back: str | None


@dataclass
class LsReport:
    counts: Counter[str] = field(default_factory=Counter)  # kept, dropped, held back
    source_errors: list[str] = field(default_factory=list)
    source_warnings: list[str] = field(default_factory=list)


def ls(manifest: Manifest, *, source: int | None = None, on_entry: Callable[[LsEntry], None],
       source_factory: SourceFactory = make_source, clock: Callable[[], float] = time.time) -> LsReport:
    """Every object each source's lister sees under its prefix, with the rule that kept or dropped it."""
    if source is not None and not 0 <= source < len(manifest.sources):
        raise ManifestError(str(manifest.path), "--source",
                            f"no source {source}: the manifest has sources 0 to {len(manifest.sources) - 1}")
    report = LsReport()
    now = clock()
    for config in manifest.sources if source is None else [manifest.sources[source]]:
        try:
            for listed in judged(source_factory(config, manifest.settings), config.include, config.exclude,
                                 warn=report.source_warnings.append):
                held = planner.too_new(listed.obj, manifest.settings, now) if listed.verdict.kept else None
                report.counts["held back" if held else "kept" if listed.verdict.kept else "dropped"] += 1
                on_entry(LsEntry(config.index, listed, held))
        except SourceError as exc:
            report.source_errors.append(str(exc))
    return report


@dataclass
class PlanReport:
    """Counts only: the items stream through ``on_item``, so a million objects stay off the heap."""

    totals: Counter[str] = field(default_factory=Counter)
    source_errors: list[str] = field(default_factory=list)
    source_warnings: list[str] = field(default_factory=list)
    jobs: int = 0  # the import jobs the objects to submit make (settings.objects_per_job)


def plan(manifest: Manifest, *, source_factory: SourceFactory = make_source,
         on_item: Callable[[PlanItem], None] | None = None,
         on_job: Callable[[int, list[PlanItem]], None] | None = None,
         clock: Callable[[], float] = time.time) -> PlanReport:
    """List every source and decide, without submitting or writing anything. ``on_item`` sees every
    object not to submit as it is decided; the objects to submit go to ``on_job`` by import job (its
    number, its objects; grouped as ``run`` would group them, before the pre-flight check), or to
    ``on_item`` one by one when ``on_job`` is None."""
    report = PlanReport()
    policy = submit_policy(manifest)
    ledger = manifest_ledger(manifest, read_only=True) if ledger_exists(manifest) else None
    now = clock()

    def counted(items: Iterable[PlanItem]) -> Iterable[PlanItem]:
        for item in items:
            report.totals[item.action.value] += 1
            if item.action in (Action.SUBMIT, Action.RETRY):
                yield item
            elif on_item is not None:
                on_item(item)

    try:
        for source in manifest.sources:
            try:
                lister = source_factory(source, manifest.settings)
                for group in batches(counted(plan_source(source, lister, manifest, ledger, now=now,
                                                         warn=report.source_warnings.append)),
                                     most=policy.settings.objects_per_job, max_bytes=policy.max_job_bytes):
                    report.jobs += 1
                    if on_job is not None:
                        on_job(report.jobs, group)
                    elif on_item is not None:
                        for item in group:
                            on_item(item)
            except SourceError as exc:
                report.source_errors.append(str(exc))
    finally:
        if ledger is not None:
            ledger.close()
    return report


@dataclass
class CheckReport:
    counts: Counter[str] = field(default_factory=Counter)  # ok, invalid, unreadable, not checked
    source_errors: list[str] = field(default_factory=list)


def check(manifest: Manifest, *, deep: bool = False,
          on_result: Callable[[PlanItem, Inspection | None, str | None], None],
          source_factory: SourceFactory = make_source, target_factory: TargetFactory = make_target,
          clock: Callable[[], float] = time.time) -> CheckReport:
    """Only the pre-flight check, on every listed object that has a collection: its footer (and a
    sample of its data) against the collection's schema, ``settings.concurrency`` objects at once.
    Writes nothing; ``on_result`` gets the inspection, or the reason the object could not be read, in
    listing order."""
    report = CheckReport()
    reader = make_reader(manifest, source_factory)
    most = manifest.settings.concurrency
    pending: deque[tuple[PlanItem, Future[Inspection]]] = deque()

    def hand_on(ahead: int) -> None:
        """Results in listing order: each one ready, and the oldest while more than ``ahead`` wait."""
        while pending and (pending[0][1].done() or len(pending) > ahead):
            item, future = pending.popleft()
            try:
                found = future.result()
            except SourceError as exc:
                report.counts["unreadable"] += 1
                on_result(item, None, str(exc))
                continue
            report.counts["invalid" if found.problems else "not checked" if found.unchecked else "ok"] += 1
            on_result(item, found, None)

    with redacting(manifest), \
            make_http_client(manifest, RateLimiter(manifest.settings.requests_per_second)) as client, \
            ThreadPoolExecutor(max_workers=most, thread_name_prefix="preflight") as pool:
        preflight = Preflight(target_factory(manifest, client, reader), manifest, reader, deep=deep)

        def inspect(item: PlanItem) -> None:
            if item.route is not None:
                pending.append((item, pool.submit(preflight.inspect, item)))
                hand_on(2 * most)

        planned = plan(manifest, source_factory=source_factory, on_item=inspect, clock=clock)
        hand_on(0)
    report.source_errors = planned.source_errors
    return report
