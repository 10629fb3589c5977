"""Fan-out over sub-prefixes gives what one stream gives, in the same order, within bounded buffers."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest

from orchestrator.errors import SourceError
from orchestrator.models import StoredObject
from orchestrator.sources.fanout import Entry, fan_out, merge_pages


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
    store = Store([f"p/{d}/{i}" for d in "abcdef" for i in range(5)], fail_under="p/d/")
    seen: list[str] = []
    with pytest.raises(SourceError, match="cannot list p/d/0"):
        for obj in fan_out("p/", level=store.level, walk=store.walk, concurrency=3, buffer=2):
            seen.append(obj.key)
    assert seen == [f"p/{d}/{i}" for d in "abc" for i in range(5)]


def test_stopping_early_ends_the_walkers() -> None:
    store = Store([f"p/{d}/{i}" for d in "abcdefgh" for i in range(50)])
    listing = fan_out("p/", level=store.level, walk=store.walk, concurrency=4, buffer=2, ahead=1)
    assert next(listing).key == "p/a/0"
    listing.close()  # type: ignore[attr-defined]
    assert store.walking == set()


def test_runs_of_sub_prefixes_grow_to_what_fits_in_the_pages_ahead() -> None:
    """Sub-prefixes of 4 keys (2 pages of 3): one per walk until a walk has finished, then runs of as
    many as fit in 3/4 of 8 pages ahead (3 sub-prefixes), cut short by an object between them."""
    keys = [f"p/{d:02}/{i}" for d in range(30) for i in range(4)] + ["p/07.parquet", "p/top"]
    store = Store(keys)
    listed = keys_of(fan_out("p/", level=store.level, walk=store.walk, concurrency=2, ahead=8))
    assert listed == sorted(keys)
    assert store.walks[:2] == [("p/", "p/00/", "p/01/"), ("p/", "p/01/", "p/02/")]
    runs = [(start, end) for _, start, end in store.walks]
    assert runs[2:5] == [("p/02/", "p/05/"),  # 2 pages a sub-prefix: 3 of them in 6 pages
                         ("p/05/", "p/07.parquet"),  # a run ends where an object of the level sits
                         ("p/07/", "p/10/")]
    assert runs[-1][1] == "p/top" and len(runs) == 11


def test_a_flat_prefix_is_listed_once() -> None:
    store = Store([f"p/{i:03}.parquet" for i in range(50)])
    assert keys_of(fan_out("p/", level=store.level, walk=store.walk, concurrency=4)) == store.keys
    assert store.walks == []
