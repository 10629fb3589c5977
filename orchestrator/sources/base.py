"""The protocol every lister implements, and the one place include/exclude rules are applied."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from ..config.globs import Verdict, judge
from ..errors import SourceError
from ..models import StoredObject

if TYPE_CHECKING:
    from ..config.manifest import Settings

log = logging.getLogger("orchestrator")

# Bytes ``start`` up to (not including) ``end`` of an object of source number ``source``: how a target
# that performs the import itself (Milvus Lite) reads objects, without knowing what kind of store
# holds them. Raises :class:`orchestrator.errors.SourceError`.
ObjectReader = Callable[[int, StoredObject, int, "int | None"], bytes]


class Source(Protocol):
    """Streams every object under one manifest source's prefix (or folder), in a stable order."""

    label: str

    def list(self) -> Iterator[StoredObject]:
        """Yield each object under the prefix one page at a time, folder markers left out; raise
        :class:`SourceError` naming the source."""
        ...

    def read(self, obj: StoredObject, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``start`` up to (not including) ``end`` of ``obj`` (ranged, never more than asked)."""
        ...


@runtime_checkable
class Lookup(Protocol):
    """A lister that can look one object up (what ``discovery: events`` checks a notice against)."""

    def head(self, key: str) -> StoredObject | None:
        """The object at ``key`` as it is now (``found="event"``), None when there is none; raises
        :class:`SourceError` naming the source."""
        ...


def connections(settings: Settings) -> int:
    """Connections a store's client keeps open: one per thread that may use it at once (the
    listing's streams and the thread reading its level ahead; the pre-flight reads of the submitting
    workers), and 10 at least (what botocore and requests keep). With fewer, urllib3 closes a
    connection after each call beyond them (a new TCP and TLS handshake for the next) and warns
    "Connection pool is full" each time."""
    return max(10, settings.list_concurrency + 1, settings.concurrency)


def log_page(label: str, prefix: str, number: int, entries: Callable[[], int], seconds: float) -> None:
    """One listing page at DEBUG (``-v``): its number, entries and the time the store took to send
    it, what an operator looks at when a listing is slow. The entries are counted only then (a scan
    of the reply on the walk's thread, every page, for a line most runs do not print)."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    count = entries()
    log.debug("%s: listed page %d under %r: %d entries in %.2f s", label, number, prefix, count, seconds,
              extra={"event": "list-page", "source": label, "page": number, "objects": count})


class Listed(NamedTuple):
    """One listed object and the rule that kept or dropped it (a tuple: one per listed object)."""

    obj: StoredObject
    verdict: Verdict


def judged(source: Source, include: Sequence[str], exclude: Sequence[str], *,
           warn: Callable[[str], None]) -> Iterator[Listed]:
    """Every object ``source`` lists, with its verdict. Once the listing ends: an empty prefix is a
    warning; objects of which the rules keep none is a :class:`SourceError` (nothing is yielded kept,
    so nothing of this source has reached the ledger)."""
    listed = kept = 0
    for obj in source.list():
        verdict = judge(obj.relative_key, include, exclude)
        listed += 1
        kept += verdict.kept
        yield Listed(obj, verdict)
    if listed == 0:
        warn(f"{source.label}: no objects under this prefix")
    elif kept == 0:
        raise SourceError(f"{source.label}: none of the {listed} object(s) under this prefix is kept by "
                          "include/exclude (`orchestrator ls` shows the rule that dropped each)")
