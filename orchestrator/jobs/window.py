"""The job window: how many unfinished jobs this manifest keeps on the server at once, narrowed when
the server says it is full."""

from __future__ import annotations

import threading


class Window:
    """How many unfinished jobs this manifest keeps on the server at once.

    A slot is taken before a create call and kept by the job it makes (``started``) until the job is
    seen to end; a call that made no job gives it back. ``most`` is the configured bound; ``limit``
    narrows to the jobs already running when the server answers "full", and widens by one after a
    full turn of the window without such an answer, each refused widening doubling the turns it waits
    for (up to 16): a server shared with others costs a refused call per several windows of jobs, not
    one per object. Without ``wait``, a full window (or a full server: :meth:`close`) queues the rest
    for a later run.
    """

    def __init__(self, most: int, *, running: int = 0, stop: threading.Event) -> None:
        self.most = most
        self.limit = most
        self.in_use = running  # slots taken: running jobs, and create calls in flight
        self.running = running  # slots that hold a job
        self.closed = False
        self._turn = 0
        self._patience = 1  # turns of the window between two attempts to widen it
        self._stop = stop
        self._cond = threading.Condition()

    def _open(self) -> bool:
        return not (self.closed or self._stop.is_set())

    def acquire(self, *, wait: bool) -> bool:
        with self._cond:
            while wait and self.in_use >= self.limit and self._open():
                self._cond.wait(0.25)
            if not self._open() or self.in_use >= self.limit:
                return False
            self.in_use += 1
            return True

    def started(self) -> None:
        """The caller's slot now holds a job (or may: a lost reply): it stays taken until the job ends."""
        with self._cond:
            self.running += 1

    def release(self, *, finished: bool) -> None:
        """A slot is free again: its job ended (``finished``), or its call made no job."""
        with self._cond:
            self.in_use = max(0, self.in_use - 1)
            if finished:
                self.running = max(0, self.running - 1)
                self._turn += 1
                if self._turn >= self.limit * self._patience and self.limit < self.most:
                    self.limit += 1
                    self._turn = 0
            self._cond.notify_all()

    def dropped(self) -> None:
        """A slot kept for a lost reply's job frees: the call was proven to have made none, or its
        job cannot be told (held ``uncertain``): no end of it will be seen."""
        with self._cond:
            self.in_use = max(0, self.in_use - 1)
            self.running = max(0, self.running - 1)
            self._cond.notify_all()

    def full(self) -> None:
        """The server refused a job as full: hold no more than the jobs already running (at least
        one, to probe again)."""
        with self._cond:
            if self.limit < self.most:  # a widening was refused: wait longer before the next
                self._patience = min(16, self._patience * 2)
            self.limit = max(1, self.running)
            self._turn = 0

    def requeue(self) -> bool:
        """For a caller whose create was refused as full: give its slot back, wait for room, take a
        slot again. False when the run stops or the window closes (the caller holds a slot all the
        same, to give back as usual)."""
        with self._cond:
            self.in_use = max(0, self.in_use - 1)
            self._cond.notify_all()
            while self.in_use >= self.limit and self._open():
                self._cond.wait(0.25)
            self.in_use += 1
            return self._open()

    def close(self) -> None:
        """No more creates in this run: the rest waits for a later one."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()
