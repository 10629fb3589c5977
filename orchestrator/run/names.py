"""The names a server could confuse, held apart while a run submits (:class:`NameGuard`)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from ..jobs.evidence import name_key
from ..ledger.store import Ledger
from ..models import ObjectState


class NameGuard:
    """At most one unresolved create call per :func:`~orchestrator.jobs.evidence.name_key`, so that a job the
    server reports by name can always be told apart. A name in flight makes the next object with it
    wait; a name left unresolved (a lost reply, an interrupted run's ``submitting`` or ``uncertain``
    row) holds it back for this run."""

    def __init__(self, stuck: Iterable[tuple[str, str]] = ()) -> None:
        self._stuck = set(stuck)
        self._busy: set[tuple[str, str]] = set()
        self._cond = threading.Condition()

    def acquire(self, keys: Sequence[tuple[str, str]], stop: threading.Event) -> list[tuple[str, str]]:
        """Take every one of ``keys`` (the names of one create call) at once, once none is in flight;
        returns the ones taken: all but those held back for this run (none when stopping)."""
        with self._cond:
            while any(k in self._busy for k in keys) and not stop.is_set():
                self._cond.wait(0.5)
            if stop.is_set():
                return []
            taken = [k for k in keys if k not in self._stuck]
            self._busy.update(taken)
            return taken

    def release(self, keys: Iterable[tuple[str, str]], *, resolved: bool) -> None:
        with self._cond:
            for key in keys:
                self._busy.discard(key)
                if not resolved:
                    self._stuck.add(key)
            self._cond.notify_all()


def unresolved_names(ledger: Ledger) -> list[tuple[str, str]]:
    """The names of imports whose job is in doubt: no object with one of them is submitted this run."""
    return [name_key(r.collection, r.url)
            for r in ledger.records([ObjectState.SUBMITTING, ObjectState.UNCERTAIN], own=True)]
