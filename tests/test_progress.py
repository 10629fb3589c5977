"""The run's progress bars (rich) on a terminal console, timed by a fake clock: rates, ETAs, unknown
totals drawn as unknown, submissions counted when they got a job, one bar per collection."""

from __future__ import annotations

import io
import logging
import re
import sys

from rich.console import Console
from rich.text import Text

from orchestrator.cli.progress import RunBars
from orchestrator.models import Action, PlanItem, Route, StoredObject


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def item(n: int, collection: str = "articles", size: int = 2_000_000) -> PlanItem:
    obj = StoredObject(url=f"s3://b/{n}.parquet", bucket="b", key=f"{n}.parquet", relative_key=f"{n}.parquet",
                       size=size, version="e", modified=0.0)
    return PlanItem(obj, 0, Action.SUBMIT, "new object", Route(collection, None))


class Screen:
    """The frames a console received since the last look, as plain text."""

    def __init__(self) -> None:
        self.out = io.StringIO()
        self.console = Console(file=self.out, force_terminal=True, width=200)
        self._seen = 0

    def since(self) -> str:
        text = self.out.getvalue()
        new, self._seen = text[self._seen:], len(text)
        return Text.from_ansi(new).plain


def line(frame: str, label: str) -> str:
    """The last drawn line starting with ``label``."""
    found = [ln for ln in frame.splitlines() if ln.strip().startswith(label)]
    assert found, frame
    return found[-1]


def test_rates_eta_and_unknown_totals() -> None:
    clock, screen = Clock(), Screen()
    with RunBars(screen.console, clock=clock, interval=0, auto_refresh=False) as bars:
        for n in range(10):
            clock.now += 0.5
            bars.planned(item(n))
        listing = screen.since()
        # the listing goes on: no total yet, so neither bar is drawn as 10/10 (full)
        assert "10/?" in line(listing, "listed and planned")
        assert "0/?" in line(listing, "submitted (got a job)")
        # 10 files of 2 MB in the 4.5 s since the first was listed
        assert "2.2 files/s, 4.4 MB/s" in line(listing, "listed and planned")
        bars.listed()
        for n in range(4):
            clock.now += 1.0
            bars.submitted(item(n), "submitted")
        clock.now += 1.0
        bars.submitted(item(4), "failed")
        frame = screen.since()
        submitted = line(frame, "submitted (got a job)")
        assert "4/10" in submitted  # counted when they got a job: the refusal is beside, not in it
        assert "1 failed" in submitted
        assert "10/10" in line(frame, "listed and planned")
        assert re.search(r"\d:\d\d:\d\d", submitted.split("files/s", 1)[1]), submitted  # an ETA
    assert "10/10" in line(screen.since(), "listed and planned")


def test_one_bar_per_collection_and_what_is_left_for_the_next_run() -> None:
    clock, screen = Clock(), Screen()
    with RunBars(screen.console, clock=clock, interval=0, auto_refresh=False, max_submissions=3) as bars:
        for n in range(5):
            clock.now += 1
            bars.planned(item(n, "articles" if n < 3 else "authors"))
        bars.listed()
        for n in (0, 3, 1):
            clock.now += 1
            bars.submitted(item(n, "articles" if n < 3 else "authors"), "submitted")
        frame = screen.since()
    total = line(frame, "submitted (got a job)")
    assert "3/3" in total and "2 left for the next run" in total
    assert "2/?" in line(frame, "-> articles") and "1/?" in line(frame, "-> authors")


def test_one_collection_has_no_breakdown_and_jobs_have_their_unit() -> None:
    clock, screen = Clock(), Screen()
    with RunBars(screen.console, clock=clock, interval=0, auto_refresh=False) as bars:
        bars.planned(item(0))
        bars.listed()
        bars.jobs("waiting", 0, 4)
        clock.now += 2
        bars.jobs("waiting", 3, 4)
        frame = screen.since()
    assert "->" not in frame
    assert "3/4" in line(frame, "waiting for jobs") and "1.5 jobs/s" in line(frame, "waiting for jobs")


def test_a_finished_bar_keeps_its_rate() -> None:
    clock, screen = Clock(), Screen()
    with RunBars(screen.console, clock=clock, interval=0, auto_refresh=False) as bars:
        for n in range(10):
            clock.now += 0.5
            bars.planned(item(n))
        bars.listed()
        finished = line(screen.since(), "listed and planned")
        clock.now += 600  # long after the listing ended, the jobs are still polled
        bars.jobs("refreshing", 1, 4)
        later = line(screen.since(), "listed and planned")
    assert "10/10" in finished and "2.2 files/s, 4.4 MB/s" in finished, finished
    assert "2.2 files/s, 4.4 MB/s" in later, later


def test_waiting_for_jobs_has_no_total_while_submitting_then_one_with_an_eta() -> None:
    clock, screen = Clock(), Screen()
    with RunBars(screen.console, clock=clock, interval=0, auto_refresh=False) as bars:
        bars.planned(item(0))
        bars.jobs("waiting", 0, 0)  # nothing submitted yet: the total is not known, not 0
        first = line(screen.since(), "waiting for jobs")
        assert "0/?" in first and "0/0" not in first, first
        clock.now += 2
        bars.jobs("waiting", 1, 3)  # the run still submits: 3 is not the total yet
        assert "1/?" in line(screen.since(), "waiting for jobs")
        bars.listed()  # every job this run waits for is known now: the total stays, the rate makes an ETA
        clock.now += 2
        bars.jobs("waiting", 2, 4)
        clock.now += 2
        bars.jobs("waiting", 3, 4)
        frame = line(screen.since(), "waiting for jobs")
    assert "3/4" in frame, frame
    assert re.search(r"\d:\d\d:\d\d\s+\d:\d\d:\d\d", frame), frame  # elapsed, then an ETA


def test_nothing_wraps_at_160_columns() -> None:
    clock = Clock()
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    logger = logging.getLogger("orchestrator")
    handler = logging.StreamHandler(sys.stderr)
    logger.addHandler(handler)
    long_url = "s3://bucket/" + "a" * 150 + ".parquet"
    try:
        with RunBars(console, clock=clock, interval=0, auto_refresh=False, max_submissions=1) as bars:
            for n in range(3):
                bars.planned(item(n))
            bars.listed()
            for outcome in ("failed", "deferred", "invalid", "uncertain", "queued-for-later-by-the-window"):
                clock.now += 1
                bars.submitted(item(0), outcome)
            logger.warning("%s: refused: a reason that makes this line 180 characters long", long_url)
    finally:
        logger.removeHandler(handler)
    plain = Text.from_ansi(out.getvalue()).plain
    assert f"{long_url}: refused: a reason that makes this line 180 characters long" in plain.splitlines()
    submitted = [ln for ln in plain.splitlines() if "submitted (got a job)" in ln]
    assert submitted and all(len(ln) <= 160 for ln in plain.splitlines() if long_url not in ln), plain
    wrapped = ("left for", "next run", "1 uncertain")
    assert not any(ln.strip().startswith(wrapped) for ln in plain.splitlines()), plain
