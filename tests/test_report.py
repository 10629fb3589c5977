"""``orchestrator report``: one self-contained HTML page of the ledger, for SQLite and PostgreSQL
ledgers, loaded in a real headless browser (Debian's Chromium): no console error, no network, every
chart drawn, hostile object keys and server messages shown as text, never run as markup."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli.main import cli
from tests.fakes.zilliz import FakeZilliz

CHROMIUM = shutil.which("chromium")  # Debian's, installed by `make install`
HOSTILE_PREFIX = "emb</script><script>document.body.dataset.pwned='key'</script>/"
HOSTILE_REASON = "<img src=x onerror=\"document.body.dataset.pwned='reason'\"> & \u2028 -->"
CHARTS = ("imported", "rows", "queue", "durations", "reasons", "collections", "sources")


def chromium(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None, "Debian's chromium is not installed: `make install` installs it"
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-extensions", "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def console_messages(stderr: str) -> list[str]:
    """What the page wrote to its console (errors, warnings, CSP violations, uncaught exceptions)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture
def loaded(put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path],
           fake_api: FakeZilliz, ledger_url: str | None) -> Path:
    """A manifest whose ledger holds completed, failed (a hostile reason) and invalid objects, from two
    sources, one under a hostile prefix."""
    urls = put_objects([f"embeddings/{i:02}.parquet" for i in range(6)] + [f"{HOSTILE_PREFIX}x.parquet"])
    put_objects(["embeddings/broken.parquet"], b"not parquet")
    fake_api.fail_objects = {"03.parquet": HOSTILE_REASON, "/x.parquet": "bad vectors"}
    bucket = urls[0].split("/")[2]
    manifest = write_manifest(ledger=ledger_url, sources=[
        {"url": f"s3://{bucket}/embeddings/", "collection": "articles"},
        {"url": f"s3://{bucket}/{HOSTILE_PREFIX}", "collection": "authors"}])
    result = CliRunner().invoke(cli, ["run", str(manifest), "--wait", "--poll-interval", "0"])
    assert result.exit_code == 1, result.output  # the failures and the invalid file
    return manifest


def report(manifest: Path, out: Path) -> str:
    result = CliRunner().invoke(cli, ["report", str(manifest), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"report: {out} (")
    return out.read_text(encoding="utf-8")


@pytest.mark.parametrize("ledger_url", ["sqlite", "postgresql"], indirect=True)
def test_the_report_is_self_contained_and_escapes_the_ledger(loaded: Path, tmp_path: Path) -> None:
    page = report(loaded, tmp_path / "report.html")
    assert page.startswith("<!DOCTYPE html>")
    # nothing fetched at view time: no src or href anywhere, a policy that forbids the network
    assert not re.search(r"\s(src|href)\s*=", page.split('id="report-data"')[0])
    assert "default-src 'none'" in page
    data = page.split('<script type="application/json" id="report-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data and "\u2028" not in data  # the JSON cannot end its element
    assert "\\u003c/script\\u003e\\u003cscript\\u003e" in data and "\\u003cimg src=x" in data
    assert page.count("<script") == 2  # the data and the page's own script, nothing injected


@pytest.mark.parametrize("ledger_url", ["sqlite", "postgresql"], indirect=True)
def test_the_report_loads_in_chromium_without_errors_and_draws_every_chart(
    loaded: Path, tmp_path: Path,
) -> None:
    page = tmp_path / "report.html"
    report(loaded, page)
    done = chromium("--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    dom = done.stdout
    assert 'data-drawn="true"' in dom  # the script ran to its end
    for chart in CHARTS:
        marks = re.search(rf'<figure id="{chart}"[^>]*data-marks="(\d+)"', dom)
        assert marks is not None and int(marks.group(1)) > 0, (chart, dom[:3000])
    assert "pwned" not in dom.split("<body", 1)[1].split(">", 1)[0]  # no injected script or handler ran
    assert "&lt;/script&gt;&lt;script&gt;" in dom  # the hostile key, as text in the table
    assert "<img src=" not in dom.split('id="report-data"')[0]  # the hostile reason, as text too


def test_a_screenshot_of_the_report(loaded: Path, tmp_path: Path) -> None:
    page, shot = tmp_path / "report.html", tmp_path / "report.png"
    report(loaded, page)
    done = chromium(f"--screenshot={shot}", "--window-size=1280,1800", "--hide-scrollbars", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1280, 1800)
    assert shot.stat().st_size > 30_000  # charts, not a blank page (a blank one is about 5 KB)


def test_an_empty_ledger_gives_a_page_that_says_so(write_manifest: Callable[..., Path],
                                                   tmp_path: Path) -> None:
    page = tmp_path / "empty.html"
    text = report(write_manifest(), page)
    assert "no events recorded yet" in text
    done = chromium("--dump-dom", page.as_uri())
    assert console_messages(done.stderr) == []
    assert 'data-drawn="true"' in done.stdout and "empty ledger" in done.stdout
    assert all(re.search(f'<figure id="{c}"[^>]*data-marks="0"', done.stdout) for c in CHARTS)


def test_an_unwritable_report_is_one_error_line(loaded: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(loaded), "-o", str(tmp_path / "missing" / "r.html")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {tmp_path / 'missing' / 'r.html'}: cannot write the report (")
