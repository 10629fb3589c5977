"""Listing a prefix with many sub-prefixes on a bounded pool of threads, in the order one stream gives.

A store lister provides two calls: ``level(prefix)``, one delimited listing (the objects directly under
``prefix`` and its sub-prefixes, merged in key order), and ``walk(prefix, start, end)``, every object
under ``prefix`` from key ``start`` up to (not including) key ``end``, as one stream of pages. A walk
only fetches: each page is a :class:`Lazy`, read (parsed, objects made) when the consumer iterates
it, so that the CPU work stays on the consumer's thread and the walks' threads only wait for the
network (with the GIL, threads that parse slow the planner down more than they help).

:func:`fan_out` walks runs of consecutive sub-prefixes as key ranges, ``concurrency`` at a time, each
into a bounded buffer of pages, and yields in key order: the same objects, in the same order, as
``walk(prefix, "", None)`` alone. Runs grow from one sub-prefix to as many as fit in about ``ahead``
pages (learnt from the walks done): a range's last page is seldom full, and a page saved is a round
trip saved. Memory stays bounded by ``concurrency * ahead`` pages however large the listing.
:func:`read_ahead` lets one stream fetch its next page while the consumer reads this one.
"""

from __future__ import annotations

import heapq
import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Generic, TypeVar

from ..models import StoredObject

Entry = StoredObject | str  # an object, or a sub-prefix (ending in "/") still to be walked
T = TypeVar("T")
_DONE = object()
AHEAD = 16  # pages a run's walk may hold before the consumer reaches it


class Lazy:
    """One page of a listing, read when iterated: ``read()`` makes its objects (in key order), of which
    those from ``start`` up to (not including) ``end`` are kept."""

    __slots__ = ("_end", "_read", "_start")

    def __init__(self, read: Callable[[], list[StoredObject]], start: str = "", end: str | None = None,
                 ) -> None:
        self._read = read
        self._start = start
        self._end = end

    def __iter__(self) -> Iterator[StoredObject]:
        objects = self._read()
        if objects and objects[0].key < self._start:
            objects = [o for o in objects if o.key >= self._start]
        end = self._end
        if end is not None and objects and objects[-1].key >= end:
            objects = [o for o in objects if o.key < end]
        return iter(objects)


Pages = Iterator[Lazy]
Walk = Callable[[str, str, str | None], Pages]  # (prefix, start, end): pages of start <= key < end


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _Feed(Generic[T]):
    """Items made on another thread (``run``) into a bounded queue, read in order by ``drain``."""

    def __init__(self, make: Callable[[], Iterator[T]], depth: int, cancel: threading.Event) -> None:
        self._make = make
        self._cancel = cancel
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self.count = 0  # items drained

    def run(self) -> None:
        try:
            for item in self._make():
                if not self._put(item):
                    return
            self._put(_DONE)
        except Exception as exc:  # handed to the consumer, which raises it in its own thread
            self._put(_Failed(exc))

    def _put(self, item: object) -> bool:
        while not self._cancel.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def drain(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            self.count += 1
            yield item  # type: ignore[misc]  # what run() put: a T


def read_ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """``items``, made on a thread of their own up to ``depth`` ahead of the consumer: the next page is
    on its way while this one is parsed. Closing the iterator stops the thread after its current item."""
    cancel = threading.Event()
    feed = _Feed(lambda: items, depth, cancel)
    threading.Thread(target=feed.run, name="list-ahead", daemon=True).start()
    try:
        yield from feed.drain()
    finally:
        cancel.set()


def fan_out(prefix: str, *, level: Callable[[str], Iterator[Entry]], walk: Walk, concurrency: int,
            buffer: int = 1000, ahead: int = AHEAD) -> Iterator[StoredObject]:
    """Every object under ``prefix`` in key order, runs of sub-prefixes walked ``concurrency`` at a
    time, each at most ``ahead`` pages ahead of the consumer (and at most ``buffer`` objects of the
    level held).

    A level holding a single sub-prefix and nothing else is descended into, so that
    ``data/year=2024/month=*/`` fans out over the months.
    """
    entries = level(prefix)
    first = next(entries, None)
    while isinstance(first, str):
        second = next(entries, None)
        if second is not None:
            entries = _chain(first, second, entries)
            break
        prefix = first  # the only thing here is one sub-prefix: look one level down
        entries = level(prefix)
        first = next(entries, None)
    else:
        if first is None:
            return
        entries = _chain(first, None, entries)

    cancel = threading.Event()
    window: deque[StoredObject | _Run] = deque()
    run: list[str] = []  # consecutive sub-prefixes not yet walked
    sizes = _Sizes(ahead)
    walks = 0
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="list") as pool:

        def start(end: str | None) -> None:
            task = _Run(_Feed(partial(walk, prefix, run[0], end), ahead, cancel), len(run))
            pool.submit(task.feed.run)
            window.append(task)
            run.clear()

        try:
            for entry in entries:
                if run and (not isinstance(entry, str) or len(run) >= sizes.run()):
                    start(_key(entry))
                    walks += 1
                if isinstance(entry, str):
                    run.append(entry)
                else:
                    window.append(entry)
                while walks >= concurrency or len(window) > buffer:
                    walks -= yield from _emit(window.popleft(), sizes)
            if run:
                start(None)
            while window:
                yield from _emit(window.popleft(), sizes)
        finally:
            cancel.set()


class _Run:
    """A run of consecutive sub-prefixes, walked as one key range."""

    def __init__(self, feed: _Feed[Lazy], prefixes: int) -> None:
        self.feed = feed
        self.prefixes = prefixes


class _Sizes:
    """How many sub-prefixes the next run takes: one until a walk has finished, then as many as fit
    in about three quarters of ``ahead`` pages, at the pages per sub-prefix seen so far."""

    def __init__(self, ahead: int) -> None:
        self.target = max(1, ahead * 3 // 4)
        self.pages = 0
        self.prefixes = 0

    def done(self, run: _Run) -> None:
        self.pages += run.feed.count
        self.prefixes += run.prefixes

    def run(self) -> int:
        if self.pages == 0:
            return 1
        return max(1, self.target * self.prefixes // self.pages)


def merge_pages(pages: Iterable[tuple[Iterable[StoredObject], Iterable[str]]]) -> Iterator[Entry]:
    """One delimited listing as entries in key order, from pages of (objects, sub-prefixes), each
    sorted by key as stores return them."""
    last: Entry | None = None
    for objects, prefixes in pages:
        entries: list[Iterable[Entry]] = [objects, sorted(prefixes)]
        for entry in heapq.merge(*entries, key=_key):
            if entry != last:  # a sub-prefix may close one page and open the next
                yield entry
            last = entry


def _key(entry: Entry) -> str:
    return entry if isinstance(entry, str) else entry.key


def _emit(head: StoredObject | _Run, sizes: _Sizes) -> Generator[StoredObject, None, int]:
    """Yield ``head`` (an object, or every object of a run); return how many walks it finished."""
    if isinstance(head, _Run):
        for page in head.feed.drain():
            yield from page
        sizes.done(head)
        return 1
    yield head
    return 0


def _chain(first: Entry, second: Entry | None, rest: Iterator[Entry]) -> Iterator[Entry]:
    yield first
    if second is not None:
        yield second
    yield from rest


class FanOutLister:
    """What S3 and GCS listers share: ``list()`` over their ``_walk`` (pages) and ``_level``, fanned
    out when ``concurrency`` allows."""

    prefix: str
    concurrency: int
    page_size: int

    def _walk(self, prefix: str, start: str = "", end: str | None = None) -> Pages:
        raise NotImplementedError

    def _level(self, prefix: str) -> Iterator[Entry]:
        raise NotImplementedError

    def list(self) -> Iterator[StoredObject]:
        if self.concurrency <= 1:  # the next page is fetched while this one is read
            return (obj for page in read_ahead(self._walk(self.prefix, "", None)) for obj in page)
        return fan_out(self.prefix, level=self._level, walk=self._walk, concurrency=self.concurrency,
                       buffer=self.page_size)
