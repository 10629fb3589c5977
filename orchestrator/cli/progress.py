"""Progress bars for ``run`` on a terminal (rich), the run's observer
(:class:`~orchestrator.run.observer.RunObserver`).

Used by ``cli/main.py`` only, which makes them only when stderr is a terminal: under cron there are no
bars, just the summary line (and ``--json-log`` events). Events come for every object, from several
threads: they count under a lock and hand the counts to rich at most ten times a second, so
that a no-op rerun over a million objects does not pay for drawing.

Each bar shows its rates (files/s, and bytes/s where sizes are known) and, once its total is known,
an ETA. A total that is not known yet (the listing is still going) is drawn as a pulsing bar, never
as a full one. Submissions count the objects that got a job; refusals and deferrals are shown beside.
With several collections, each gets its own submission bar.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import IO

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

from ..models import Action, PlanItem

_TO_SUBMIT = (Action.SUBMIT, Action.RETRY)
_GOT_A_JOB = frozenset({"submitted", "adopted"})
_PHASES = {"refreshing": "polling known jobs", "waiting": "waiting for jobs"}


class RatesColumn(ProgressColumn):
    """``12.5 files/s, 3.4 MB/s``: the task's count and its ``bytes`` field over its elapsed time."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed  # a finished bar's rate stays
        if not elapsed or not task.completed:
            return Text("")
        rates = [f"{task.completed / elapsed:,.1f} {task.fields.get('unit', 'files')}/s"]
        if task.fields.get("bytes"):
            rates.append(f"{decimal(int(task.fields['bytes'] / elapsed))}/s")
        return Text(", ".join(rates), style="progress.data.speed")


class EtaColumn(TimeRemainingColumn):
    """Time left, once the total is known; nothing while it is not."""

    def render(self, task: Task) -> Text:
        return super().render(task) if task.total is not None else Text("")


class RunBars:
    """Bars for objects listed and planned, submissions (one per collection when there are several),
    and job polls (refresh, then ``--wait``).

    A context manager; while it is open, the ``orchestrator`` logger's stderr lines are printed above
    the bars instead of through them. ``clock`` paces the drawing and times the rates and ETAs;
    without ``auto_refresh`` the bars are drawn only when the counts are (one frame per draw).
    """

    def __init__(self, console: Console | None = None, *, max_submissions: int | None = None,
                 interval: float = 0.1, clock: Callable[[], float] = time.monotonic,
                 auto_refresh: bool = True) -> None:
        self._console = console if console is not None else Console(stderr=True)
        self._limit = max_submissions
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last = 0.0
        self._listed = self._listed_bytes = 0
        self._listing_over = False
        self._to_submit: Counter[str] = Counter()  # per collection
        self._got_job: Counter[str] = Counter()
        self._job_bytes: Counter[str] = Counter()
        self._other: Counter[str] = Counter()  # outcomes without a job: failed, deferred, invalid, ...
        self._jobs: tuple[str, int, int] | None = None
        self._progress = Progress(TextColumn("{task.description:<22}", table_column=Column(no_wrap=True)),
                                  BarColumn(), MofNCompleteColumn(), RatesColumn(), TimeElapsedColumn(),
                                  EtaColumn(), TextColumn("{task.fields[note]}", table_column=Column(
                                      no_wrap=True, overflow="ellipsis", ratio=1)),
                                  console=self._console,
                                  redirect_stdout=False, redirect_stderr=False, get_time=clock,
                                  auto_refresh=auto_refresh)
        self._auto = auto_refresh
        self._tasks: dict[str, TaskID] = {}
        self._rerouted: list[tuple[logging.StreamHandler[IO[str]], IO[str]]] = []

    def __enter__(self) -> RunBars:
        self._progress.start()
        for handler in logging.getLogger("orchestrator").handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
                self._rerouted.append((handler, handler.stream))
                handler.setStream(_LogLines(self._console, handler.stream))
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._listing_over = True  # whatever was listed is all there is
            self._draw()
        self._progress.stop()
        for handler, stream in self._rerouted:
            handler.flush()
            handler.setStream(stream)

    # -- the run's events (RunObserver) -----------------------------------------------------------

    def planned(self, item: PlanItem) -> None:
        with self._lock:
            self._listed += 1
            self._listed_bytes += item.obj.size
            if item.action in _TO_SUBMIT and item.route is not None:
                self._to_submit[item.route.collection] += 1
            self._tick()

    def listed(self) -> None:
        """Every source is listed: the totals are known from now on."""
        with self._lock:
            self._listing_over = True
            self._draw()

    def submitted(self, item: PlanItem, outcome: object) -> None:
        collection = item.route.collection if item.route is not None else ""
        with self._lock:
            if str(outcome) in _GOT_A_JOB:
                self._got_job[collection] += 1
                self._job_bytes[collection] += item.obj.size
            elif str(outcome) != "not-started":
                self._other[str(outcome)] += 1
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
        over = self._listing_over
        if self._jobs is not None:
            phase, done, total = self._jobs
            # while this run still submits, the jobs it will wait for are not all known: no total (no
            # 0/0 that grows, no ETA) until the listing is over
            self._bar(f"jobs:{phase}", _PHASES.get(phase, phase), done,
                      total if phase != "waiting" or over else None, unit="jobs")
        if self._listed:
            self._bar("listed", "listed and planned", self._listed, self._listed if over else None,
                      size=self._listed_bytes)
        if sum(self._to_submit.values()):
            wanted = sum(self._to_submit.values())
            total = min(wanted, self._limit) if self._limit is not None else wanted
            note = ", ".join(f"{n} {what}" for what, n in sorted(self._other.items()))
            if self._limit is not None and wanted > self._limit:
                note = ", ".join(filter(None, [note, f"{wanted - self._limit} left for the next run"]))
            self._bar("submitted", "submitted (got a job)", sum(self._got_job.values()),
                      total if over else None, size=sum(self._job_bytes.values()), note=note)
            if len(self._to_submit) > 1:
                for collection in sorted(self._to_submit):
                    wanted = self._to_submit[collection]
                    self._bar(f"submitted:{collection}", f"  -> {collection}", self._got_job[collection],
                              wanted if over and self._limit is None else None,
                              size=self._job_bytes[collection])
        if not self._auto:
            self._progress.refresh()

    def _bar(self, key: str, description: str, completed: int, total: int | None, *, size: int = 0,
             unit: str = "files", note: str = "") -> None:
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(description, total=total, bytes=size, unit=unit,
                                                       note=note)
        self._progress.update(self._tasks[key], description=description, completed=completed, total=total,
                              bytes=size, note=note)


class _LogLines(io.TextIOBase):
    """A log handler's stream while the bars are drawn: each whole line is printed above the bars, as
    it is (never wrapped at the terminal's width: a long URL stays one line to copy or grep)."""

    def __init__(self, console: Console, file: IO[str]) -> None:
        super().__init__()
        self._console = console
        self._file = file
        self._buffer = ""

    def write(self, text: str) -> int:
        *lines, self._buffer = (self._buffer + text).split("\n")
        for line in lines:
            self._console.print(Text(line), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            self._console.print(Text(self._buffer), soft_wrap=True)
            self._buffer = ""

    def fileno(self) -> int:
        return self._file.fileno()

    def isatty(self) -> bool:
        return self._file.isatty()
