"""Progress bars for ``run`` on a terminal (rich), fed by the hooks of :func:`orchestrator.api.run`.

Used by ``cli.py`` only, which makes them only when stderr is a terminal: under cron there are no
bars, just the summary line (and ``--json-log`` events). Hooks are called for every object, from
several threads: they count under a lock and hand the counts to rich at most ten times a second, so
that a no-op rerun over a million objects does not pay for drawing.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import IO

from rich.console import Console
from rich.file_proxy import FileProxy
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from .models import Action, PlanItem

_TO_SUBMIT = (Action.SUBMIT, Action.RETRY)
_PHASES = {"refreshing": "polling known jobs", "waiting": "waiting for jobs"}


class RunBars:
    """Three bars: objects listed and planned, submissions, and job polls (refresh, then ``--wait``).

    A context manager; while it is open, the ``orchestrator`` logger's stderr lines are printed above
    the bars instead of through them.
    """

    def __init__(self, console: Console | None = None, *, max_submissions: int | None = None,
                 interval: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self._console = console if console is not None else Console(stderr=True)
        self._limit = max_submissions
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last = 0.0
        self._listed = self._to_submit = self._submitted = 0
        self._jobs: tuple[str, int, int] | None = None
        self._progress = Progress(TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=self._console, redirect_stdout=False,
                                  redirect_stderr=False)
        self._tasks: dict[str, TaskID] = {}
        self._rerouted: list[tuple[logging.StreamHandler[IO[str]], IO[str]]] = []

    def __enter__(self) -> RunBars:
        self._progress.start()
        for handler in logging.getLogger("orchestrator").handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
                self._rerouted.append((handler, handler.stream))
                handler.setStream(FileProxy(self._console, handler.stream))
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._draw()
            if "listed" in self._tasks:  # listing is over: the count is the total
                self._progress.update(self._tasks["listed"], total=self._listed)
        self._progress.stop()
        for handler, stream in self._rerouted:
            handler.flush()
            handler.setStream(stream)

    # -- the hooks api.run calls --------------------------------------------------------------

    def planned(self, item: PlanItem) -> None:
        with self._lock:
            self._listed += 1
            if item.action in _TO_SUBMIT:
                self._to_submit += 1
            self._tick()

    def submitted(self, _item: PlanItem, _outcome: object) -> None:
        with self._lock:
            self._submitted += 1
            self._tick()

    def jobs(self, phase: str, done: int, total: int) -> None:
        with self._lock:
            self._jobs = (phase, done, total)
            self._tick()

    # -- drawing (under the lock) -------------------------------------------------------------

    def _tick(self) -> None:
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if self._jobs is not None:
            phase, done, total = self._jobs
            self._bar("jobs", _PHASES.get(phase, phase), done, total)
        if self._listed:
            self._bar("listed", "listed and planned", self._listed, None)
        if self._to_submit:
            total = self._to_submit if self._limit is None else min(self._to_submit, self._limit)
            self._bar("submitted", "submitted", self._submitted, total)

    def _bar(self, key: str, description: str, completed: int, total: int | None) -> None:
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(description, total=total)
        self._progress.update(self._tasks[key], description=description, completed=completed, total=total)
