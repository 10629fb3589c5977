"""Discovery: the objects of a source whose ``discovery`` is ``events``, one round of queue messages at
a time, and which messages may be deleted once the run has recorded what they caused.

A round receives up to :data:`ROUND_MESSAGES` messages, reads each one's notices, keeps the objects
created in the source's bucket under its prefix that include/exclude keep, and looks each one up once
(HEAD: the object as it is now is what is planned, whatever version the event was for; a deleted one
needs nothing). A message is deleted only once every object it names is settled in the ledger (or
proven to need nothing); a message that is no notification is logged and left to the queue's redrive
policy; one whose object could not be looked up comes back after its visibility timeout.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from ..config.globs import judge
from ..config.manifest import SourceConfig
from ..errors import NoticeError, SourceError
from ..models import Action, Outcome, PlanItem, StoredObject
from ..sources.notices import EventQueue, Message, Notice, NoticeKind

log = logging.getLogger("orchestrator")
ROUND_MESSAGES = 100  # messages received before their objects are planned and submitted together
# what settles an object a message named: a job made or adopted, a refusal or an invalid file recorded
# (each a row of the ledger that a later run reads), or a plan that needs no call (imported before,
# importing, changed under on_change: skip, held); anything else (deferred, queued, not started,
# left by --max-submissions, a call to reconcile) leaves the message to come back
SETTLED_OUTCOMES = frozenset({Outcome.SUBMITTED, Outcome.ADOPTED, Outcome.FAILED, Outcome.INVALID})
SETTLED_ACTIONS = frozenset({Action.SKIP, Action.CHANGED, Action.HOLD})


class Round(NamedTuple):
    """One round of messages: every delivery received, the objects to plan (each once, as it is now),
    and the messages that may be deleted, each with the URLs that must be settled first (a poison
    message, or one whose object could not be looked up, is not among them)."""

    messages: list[Message]
    objects: list[StoredObject]
    waits: list[tuple[Message, frozenset[str]]]


def out_of_scope(notice: Notice, source: SourceConfig) -> str | None:
    """Why a notice asks nothing of ``source``, or None when it names an object to import."""
    if notice.kind is not NoticeKind.CREATED:
        return notice.why or f"object {notice.kind.value}"
    if notice.bucket != source.bucket:
        return f"bucket {notice.bucket!r}, not this source's"
    if not notice.key.startswith(source.prefix) or notice.key.endswith("/"):
        return "outside the source's prefix"
    if not judge(notice.key[len(source.prefix):], source.include, source.exclude).kept:
        return "not kept by include/exclude"
    return None


def receive(queue: EventQueue, *, most: int, wait_s: float, stop: threading.Event) -> list[Message]:
    """Up to ``most`` messages: the first call waits up to ``wait_s`` (long poll), the next ones take
    what is there; a message delivered again meanwhile (its visibility timeout ran out) is kept once,
    as its last delivery, and a call that brings nothing new ends the round."""
    messages: dict[str, Message] = {}
    while len(messages) < most and not stop.is_set():
        got = queue.receive(most - len(messages), 0 if messages else wait_s)
        new = [m for m in got if m.id not in messages]
        messages.update((m.id, m) for m in got)
        if not new:
            break
    return list(messages.values())


def gather(queue: EventQueue, messages: list[Message], source: SourceConfig,
           head: Callable[[str], StoredObject | None], *, threads: int, counts: Counter[str],
           settled: Mapping[str, str]) -> Round:
    """The round of ``messages``: their notices read, the objects they name in ``source`` looked up
    (``head``, on ``threads`` threads), poison counted and logged. A notice of the very version an
    earlier round of this run settled (``settled``: key -> version; a duplicate delivery) needs
    nothing and no lookup; one of another version, or without an ETag, is looked up."""
    named: list[tuple[Message, set[str]]] = []
    for message in messages:
        try:
            notices = queue.notices(message)
        except NoticeError as exc:
            counts["poison"] += 1
            log.error("%s: message %s (delivery %d) is no notification: %s; left on the queue (its redrive "
                      "policy moves it to a dead-letter queue)", queue.label, message.id, message.deliveries,
                      exc, extra={"event": "poison-message", "queue": queue.label, "message_id": message.id,
                                  "deliveries": message.deliveries})
            continue
        keys = set()
        for notice in notices:
            why = out_of_scope(notice, source)
            if why is None and notice.etag is not None and settled.get(notice.key) == notice.etag:
                counts["settled"] += 1
            elif why is None:
                keys.add(notice.key)
            else:
                log.debug("%s: message %s: %s: %s", queue.label, message.id, notice.key or "-", why,
                          extra={"event": "notice-ignored", "message_id": message.id})
        named.append((message, keys))
    wanted = sorted({key for _, keys in named for key in keys})
    found = dict(zip(wanted, look_up(head, wanted, threads), strict=True))
    for error in (obj for obj in found.values() if isinstance(obj, SourceError)):
        log.warning("%s; the messages naming it stay on the queue", error,
                    extra={"event": "lookup-error", "source": source.label})
    counts["gone"] += sum(1 for obj in found.values() if obj is None)
    waits = [(message, frozenset(obj.url for key in keys if isinstance(obj := found[key], StoredObject)))
             for message, keys in named if not any(isinstance(found[key], SourceError) for key in keys)]
    objects = [obj for obj in found.values() if isinstance(obj, StoredObject)]
    return Round(messages, objects, waits)


def look_up(head: Callable[[str], StoredObject | None], keys: Sequence[str],
            threads: int) -> list[StoredObject | SourceError | None]:
    """Each key's object as it is now, on ``threads`` threads; a key that cannot be looked up is its
    error (the caller says what becomes of it)."""
    def one(key: str) -> StoredObject | SourceError | None:
        try:
            return head(key)
        except SourceError as exc:
            return exc

    if len(keys) <= 1:
        return [one(key) for key in keys]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="head") as pool:
        return list(pool.map(one, keys))


class Settled:
    """The URLs of one round's objects that are settled (see :data:`SETTLED_OUTCOMES`), as the plan
    and the submitter's workers report them."""

    def __init__(self) -> None:
        self._urls: set[str] = set()
        self._lock = threading.Lock()

    def planned(self, items: Iterable[PlanItem]) -> Iterator[PlanItem]:
        """Pass the plan through, noting the decisions that need no call."""
        for item in items:
            if item.action in SETTLED_ACTIONS:
                self._add(item.obj.url)
            yield item

    def outcome(self, item: PlanItem, outcome: Outcome) -> None:
        if outcome in SETTLED_OUTCOMES:
            self._add(item.obj.url)

    def has(self, url: str) -> bool:
        with self._lock:
            return url in self._urls

    def deletable(self, waits: Iterable[tuple[Message, frozenset[str]]]) -> list[Message]:
        """The messages every object of which is settled."""
        with self._lock:
            return [message for message, urls in waits if urls <= self._urls]

    def _add(self, url: str) -> None:
        with self._lock:
            self._urls.add(url)
