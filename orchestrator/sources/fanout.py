"""Listing a prefix with many sub-prefixes on a bounded pool of threads, in the order one stream gives.

A store lister provides two calls: ``level(prefix)``, one delimited listing (the objects directly under
``prefix`` and its sub-prefixes, merged in key order), and ``walk(prefix, start, end)``, every object
under ``prefix`` from key ``start`` up to (not including) key ``end``, as one stream of pages. A walk
only fetches: each page is a :class:`Lazy`, read (parsed, objects made) by the consumer, so that the
CPU work stays on the consumer's thread and the walks' threads only wait for the network (with the
GIL, threads that parse slow the planner down more than they help). While the run it consumes has
no page ready, the consumer reads pages that came for the runs behind it (up to
``concurrency * ahead / 2`` of them): time it would otherwise spend waiting, then reading those pages
all at once when the walks are done.

:func:`fan_out` walks runs of consecutive sub-prefixes as key ranges, ``concurrency`` at a time, each
into a bounded buffer of pages, and yields in key order: the same objects, in the same order, as
``walk(prefix, "", None)`` alone. Runs grow from one sub-prefix to as many as fit in about ``ahead``
pages (learnt from the walks done): a range's last page is seldom full, and a page saved is a round
trip saved. Near the level's end they shrink to an equal share per thread, so that the threads end
together. A thread whose walk has ended takes the next run at once, even while the consumer still
reads an earlier one (runs of unequal length no longer leave threads idle): a walk's end wakes the
consumer. Memory stays bounded by ``2 * concurrency * ahead`` pages however large the listing.
:func:`read_ahead` lets one stream fetch its next page while the consumer reads this one.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import itertools
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
_WAIT = object()
POLL_S = 0.01  # the longest a consumer waits for a page before looking around (a walk's end wakes it)
AHEAD = 16  # pages a run's walk may hold before the consumer reaches it


class Lazy:
    """One page of a listing, read when iterated (or when :meth:`read` is called first): ``read()``
    makes its objects (in key order), of which those from ``start`` up to (not including) ``end`` are
    kept. Once read, the raw reply is let go."""

    __slots__ = ("_end", "_objects", "_read", "_start")

    def __init__(self, read: Callable[[], list[StoredObject]], start: str = "", end: str | None = None,
                 ) -> None:
        self._read: Callable[[], list[StoredObject]] | None = read
        self._start = start
        self._end = end
        self._objects: list[StoredObject] = []

    @property
    def unread(self) -> bool:
        return self._read is not None

    def read(self) -> list[StoredObject]:
        if self._read is None:
            return self._objects
        objects = self._read()
        if objects and objects[0].key < self._start:
            objects = [o for o in objects if o.key >= self._start]
        end = self._end
        if end is not None and objects and objects[-1].key >= end:
            objects = [o for o in objects if o.key < end]
        self._objects, self._read = objects, None
        return objects

    def __iter__(self) -> Iterator[StoredObject]:
        return iter(self.read())


Pages = Iterator[Lazy]
Walk = Callable[[str, str, str | None], Pages]  # (prefix, start, end): pages of start <= key < end


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _News:
    """What the feeds of one fan-out share: one lock, the condition the consumer waits on, and a
    count of what happened (a page came, a walk ended), so that the consumer waiting for one thing
    wakes for the others. Each feed's producer waits on a condition of its own (on the same lock):
    a page taken wakes only the walk that can now go on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.count = 0

    def tell(self) -> None:
        """Called with ``lock`` held."""
        self.count += 1
        self.changed.notify_all()

    def since(self, count: int) -> bool:
        return self.count != count


class _Feed(Generic[T]):
    """Items made on another thread (``run``) into a bounded buffer, read in order by ``drain`` (or
    ``take``). ``ended`` is called on that thread when it is done making them."""

    def __init__(self, make: Callable[[], Iterator[T]], depth: int, cancel: threading.Event,
                 ended: Callable[[], object] | None = None, news: _News | None = None) -> None:
        self._make = make
        self._cancel = cancel
        self._ended = ended
        self._depth = max(1, depth)
        self._items: deque[object] = deque()
        self._news = news or _News()
        self._room = threading.Condition(self._news.lock)  # the producer waits on it
        self.count = 0  # items drained
        self.made = 0  # items made

    def run(self) -> None:
        try:
            for item in self._make():
                if not self._put(item):
                    return
                self.made += 1
            last: object = _DONE
        except Exception as exc:  # handed to the consumer, which raises it in its own thread
            last = _Failed(exc)
        if self._ended is not None:  # before the consumer can see the end
            self._ended()
        self._put(last)

    def _put(self, item: object) -> bool:
        with self._news.lock:
            while len(self._items) >= self._depth and not self._cancel.is_set():
                self._room.wait(0.05)
            if self._cancel.is_set():
                return False
            self._items.append(item)
            self._news.tell()
        return True

    def drain(self) -> Iterator[T]:
        while True:
            item = self.take(None)
            if item is _DONE:
                return
            yield item  # type: ignore[misc]  # what run() put: a T

    def take(self, timeout: float | None, until: Callable[[], bool] = lambda: False) -> T | object:
        """The next item, ``_DONE`` at the end, or ``_WAIT`` when none came within ``timeout`` or
        ``until()`` became true first (checked whenever there is news)."""
        with self._news.lock:
            if not self._news.changed.wait_for(lambda: self._items or until(), timeout) or not self._items:
                return _WAIT
            item = self._items.popleft()
            self._room.notify()
        if isinstance(item, _Failed):
            raise item.exc
        if item is not _DONE:
            self.count += 1
        return item

    def unread(self) -> Lazy | None:
        """The first page held that has not been read yet."""
        with self._news.lock:
            return next((item for item in self._items if isinstance(item, Lazy) and item.unread), None)


_listings = 0  # listings running in this process
_froze = False  # whether they froze the heap (not when something else had)
_listings_lock = threading.Lock()


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """While a listing runs, what was in memory when it began (modules, clients: botocore's service
    models alone are some 70,000 objects) is kept out of the cyclic garbage collector's sight
    (:func:`gc.freeze`). A listing makes objects fast enough to set off full collections, and each one
    rescanned all of it while every thread of the listing waited: 50-100 ms a pass, three passes in
    200,000 objects. The last listing to end gives it back (:func:`gc.unfreeze`), so that a process
    that lives on (a service calling ``api.run``) collects it as before. A heap frozen by someone else
    is left as it is."""
    global _listings, _froze
    with _listings_lock:
        if _listings == 0 and gc.get_freeze_count() == 0:
            gc.freeze()
            _froze = True
        _listings += 1
    try:
        yield
    finally:
        with _listings_lock:
            _listings -= 1
            if _listings == 0 and _froze:
                gc.unfreeze()
                _froze = False


def _frozen(pages: Iterator[T]) -> Generator[T, None, None]:
    with frozen_heap():
        yield from pages


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
    time, each at most ``ahead`` pages ahead of the consumer (and at most ``buffer`` entries of the
    level held).

    A level holding a single sub-prefix and nothing else is descended into, so that
    ``data/year=2024/month=*/`` fans out over the months.
    """
    pages = _frozen(_fan_out(prefix, level=level, walk=walk, concurrency=concurrency, buffer=buffer,
                             ahead=ahead))
    try:  # the pages flattened in C: no generator frame per object
        yield from itertools.chain.from_iterable(pages)
    finally:
        pages.close()


def _fan_out(prefix: str, *, level: Callable[[str], Iterator[Entry]], walk: Walk, concurrency: int,
             buffer: int, ahead: int) -> Generator[Iterable[StoredObject], None, None]:
    """:func:`fan_out` as pages (and single objects of the level, as one-object pages)."""
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
    sizes = _Sizes(ahead, concurrency)
    level_ahead = _Ahead(entries, buffer)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="list") as pool:

        def start(end: str | None) -> None:
            task = _Run(partial(walk, prefix, run[0], end), len(run), ahead, cancel, sizes)
            pool.submit(task.feed.run)
            window.append(task)
            run.clear()

        try:
            for entry in level_ahead:
                if run and (not isinstance(entry, str) or len(run) >= sizes.run(level_ahead.unwalked(run))):
                    start(_key(entry))
                if isinstance(entry, str):
                    run.append(entry)
                else:
                    window.append(entry)
                while sizes.busy() or len(window) > buffer:
                    yield from _step(window, sizes)
            if run:
                start(None)
            while window:
                yield from _step(window, sizes)
        finally:
            cancel.set()


class _Ahead:
    """The level's entries, read up to ``depth`` ahead: once its end is within reach, how many
    sub-prefixes are left is known (None until then)."""

    def __init__(self, entries: Iterator[Entry], depth: int) -> None:
        self._entries = entries
        self._depth = max(1, depth)
        self._held: deque[Entry] = deque()
        self._prefixes = 0  # sub-prefixes held
        self._ended = False

    def __iter__(self) -> Iterator[Entry]:
        while True:
            while not self._ended and len(self._held) < self._depth:
                entry = next(self._entries, None)
                if entry is None:
                    self._ended = True
                else:
                    self._held.append(entry)
                    self._prefixes += isinstance(entry, str)
            if not self._held:
                return
            entry = self._held.popleft()
            self._prefixes -= isinstance(entry, str)
            yield entry

    def unwalked(self, run: list[str]) -> int | None:
        """Sub-prefixes not walked yet once the level's end is known (None until then): those of
        ``run``, the entry last yielded, and those still to come."""
        return len(run) + 1 + self._prefixes if self._ended else None


class _Run:
    """A run of consecutive sub-prefixes, walked as one key range on a thread of the pool."""

    def __init__(self, walk: Callable[[], Pages], prefixes: int, ahead: int, cancel: threading.Event,
                 sizes: _Sizes) -> None:
        self.prefixes = prefixes
        self.feed = _Feed(walk, ahead, cancel, partial(sizes.ended, self), sizes.news)
        sizes.started(self)


class _Sizes:
    """The runs' bookkeeping. How many sub-prefixes the next run takes: one until a walk has
    finished, then as many as fit in about three quarters of ``ahead`` pages, at the pages per
    sub-prefix seen so far; near the level's end, about an equal share per thread of the pages left
    (the sub-prefixes not walked and what the runs being walked still have to fetch), so that the
    last runs end together rather than one long run after the others. When a new run may start: a
    thread is free (a run behind the one being consumed may end first), and fewer than twice
    ``concurrency`` runs are held (memory: at most ``ahead`` pages each). How many pages the
    consumer may have read ahead of the run it consumes: ``concurrency * ahead / 2``. All of it
    shares one :class:`_News` with the runs' feeds."""

    def __init__(self, ahead: int, concurrency: int) -> None:
        self.target = max(1, ahead * 3 // 4)
        self.concurrency = max(1, concurrency)
        self.news = _News()  # shared with the runs' feeds
        self._lock = self.news.lock
        self.pages = 0  # pages of the walks ended
        self.prefixes = 0  # sub-prefixes of the walks ended
        self._walking: set[_Run] = set()  # runs started whose walk has not ended
        self.held = 0  # runs started and not yet consumed
        self.read_ahead = 0  # pages read by the consumer ahead of the run it consumes
        self.most_read_ahead = self.concurrency * ahead // 2

    @property
    def walking(self) -> int:
        return len(self._walking)

    def started(self, run: _Run) -> None:
        with self._lock:
            self._walking.add(run)
            self.held += 1

    def ended(self, run: _Run) -> None:
        """``run``'s walk has made its last page (called on the walk's thread)."""
        with self._lock:
            self.pages += run.feed.made
            self.prefixes += run.prefixes
            self._walking.discard(run)
            self.news.tell()

    def done(self) -> None:
        """A run was consumed."""
        with self._lock:
            self.held -= 1

    def taken(self, page: object) -> None:
        """The consumer took ``page`` (from the run it consumes)."""
        if isinstance(page, Lazy) and not page.unread:
            self.read_ahead -= 1

    def busy(self) -> bool:
        return self.walking >= self.concurrency or self.held >= 2 * self.concurrency

    def run(self, unwalked: int | None = None) -> int:
        """``unwalked``: the sub-prefixes not walked yet, this run's included, when known."""
        if self.pages == 0:
            return 1
        fits = max(1, self.target * self.prefixes // self.pages)
        if unwalked is None:
            return fits
        per = self.pages / self.prefixes  # pages a sub-prefix
        with self._lock:
            fetching = sum(max(0.0, run.prefixes * per - run.feed.made) for run in self._walking)
        share = (unwalked * per + fetching) / self.concurrency / per  # in sub-prefixes
        return max(1, min(fits, int(share + 0.5)))


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


def _step(window: deque[StoredObject | _Run], sizes: _Sizes) -> Iterator[Iterable[StoredObject]]:
    """Yield what the head of ``window`` has ready, taking it off once consumed. While the head's
    next page is on its way, read a page that has come for a run behind it (the consumer would
    otherwise wait, then read those pages all at once at the end). Return after reading one such
    page, on news (a page came for another run; a walk ended, and the caller can start one on the
    thread now free: a run behind the head may end first), or after waiting ``POLL_S``."""
    head = window[0]
    if not isinstance(head, _Run):
        window.popleft()
        yield (head,)
        return
    news = sizes.news
    while True:
        page = head.feed.take(0)
        if page is _WAIT:
            seen = news.count
            if _read_one_ahead(window, sizes):
                return
            page = head.feed.take(POLL_S, until=partial(news.since, seen))
            if page is _WAIT:
                return
        if page is _DONE:
            window.popleft()
            sizes.done()
            return
        sizes.taken(page)
        yield page  # type: ignore[misc]  # a page of the run


def _read_one_ahead(window: deque[StoredObject | _Run], sizes: _Sizes) -> bool:
    """Read the first page not read yet of the runs behind the head; False when there is none, or
    when as many pages as ``sizes`` allows have been read ahead (a page read holds its objects,
    about 2.5 times the reply's bytes)."""
    if sizes.read_ahead >= sizes.most_read_ahead:
        return False
    for held in itertools.islice(window, 1, None):
        if isinstance(held, _Run) and (page := held.feed.unread()) is not None:
            page.read()
            sizes.read_ahead += 1
            return True
    return False


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
            return itertools.chain.from_iterable(_frozen(read_ahead(self._walk(self.prefix, "", None))))
        return fan_out(self.prefix, level=self._level, walk=self._walk, concurrency=self.concurrency,
                       buffer=self.page_size)
