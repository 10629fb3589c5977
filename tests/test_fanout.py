"""Fan-out over sub-prefixes gives what one stream gives, in the same order, within bounded buffers."""

from __future__ import annotations

import gc
import random
import threading
from collections import deque
from collections.abc import Callable, Iterator

import pytest

from orchestrator.errors import SourceError
from orchestrator.models import StoredObject
from orchestrator.sources.fanout import Entry, Lazy, _read_one_ahead, _Run, _Sizes, fan_out, merge_pages


class Store:
    """Keys in memory, listed the way S3 and GCS list them (sorted, optionally delimited)."""

    def __init__(self, keys: list[str], fail_under: str | None = None) -> None:
        self.keys = sorted(keys)
        self.fail_under = fail_under
        self.walking: set[str] = set()
        self.walks: list[tuple[str, str, str | None]] = []
        self.most_at_once = 0
        self._lock = threading.Lock()

    def obj(self, key: str) -> StoredObject:
        return StoredObject(url=f"s3://b/{key}", bucket="b", key=key, relative_key=key, size=1, version="v",
                            modified=0.0)

    def walk(self, prefix: str, start: str = "", end: str | None = None) -> Iterator[list[StoredObject]]:
        """Pages of up to three objects."""
        with self._lock:
            self.walking.add(start)
            self.most_at_once = max(self.most_at_once, len(self.walking))
            self.walks.append((prefix, start, end))
        try:
            page: list[StoredObject] = []
            for key in self.keys:
                if key.startswith(prefix) and key >= start and (end is None or key < end):
                    if self.fail_under is not None and key.startswith(self.fail_under):
                        raise SourceError(f"cannot list {key}")
                    page.append(self.obj(key))
                    if len(page) == 3:
                        yield page
                        page = []
            if page:
                yield page
        finally:
            with self._lock:
                self.walking.discard(start)

    def level(self, prefix: str) -> Iterator[Entry]:
        objects: list[StoredObject] = []
        prefixes: list[str] = []
        for key in self.keys:
            if key.startswith(prefix):
                rest = key[len(prefix):]
                if "/" in rest:
                    sub = prefix + rest.split("/", 1)[0] + "/"
                    if not prefixes or prefixes[-1] != sub:
                        prefixes.append(sub)
                else:
                    objects.append(self.obj(key))
        # two pages in key order, the second repeating the entry the first ended on
        entries = sorted([*objects, *prefixes], key=lambda e: e if isinstance(e, str) else e.key)
        half = len(entries) // 2
        pages = [([e for e in part if isinstance(e, StoredObject)], [e for e in part if isinstance(e, str)])
                 for part in (entries[:half + 1], entries[half:])]
        return merge_pages(pages)


def keys_of(objects: Iterator[StoredObject]) -> list[str]:
    return [o.key for o in objects]


def walked(pages: Iterator[list[StoredObject]]) -> list[str]:
    return [o.key for page in pages for o in page]


@pytest.mark.parametrize("concurrency", [2, 3, 8])
def test_same_objects_same_order_as_one_stream(concurrency: int) -> None:
    rng = random.Random(concurrency)
    keys = [f"p/{rng.choice('abcdefgh')}{rng.randint(0, 9)}/{rng.choice(['', 'x/', 'y/z/'])}{i}.parquet"
            for i in range(400)] + ["p/top.parquet", "p/a.parquet", "p/zz.parquet"]
    store = Store(keys)
    fanned = keys_of(fan_out("p/", level=store.level, walk=store.walk, concurrency=concurrency, buffer=3))
    assert fanned == walked(store.walk("p/")) == sorted(keys)
    assert store.most_at_once <= concurrency


def test_a_single_sub_prefix_is_descended_into() -> None:
    store = Store([f"p/year=2024/month={m:02}/{i}.parquet" for m in range(1, 13) for i in range(7)])
    listed = keys_of(fan_out("p/", level=store.level, walk=store.walk, concurrency=4, buffer=2, ahead=1))
    assert listed == sorted(store.keys)
    assert store.most_at_once > 1  # the months were walked side by side


def test_nothing_and_flat() -> None:
    empty = Store([])
    assert keys_of(fan_out("p/", level=empty.level, walk=empty.walk, concurrency=4)) == []
    flat = Store(["p/a", "p/b", "q/c"])
    assert keys_of(fan_out("p/", level=flat.level, walk=flat.walk, concurrency=4)) == ["p/a", "p/b"]


def test_a_failing_walk_raises_in_the_consumer_after_what_came_before() -> None:
    keys = [f"p/{d}/{i}" for d in "abcdef" for i in range(5)]
    store = Store(keys, fail_under="p/d/")
    seen: list[str] = []
    with pytest.raises(SourceError, match="cannot list p/d/0"):
        for obj in fan_out("p/", level=store.level, walk=store.walk, concurrency=3, buffer=2):
            seen.append(obj.key)
    # what the pages before the failing one held, in order (a run may hold p/c/ and p/d/)
    assert seen == keys[:len(seen)] and len(seen) >= 5 and "p/d/0" not in seen
    one_at_a_time = Store(keys, fail_under="p/d/")  # the runs do not depend on the threads' timing
    seen = []
    with pytest.raises(SourceError, match="cannot list p/d/0"):
        for obj in fan_out("p/", level=one_at_a_time.level, walk=one_at_a_time.walk, concurrency=1, buffer=2):
            seen.append(obj.key)
    assert seen == keys[:14]  # p/a/ alone, then p/b/ to p/f/ as one run: its fifth page fails


def test_stopping_early_ends_the_walkers() -> None:
    store = Store([f"p/{d}/{i}" for d in "abcdefgh" for i in range(50)])
    listing = fan_out("p/", level=store.level, walk=store.walk, concurrency=4, buffer=2, ahead=1)
    assert next(listing).key == "p/a/0"
    listing.close()  # type: ignore[attr-defined]
    assert store.walking == set()


def test_runs_of_sub_prefixes_grow_to_what_fits_in_the_pages_ahead() -> None:
    """Sub-prefixes of 4 keys (2 pages of 3): one per walk until a walk has finished, then runs of as
    many as fit in 3/4 of 8 pages ahead (3 sub-prefixes), cut short by an object between them. One
    thread, so that each run is sized once the walk before it has ended."""
    keys = [f"p/{d:02}/{i}" for d in range(30) for i in range(4)] + ["p/07.parquet", "p/top"]
    store = Store(keys)
    listed = keys_of(fan_out("p/", level=store.level, walk=store.walk, concurrency=1, ahead=8))
    assert listed == sorted(keys)
    runs = [(start, end) for _, start, end in store.walks]
    assert runs[:4] == [("p/00/", "p/01/"),
                        ("p/01/", "p/04/"),  # 2 pages a sub-prefix: 3 of them in 6 pages
                        ("p/04/", "p/07.parquet"),  # a run ends where an object of the level sits
                        ("p/07/", "p/11/")]  # 4 sub-prefixes in 6 pages so far: 4 of them
    assert runs[-1][1] == "p/top"


def run_of(sizes: _Sizes, prefixes: int, made: int = 0) -> _Run:
    """A run as the fan-out starts it, its walk not run: the pages it made are set by hand."""
    run = _Run(lambda: iter(()), prefixes, 8, threading.Event(), sizes)
    run.feed.made = made
    return run


def test_run_sizes_learn_from_ended_walks_and_share_the_end_among_the_threads() -> None:
    sizes = _Sizes(ahead=8, concurrency=2)
    assert sizes.run() == sizes.run(unwalked=30) == 1  # nothing learnt yet: one sub-prefix per walk
    sizes.ended(run_of(sizes, 1, made=2))
    assert sizes.run() == 3  # 6 pages (3/4 of 8), 2 pages a sub-prefix
    assert sizes.run(unwalked=30) == sizes.run(unwalked=6) == 3
    assert [sizes.run(unwalked=n) for n in (4, 3, 2, 1)] == [2, 2, 1, 1]  # an equal share per thread
    run_of(sizes, 3, made=1)  # being walked: 5 of its 6 pages still to come, and they count
    assert sizes.run(unwalked=2) == 2


def test_a_new_walk_starts_when_a_thread_is_free_or_too_many_runs_are_held() -> None:
    sizes = _Sizes(ahead=8, concurrency=2)
    first = run_of(sizes, 1)
    assert not sizes.busy()
    run_of(sizes, 1)
    assert sizes.busy()  # both threads walk
    sizes.ended(first)
    assert not sizes.busy()  # a walk ended, though nothing of it was consumed
    for _ in range(2):
        sizes.ended(run_of(sizes, 1))
    assert sizes.busy()  # four runs held (twice the threads): memory
    sizes.done()
    assert not sizes.busy()


def test_a_thread_freed_behind_the_run_being_consumed_walks_the_next_run() -> None:
    """The first run's walk waits until the third has started: with walks started only as runs are
    consumed, the third would wait for the first (which never ends) and the wait would time out."""
    store = Store([f"p/{d}/{i}" for d in "abc" for i in range(2)])
    third_started = threading.Event()
    walk = store.walk

    def held(prefix: str, start: str = "", end: str | None = None) -> Iterator[list[StoredObject]]:
        if start == "p/c/":
            third_started.set()
        if start == "p/a/":
            assert third_started.wait(timeout=10), "the third walk did not start while the first was held"
        return walk(prefix, start, end)

    listed = keys_of(fan_out("p/", level=store.level, walk=held, concurrency=2, ahead=8))
    assert listed == store.keys and third_started.is_set()


def test_a_flat_prefix_is_listed_once() -> None:
    store = Store([f"p/{i:03}.parquet" for i in range(50)])
    assert keys_of(fan_out("p/", level=store.level, walk=store.walk, concurrency=4)) == store.keys
    assert store.walks == []


def test_pages_behind_the_run_being_consumed_are_read_while_it_waits() -> None:
    """The consumer reads (parses) a page that came for the second run while the first run's page is
    on its way, instead of reading them all once the first run is done: the first walk holds its
    page until the second run's page has been read, which the consumer alone can do. Each page is
    read once, and the objects come out in key order."""
    store = Store([f"p/{d}/{i}" for d in "ab" for i in range(3)])
    second_read = threading.Event()
    reads: list[str] = []

    def reader(page: list[StoredObject]) -> Callable[[], list[StoredObject]]:
        def read() -> list[StoredObject]:
            reads.append(page[0].key)
            if page[0].key.startswith("p/b/"):
                second_read.set()
            return page
        return read

    def walk(prefix: str, start: str = "", end: str | None = None) -> Iterator[Lazy]:
        for page in store.walk(prefix, start, end):
            if start == "p/a/":
                assert second_read.wait(timeout=10), "the second run's page was not read meanwhile"
            yield Lazy(reader(page), start, end)

    listed = keys_of(fan_out("p/", level=store.level, walk=walk, concurrency=2, ahead=8))
    assert listed == store.keys
    assert reads == ["p/b/0", "p/a/0"]


def test_pages_read_ahead_are_bounded() -> None:
    """A page read ahead holds its objects (about 2.5 times the reply): at most concurrency * ahead / 2
    of them, however many pages the runs behind the head hold; taking one frees a place."""
    sizes = _Sizes(ahead=2, concurrency=2)  # at most 2 pages read ahead
    cancel = threading.Event()
    reads: list[int] = []

    def reader(n: int) -> Callable[[], list[StoredObject]]:
        def read() -> list[StoredObject]:
            reads.append(n)
            return []
        return read

    def pages() -> Iterator[Lazy]:
        return (Lazy(reader(n)) for n in range(3))

    head, behind = (_Run(pages, 1, 8, cancel, sizes) for _ in range(2))
    behind.feed.run()  # its three pages are held, none read
    window: deque[StoredObject | _Run] = deque([head, behind])
    assert [_read_one_ahead(window, sizes) for _ in range(3)] == [True, True, False]
    assert reads == [0, 1]
    sizes.taken(behind.feed.take(0))  # consumed: room for one more
    assert _read_one_ahead(window, sizes) and reads == [0, 1, 2]


def test_the_heap_is_frozen_while_a_listing_runs_and_given_back_after() -> None:
    """What was in memory when the listing began is out of the collector's sight while it runs (its
    full passes would rescan it, every listing thread waiting), and collected as before once the
    last listing ends, however it ends; a heap frozen by someone else is left frozen."""
    store = Store([f"p/{d}/{i}" for d in "abc" for i in range(4)])
    seen: list[int] = []
    walk = store.walk

    def watched(prefix: str, start: str = "", end: str | None = None) -> Iterator[list[StoredObject]]:
        seen.append(gc.get_freeze_count())
        return walk(prefix, start, end)

    gc.unfreeze()
    gc.collect()  # listings other tests left unclosed end here
    assert keys_of(fan_out("p/", level=store.level, walk=watched, concurrency=2)) == store.keys
    assert seen and min(seen) > 1000 and gc.get_freeze_count() == 0
    first = fan_out("p/", level=store.level, walk=watched, concurrency=2)
    second = fan_out("p/", level=store.level, walk=watched, concurrency=2)
    next(first), next(second)
    first.close()  # type: ignore[attr-defined]
    assert gc.get_freeze_count() > 1000  # the second listing still runs
    second.close()  # type: ignore[attr-defined]
    assert gc.get_freeze_count() == 0
    failing = Store(store.keys, fail_under="p/b/")
    with pytest.raises(SourceError, match="cannot list p/b/0"):
        keys_of(fan_out("p/", level=failing.level, walk=failing.walk, concurrency=2))
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:  # a frozen object freed meanwhile (its count at zero) leaves the frozen set: no exact count
        assert keys_of(fan_out("p/", level=store.level, walk=watched, concurrency=2)) == store.keys
        assert gc.get_freeze_count() > 1000  # not given back by the listing
    finally:
        gc.unfreeze()
