"""How a run takes each source's objects to the planner and the submitter, by its ``discovery``:
its listing (``list``); its queue's notifications, in rounds (``events``: until the queue is empty, or
with ``run --follow`` until the run stops); its inventory (``inventory``); and, for the last two, a full
listing as a safety net when the last one is older than ``backfill_every`` (the ledger keeps when each
source was last listed whole, and deduplicates whatever two ways find). A run that does not list such a
source whole also plans its unfinished rows again (:mod:`orchestrator.run.unfinished`)."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from ..config import discovery as modes
from ..config.globs import judge
from ..config.manifest import Manifest, SourceConfig
from ..errors import SourceError
from ..ledger.store import Ledger
from ..models import Outcome, PlanItem, StoredObject
from ..planning import planner
from ..sources.base import Lookup, Source, judged
from ..sources.notices import EventQueue
from ..sources.registry import make_inventory, make_queue, source_key
from ..targets.registry import target_identity
from . import discovery, unfinished
from .state import RunReport

log = logging.getLogger("orchestrator")
BATCH = 500
CRON_WAIT_S = 1.0  # a cron run's last receive: a short long poll that finds the queue empty
SETTLED_KEPT = 100_000  # keys of settled objects a run remembers per events source (a few MB)


def plan_objects(objects: Iterable[StoredObject], source: SourceConfig, manifest: Manifest,
                 ledger: Ledger | None, *, now: float | None) -> Iterator[PlanItem]:
    """Stream the plan of ``objects``: their history looked up in batches, each decided. ``now`` None:
    no object is held back by ``settings.min_age_s`` (an event says the write is complete)."""
    owner = target_identity(manifest.target)
    found = iter(objects)
    while batch := list(islice(found, BATCH)):
        history = ledger.past_imports([o.url for o in batch]) if ledger is not None else {}
        for obj in batch:
            yield planner.decide(obj, source, history.get(obj.url, ()), manifest.settings, now=now,
                                 owner=owner)


def listed(source: SourceConfig, lister: Source, *, warn: Callable[[str], None]) -> Iterator[StoredObject]:
    """What ``lister`` lists that include/exclude keep."""
    return (e.obj for e in judged(lister, source.include, source.exclude, warn=warn) if e.verdict.kept)


@dataclass
class Sourcing:
    """One run's way from its sources to its submitter. ``submit`` takes a plan and returns once
    every item's outcome is recorded (``on_outcome`` then sees each)."""

    manifest: Manifest
    ledger: Ledger
    report: RunReport
    stop: threading.Event
    clock: Callable[[], float]
    submit: Callable[[Iterator[PlanItem], Callable[[PlanItem, Outcome], None]], None]
    queue_factory: Callable[..., EventQueue] = make_queue
    queues: dict[int, EventQueue] = field(default_factory=dict)  # each events source's, made once
    listed: set[int] = field(default_factory=set)  # the list sources this run has listed
    # each events source's objects settled by this run, key -> version: a duplicate delivery of the
    # same version needs no HEAD (bounded: forgotten past SETTLED_KEPT keys)
    settled: dict[int, dict[str, str]] = field(default_factory=dict)
    # each source's last pass over its unfinished rows: when it began
    replanned: dict[int, float] = field(default_factory=dict)

    def take(self, source: SourceConfig, lister: Source, *, follow: bool) -> None:
        """This source's objects, once (``follow``: one round of its queue, waiting for messages)."""
        if source.discovery == modes.LIST:
            if source.index not in self.listed:  # listed once a run, even when following
                self.listed.add(source.index)
                self._list(source, lister)
            return
        whole = source.discovery == modes.INVENTORY and self._inventory(source)
        if self._backfill_due(source):
            started = self.clock()
            log.info("%s: backfill: listing it whole (the last full listing is older than backfill_every)",
                     source.label, extra={"event": "backfill", "source": source.label})
            self._list(source, lister)
            if not self.stop.is_set():
                self.ledger.note_listed(source_key(source), started)
            whole = True
        planned = self._events(source, lister, follow=follow) if source.queue is not None else set()
        if not whole:
            self._unfinished(source, lister, planned)

    def _list(self, source: SourceConfig, lister: Source) -> None:
        objects = listed(source, lister, warn=self.report.source_warnings.append)
        self.submit(plan_objects(objects, source, self.manifest, self.ledger, now=self.clock()), _nothing)

    def _backfill_due(self, source: SourceConfig) -> bool:
        """Never listed whole (what came before the notifications is found then), or not for
        ``backfill_every``; never with ``backfill_every: 0``."""
        every = source.backfill_every_s
        last = self.ledger.last_listed(source_key(source))
        return every > 0 and (last is None or self.clock() - last >= every)

    def _inventory(self, source: SourceConfig) -> bool:
        """The newest inventory, when newer than the last full view of the source; then it is one
        (True)."""
        inventory = make_inventory(source, self.manifest.settings)
        last = self.ledger.last_listed(source_key(source))
        if last is not None and inventory.created <= last:
            log.info("%s: not read: no newer than the source's last full view", inventory.label,
                     extra={"event": "inventory-seen", "source": source.label})
            return False
        kept = (o for o in inventory.objects() if o.key.startswith(source.prefix)
                and judge(o.relative_key, source.include, source.exclude).kept)
        self.submit(plan_objects(kept, source, self.manifest, self.ledger, now=self.clock()), _nothing)
        if not self.stop.is_set():
            self.ledger.note_listed(source_key(source), inventory.created)
        return True

    def _unfinished(self, source: SourceConfig, lister: Source, planned: set[str]) -> None:
        """The source's unfinished rows planned again, but those of ``planned`` (what this call's
        messages planned): the first time, then (``run --follow``) each round in which one of them
        changed since the last pass began (a job failed, or was sent back). A store that cannot look
        an object up leaves them to the backfill."""
        if not isinstance(lister, Lookup) or self.stop.is_set():
            return
        key, most = source_key(source), self.manifest.settings.max_job_failures
        last = self.replanned.get(source.index)
        if last is not None and next(self.ledger.unfinished(key, most, since=last), None) is None:
            return
        self.replanned[source.index] = self.clock()
        counts: Counter[str] = Counter()
        found = unfinished.objects(self.ledger.unfinished(key, most), source, lister.head, planned=planned,
                                   threads=self.manifest.settings.list_concurrency, counts=counts)
        self.submit(plan_objects(found, source, self.manifest, self.ledger, now=None), _nothing)
        log.info("%s: %d unfinished object(s) planned again (%d gone, %d not looked up)", source.label,
                 counts["replanned"], counts["gone"], counts["lookup_errors"],
                 extra={"event": "unfinished", "source": source.label, "objects": counts["replanned"]})

    def _events(self, source: SourceConfig, lister: Source, *, follow: bool) -> set[str]:
        """Rounds of the source's queue: until one finds it empty, or (``follow``) one long poll's.
        Returns the URLs of the objects they planned."""
        if not isinstance(lister, Lookup):
            raise SourceError(f"{source.label}: its store cannot look an object up: use discovery: list")
        queue = self.queues.get(source.index) or self.queue_factory(source, self.manifest.settings)
        self.queues[source.index] = queue
        settings = self.manifest.settings
        wait_s = settings.queue_wait_s if follow else CRON_WAIT_S
        counts = self.report.messages
        seen: set[str] = set()
        planned: set[str] = set()
        started = self.clock()
        while not self.stop.is_set():
            messages = discovery.receive(queue, most=discovery.ROUND_MESSAGES, wait_s=wait_s, stop=self.stop)
            if not messages or (not follow and all(m.id in seen for m in messages)):
                break  # empty; or (cron) only what this run left there came back: a later run's
            if not follow:
                seen.update(m.id for m in messages)
            counts["received"] += len(messages)
            known = self.settled.setdefault(source.index, {})
            found = discovery.gather(queue, messages, source, lister.head, threads=settings.list_concurrency,
                                     counts=counts, settled=known)
            planned.update(obj.url for obj in found.objects)
            settled = discovery.Settled()
            self.submit(settled.planned(plan_objects(found.objects, source, self.manifest, self.ledger,
                                                     now=None)), settled.outcome)
            if len(known) > SETTLED_KEPT:
                known.clear()
            known.update((obj.key, obj.version) for obj in found.objects if settled.has(obj.url))
            done = settled.deletable(found.waits)
            if done:
                queue.delete(done)
            counts["deleted"] += len(done)
            counts["kept"] += len(messages) - len(done)
            log.info("%s: %d message(s), %d object(s) found, %d message(s) deleted", queue.label,
                     len(messages), len(found.objects), len(done),
                     extra={"event": "messages", "queue": queue.label, "messages": len(messages),
                            "objects": len(found.objects), "deleted": len(done)})
            if follow:
                break
            if self.clock() - started >= settings.queue_drain_s:
                log.info("%s: read for settings.queue_drain_s (%g s): what the queue holds now is the next "
                         "run's", queue.label, settings.queue_drain_s,
                         extra={"event": "queue-drain-ended", "queue": queue.label})
                break
        return planned


def _nothing(_item: PlanItem, _outcome: Outcome) -> None:
    return None
