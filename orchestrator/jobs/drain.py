"""Draining: while a ``run --wait`` submits, poll so that finished jobs free room in the window for
the next, and settle this run's lost replies as their jobs become listed."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence

from ..models import JobState, ObjectState
from .lost import LostReplies
from .policy import SubmitPolicy
from .refresh import OnFinished
from .window import Window

MIN_POLL_S = 0.05  # between two polls of the same jobs, whatever --poll-interval says


class Drain:
    """While a ``run --wait`` submits: poll the target's unfinished jobs every ``policy.poll_interval_s``
    seconds (at least :data:`MIN_POLL_S`), freeing the window's room as they finish, and settle this
    run's lost replies (``lost``) as their jobs become listed, until :meth:`finish` and every job of
    ``ours`` ended.

    A job leaves ``ours`` however it ends: seen finishing, forgotten by the server, or its rows moved
    on by another path (``held`` answers which of ``ours`` still hold ``submitted`` rows)."""

    def __init__(self, poll: Callable[[OnFinished], None], window: Window, policy: SubmitPolicy, *,
                 stop: threading.Event, pause: Callable[[float], object],
                 held: Callable[[Sequence[str]], dict[str, str]], lost: LostReplies | None = None,
                 on_end: Callable[[str], None] | None = None) -> None:
        self._poll = poll
        self._window = window
        self._interval = policy.poll_interval_s
        self._stop = stop
        self._pause = pause
        self._held = held
        self._lost = lost
        self._on_end = on_end  # told of every job that ends, however
        self._done = threading.Event()
        self.ours: dict[str, int] = {}  # this run's unfinished jobs, and their objects
        self.ended: Counter[str] = Counter()  # objects, by the state their job ended in (this run saw)
        self._seen_end: set[str] = set()  # every job seen ending, in case it ends before add()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="drain", daemon=True)

    def start(self) -> Drain:
        self._thread.start()
        return self

    def add(self, job_id: str, objects: int = 1) -> None:
        """A job of this run's: the run waits for it (a poll may have seen it end already)."""
        with self._lock:
            if job_id not in self._seen_end:
                self.ours[job_id] = objects

    def finish(self) -> None:
        """Submitting is over: poll on until this run's jobs have ended, then return."""
        self._done.set()
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _finished(self, job_id: str, state: JobState | str | None, objects: int) -> None:
        """A job ended (any job: an earlier run's too, whose end this run counts as it sees it) once: a
        job of a load waits uncommitted, seen so by every poll until its run commits it."""
        with self._lock:
            if job_id in self._seen_end:
                return
            self.ours.pop(job_id, None)
            self._seen_end.add(job_id)
            self.ended["uncertain" if state is None else str(state)] += objects
        self._window.release(finished=True)
        if self._on_end is not None:
            self._on_end(job_id)

    def _left(self) -> None:
        """Every job of ``ours`` whose rows no longer wait on it (moved on by another path) ends."""
        with self._lock:
            ours = dict(self.ours)
        if not ours:
            return
        held = self._held(list(ours))
        for job_id, objects in ours.items():
            if held.get(job_id, ObjectState.SUBMITTED.value) != ObjectState.SUBMITTED.value:
                self._finished(job_id, held[job_id], objects)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self._poll(self._finished)
                if self._lost is not None:
                    self._lost.settle(wait=False, on_adopted=self.add)
                self._left()
                with self._lock:
                    waiting = bool(self.ours)
                if self._done.is_set() and not waiting:
                    return
                self._pause(max(self._interval, MIN_POLL_S))
        except BaseException as exc:  # surfaces in finish(), in the run's thread
            self.error = exc
            self._stop.set()
