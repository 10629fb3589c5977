"""Listing a prefix with many sub-prefixes on a bounded pool of threads, in the order one stream gives.

A store lister provides two calls: ``level(prefix)``, one delimited listing (the objects directly under
``prefix`` and its sub-prefixes, merged in key order), and ``walk(prefix)``, everything under ``prefix``
as one stream of pages (lists of objects). :func:`fan_out` walks the sub-prefixes ``concurrency`` at a
time, each into a bounded buffer of pages, and yields in key order: the same objects, in the same order,
as ``walk(prefix)`` alone. Memory stays bounded by ``concurrency * ahead`` pages however large the
listing. :func:`read_ahead` lets one stream fetch its next page while the consumer reads this one.
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
Pages = Iterator[list[StoredObject]]
T = TypeVar("T")
_DONE = object()
AHEAD = 16  # pages a sub-prefix's walk may hold before the consumer reaches it


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _Feed(Generic[T]):
    """Items made on another thread (``run``) into a bounded queue, read in order by ``drain``."""

    def __init__(self, make: Callable[[], Iterator[T]], depth: int, cancel: threading.Event) -> None:
        self._make = make
        self._cancel = cancel
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)

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


def fan_out(prefix: str, *, level: Callable[[str], Iterator[Entry]], walk: Callable[[str], Pages],
            concurrency: int, buffer: int = 1000, ahead: int = AHEAD) -> Iterator[StoredObject]:
    """Every object under ``prefix`` in key order, sub-prefixes walked ``concurrency`` at a time, each
    at most ``ahead`` pages ahead of the consumer (and at most ``buffer`` objects of the level held).

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
        entries = level(first)  # the only thing here is one sub-prefix: look one level down
        first = next(entries, None)
    else:
        if first is None:
            return
        entries = _chain(first, None, entries)

    cancel = threading.Event()
    window: deque[StoredObject | _Feed[list[StoredObject]]] = deque()
    walks = 0
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="list") as pool:
        try:
            for entry in entries:
                if isinstance(entry, str):
                    task = _Feed(partial(walk, entry), ahead, cancel)
                    pool.submit(task.run)
                    window.append(task)
                    walks += 1
                else:
                    window.append(entry)
                while walks >= concurrency or len(window) > buffer:
                    walks -= yield from _emit(window.popleft())
            while window:
                yield from _emit(window.popleft())
        finally:
            cancel.set()


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


def _emit(head: StoredObject | _Feed[list[StoredObject]]) -> Generator[StoredObject, None, int]:
    """Yield ``head`` (an object, or every object of a walk); return how many walks it finished."""
    if isinstance(head, _Feed):
        for page in head.drain():
            yield from page
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

    def _walk(self, prefix: str) -> Pages:
        raise NotImplementedError

    def _level(self, prefix: str) -> Iterator[Entry]:
        raise NotImplementedError

    def list(self) -> Iterator[StoredObject]:
        if self.concurrency <= 1:
            return (obj for page in self._walk(self.prefix) for obj in page)
        return fan_out(self.prefix, level=self._level, walk=self._walk, concurrency=self.concurrency,
                       buffer=self.page_size)
