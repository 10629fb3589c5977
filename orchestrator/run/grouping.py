"""Which objects share one import job (``settings.objects_per_job``). Pure.

A job takes objects of one source (one set of import credentials), one collection and one partition,
in listing order, up to ``most`` objects and ``max_bytes`` bytes. Two objects a server could report
under the same name (:func:`orchestrator.jobs.evidence.name_key`) never share a job, so that a job's file set
always tells its objects apart. An object marked ``alone`` (the culprit of a failed job of several)
goes in a job of its own; one of a ``part`` (a part of a failed job of several, sent again:
:mod:`orchestrator.jobs.isolation`) shares a job only with the rest of its part. Groups fill as the
listing streams: a full one is handed on at once, the rest when the listing ends, so memory holds at
most ``most`` objects per destination (and part).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..jobs.evidence import name_key
from ..models import PlanItem

GroupKey = tuple[int, str, str | None]
OpenKey = tuple[GroupKey, int | None]  # a destination, and the part its objects belong to (None: any)


class _Open:
    __slots__ = ("items", "names", "size")

    def __init__(self) -> None:
        self.items: list[PlanItem] = []
        self.names: set[tuple[str, str]] = set()
        self.size = 0


def group_key(item: PlanItem) -> GroupKey:
    """What objects must share to share a job: the source (its credentials), collection, partition."""
    assert item.route is not None
    return item.source, item.route.collection, item.route.partition


def batches(items: Iterable[PlanItem], *, most: int,
            max_bytes: int | None = None) -> Iterator[list[PlanItem]]:
    """``items`` (all routed) in groups of at most ``most`` objects and ``max_bytes`` bytes (an object
    larger than that alone is a group of its own), each of one :func:`group_key`, in listing order."""
    if most <= 1:
        for item in items:
            yield [item]
        return
    open_groups: dict[OpenKey, _Open] = {}
    for item in items:
        if item.alone:
            yield [item]
            continue
        key = group_key(item), item.part
        name = name_key(key[0][1], item.obj.url)
        group = open_groups.get(key)
        if group is not None and (name in group.names or (
                max_bytes is not None and group.size + item.obj.size > max_bytes)):
            yield open_groups.pop(key).items
            group = None
        if group is None:
            group = open_groups[key] = _Open()
        group.items.append(item)
        group.names.add(name)
        group.size += item.obj.size
        if len(group.items) >= most:
            yield open_groups.pop(key).items
    for group in open_groups.values():
        yield group.items
