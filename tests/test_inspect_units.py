"""Pure parts of inspecting a ledger: progress bookkeeping and stall detection with an injected clock,
the ledger's aggregates, metrics rendering and atomic writes, the text views' formatting."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.cli import views
from orchestrator.cli.progress import RunBars
from orchestrator.errors import OutputError
from orchestrator.ledger.factory import open_ledger
from orchestrator.models import Action, JobProgress, PlanItem, Route, StoredObject
from orchestrator.report import metrics


def item(n: int, collection: str = "c", source: int = 0) -> PlanItem:
    o = StoredObject(url=f"s3://b/k{n}", bucket="b", key=f"k{n}", relative_key=f"k{n}", size=5,
                     version="e1", modified=0.0)
    return PlanItem(o, source, Action.SUBMIT, "new object", Route(collection, None))


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_progress_changes_reset_the_stall_clock(tmp_path: Path) -> None:
    clock = Clock()
    with open_ledger(tmp_path / "l.sqlite", clock=clock) as ledger:
        for n in (1, 2):
            claim = ledger.begin_submission(item(n))
            assert claim is not None
            ledger.record_job(claim.row, f"job-{n}")
        ledger.note_progress("job-1", 10.0)
        ledger.note_progress("job-2", None)
        clock.now = 1000.0 + 1800
        ledger.note_progress("job-1", 10.0)
        ledger.note_progress("job-2", None)  # no progress reported at all: standing still too
        assert ledger.stalled(1800) == [
            (ledger.get("s3://b/k1", "e1"), JobProgress("job-1", 10.0, 1000.0, 2800.0)),
            (ledger.get("s3://b/k2", "e1"), JobProgress("job-2", None, 1000.0, 2800.0))]
        assert ledger.stalled(1801) == []
        clock.now = 4000.0
        ledger.note_progress("job-1", 20.0)  # it moved: the stall clock starts again
        ledger.note_progress("job-2", None)
        assert [r.job_id for r, _ in ledger.stalled(1800)] == ["job-2"]
        moved = JobProgress("job-1", 20.0, 4000.0, 4000.0)
        assert ledger.job_progress(["job-1", "job-9"]) == {"job-1": moved}
        ledger.complete(2, "job-2")  # only running jobs can be stalled
        assert ledger.stalled(0) == [(ledger.get("s3://b/k1", "e1"), moved)]


def test_aggregates_by_source_and_collection(tmp_path: Path) -> None:
    clock = Clock()
    a, b = "s3://lake-a/", "gs://lake-b/"
    with open_ledger(tmp_path / "l.sqlite", clock=clock, sources=[a, b]) as ledger:
        for n, coll, source in ((1, "a", 0), (2, "a", 0), (3, "b", 1), (4, "b", 1)):
            clock.now += 10
            claim = ledger.begin_submission(item(n, coll, source))
            assert claim is not None
            ledger.record_job(claim.row, f"job-{n}")
        ledger.job_failed(4, "job-4", "bad file")
        assert ledger.group_counts() == [(b, "b", "failed", 1), (b, "b", "submitted", 1),
                                         (a, "a", "submitted", 2)]
        oldest = ledger.oldest_submitted()
        assert {k: r.job_id for k, r in oldest.items()} == {(a, "a"): "job-1", (b, "b"): "job-3"}
        assert ledger.failing(10) == (1, [ledger.get("s3://b/k4", "e1")])
        assert ledger.row_totals() == {(a, "a"): (None, None), (b, "b"): (None, None)}  # no pre-flight here
        claim = ledger.begin_submission(item(5, "a", 0), rows=7)
        assert claim is not None
        ledger.record_job(claim.row, "job-5")
        ledger.complete(claim.row, "job-5", imported_rows=6)
        assert ledger.row_totals()[(a, "a")] == (7, 6)
        assert ledger.last_success() is None
        ledger.note_success()
        assert ledger.last_success() == clock.now


def test_metrics_render_and_escape() -> None:
    text = metrics.render([
        metrics.Metric("m_one", "One thing.", [({}, 3)]),
        metrics.Metric("m_by", 'By "label"\\n', [({"manifest": 'a"b\\c', "state": "x"}, 1.5),
                                                 ({"manifest": "m", "state": "y"}, 1732924021.25)]),
    ])
    assert text == (  # prometheus_client's exposition: floats as Go prints them, labels escaped
        "# HELP m_one One thing.\n# TYPE m_one gauge\nm_one 3.0\n"
        '# HELP m_by By "label"\\\\n\n# TYPE m_by gauge\n'
        'm_by{manifest="a\\"b\\\\c",state="x"} 1.5\nm_by{manifest="m",state="y"} 1.73292402125e+09\n')


def test_metrics_write_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "x.prom"
    path.write_text("old\n")
    metrics.write_atomic(path, "new\n")
    assert path.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["x.prom"]
    (tmp_path / "dir.prom").mkdir()
    with pytest.raises(OutputError, match=r"dir\.prom: a folder, not a regular file: the metrics"):
        metrics.write_atomic(tmp_path / "dir.prom", "x\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.prom", "x.prom"]  # temp file removed


def test_text_formats() -> None:
    assert [views.age(s) for s in (0, 59, 60, 3599, 3600, 7980, 86400 * 3 + 3600 * 4)] == \
        ["0s", "59s", "1m", "59m", "1h00m", "2h13m", "3d4h"]
    assert [views.size(n) for n in (0, 999, 1000, 1_234_567, 5 * 10**12, 7 * 10**15)] == \
        ["0 B", "999 B", "1.0 KB", "1.2 MB", "5.0 TB", "7000.0 TB"]
    assert views.when(0) == "1970-01-01 00:00:00 UTC"
    assert views.when(1.5, millis=True) == "1970-01-01 00:00:01.500 UTC"
    assert views.table(["a", "n"], [["xx", "1"], ["y", "100"]], right={1}) == \
        ["a     n", "xx    1", "y   100"]


def test_bars_draw_on_a_terminal_console() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with RunBars(console, max_submissions=1, interval=0) as bars:
        bars.jobs("refreshing", 2, 2)
        for n in range(3):
            bars.planned(item(n))
        bars.submitted(item(0), "submitted")
    shown = out.getvalue()
    assert "polling known jobs" in shown and "2/2" in shown
    assert "listed and planned" in shown and "3/3" in shown  # listing over: the count is the total
    assert "submitted" in shown and "1/1" in shown  # --max-submissions 1 bounds the bar


def test_rich_and_click_stay_at_the_edge() -> None:
    package = Path(__file__).parent.parent / "orchestrator"
    for path in package.rglob("*.py"):
        text = path.read_text()
        if path.name != "progress.py":
            assert "from rich" not in text and "import rich" not in text, path
        if path.parent.name != "cli":  # the cli/ folder
            assert "import click" not in text, path
