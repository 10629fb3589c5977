"""The run's progress bars (rich) on a terminal console, timed by a fake clock: rates, ETAs, unknown
totals drawn as unknown, submissions counted when they got a job, one bar per collection."""

from __future__ import annotations

import io
import re

from rich.console import Console
from rich.text import Text

from orchestrator.models import Action, PlanItem, Route, StoredObject
from orchestrator.progress import RunBars


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
        bars.jobs("waiting", 0, 4)
        clock.now += 2
        bars.jobs("waiting", 3, 4)
        frame = screen.since()
    assert "->" not in frame
    assert "3/4" in line(frame, "waiting for jobs") and "1.5 jobs/s" in line(frame, "waiting for jobs")
