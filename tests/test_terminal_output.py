"""Object keys may hold control characters: `plan`, `ls`, `status`, `show` and the log lines print them
escaped, so that a key cannot clear the screen, move the cursor or fake a line; JSON output is escaped
by JSON itself."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli.logs import TextFormatter
from orchestrator.cli.main import cli
from orchestrator.ledger.factory import open_ledger
from orchestrator.models import Action, PlanItem, Route, StoredObject
from orchestrator.terminal import printable

EVIL = ("clear\x1b[2J", "fake\rsubmit    forged", "bell\x07", "rtl\u202egpj", "c1\x9b31m")


@pytest.fixture
def evil(put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path]) -> Path:
    """A bucket whose keys hold control characters, and a ledger that has refused each of them."""
    urls = put_objects([f"embeddings/{name}.parquet" for name in EVIL], b"PAR1")
    path = write_manifest(settings={"preflight": "off"})
    with open_ledger(path.with_name(path.stem + ".ledger.sqlite")) as ledger:
        for name in EVIL:
            obj = StoredObject(url=f"s3://b/{name}", bucket="b", key=name, relative_key=name, size=1,
                               version="v1", modified=0.0)
            claim = ledger.begin_submission(PlanItem(obj, 0, Action.SUBMIT, "new object", Route("c", None)))
            assert claim is not None
            ledger.refuse(claim.row, f"server said: no such file {name}", permanent=True)
    assert len(urls) == len(EVIL)
    return path


def assert_escaped(text: str) -> None:
    assert not any(c in text for c in "\x1b\x07\u202e\x9b\r"), text
    lines = text.splitlines()
    assert not any(line.startswith("submit    forged") for line in lines), text
    assert any(e in text for e in ("\\x1b[2J", "\\u202e", "\\r")), text


@pytest.mark.parametrize("args", [["plan"], ["ls"], ["status"], ["show", "s3://b/clear\x1b[2J"],
                                  ["show", "s3://b/fake\rsubmit    forged"]])
def test_control_characters_in_keys_are_escaped(evil: Path, args: list[str]) -> None:
    result = CliRunner().invoke(cli, [args[0], str(evil), *args[1:]])
    assert result.exit_code in (0, 1), result.output
    assert_escaped(result.output)


def test_json_output_keeps_keys_exact(evil: Path) -> None:
    result = CliRunner().invoke(cli, ["plan", str(evil), "--json"])
    urls = {json.loads(line)["url"].rsplit("/", 1)[1] for line in result.stdout.splitlines()}
    assert urls == {f"{name}.parquet" for name in EVIL}


def test_log_lines_are_escaped() -> None:
    record = logging.LogRecord("orchestrator", logging.WARNING, __file__, 1, "%s: refused: %s",
                               ("s3://b/clear\x1b[2J", "bad\nline"), None)
    record.created = 1_796_000_000.25
    assert TextFormatter().format(record) == \
        "2026-11-30T00:53:20.250+00:00 warning: s3://b/clear\\x1b[2J: refused: bad\\nline"


@pytest.mark.parametrize(("raw", "shown"), [
    ("plain é ü 日本", "plain é ü 日本"), ("\x00\x1f\x7f", "\\x00\\x1f\\x7f"),
    ("\u2066x\u2069", "\\u2066x\\u2069"), ("\t\r\n", "\\t\\r\\n"),
])
def test_printable(raw: str, shown: Any) -> None:
    assert printable(raw) == shown
