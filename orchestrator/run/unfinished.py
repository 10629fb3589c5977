"""The unfinished rows of a source whose ``discovery`` is not ``list`` (events, inventory), planned again by
a run that does not list it whole, as a listing rerun plans them: an object whose job failed on the
server, or was sent back to ``pending`` (a lost reply released, a part of a failed job, a load
withdrawn), after the message that named it was deleted, waits for no backfill. Each is looked up as it
is now (HEAD): a gone object needs nothing, a new version is planned as such.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Set
from itertools import islice

from ..config.globs import judge
from ..config.manifest import SourceConfig
from ..models import LedgerRecord, StoredObject
from ..sources.registry import bucket_and_key
from .discovery import look_up

log = logging.getLogger("orchestrator")
BATCH = 500  # rows looked up (on the source's threads) before their objects are planned


def objects(rows: Iterable[LedgerRecord], source: SourceConfig, head: Callable[[str], StoredObject | None],
            *, planned: Set[str], threads: int, counts: Counter[str]) -> Iterator[StoredObject]:
    """The objects of ``rows`` as they are now, each URL once, leaving out those this run's messages
    planned already (``planned``) and those include/exclude no longer keep; each keeps how its row
    says it was found (``event`` when the row does not say). Counts ``replanned``, ``gone`` and
    ``lookup_errors`` (a row that cannot be looked up waits for the next pass)."""
    seen: set[str] = set()
    found = iter(rows)
    while batch := list(islice(found, BATCH)):
        wanted: dict[str, str] = {}  # key -> how its row was found
        for row in batch:
            if row.url in planned or row.url in seen:
                continue
            seen.add(row.url)
            key = bucket_and_key(row.url)[1]
            if judge(key[len(source.prefix):], source.include, source.exclude).kept:
                wanted[key] = row.found or "event"
        for how, obj in zip(wanted.values(), look_up(head, list(wanted), threads), strict=True):
            if isinstance(obj, StoredObject):
                counts["replanned"] += 1
                yield obj._replace(found=how)
            elif obj is None:
                counts["gone"] += 1
            else:
                counts["lookup_errors"] += 1
                log.warning("%s; its unfinished row waits for the next pass", obj,
                            extra={"event": "lookup-error", "source": source.label})
