"""The reference pages are generated from the code (scripts/docs_reference.py, an MkDocs hook): each
declaration must carry its description, and each generated table must be on a page."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import click
import pytest

from orchestrator import models
from orchestrator.cli.exits import EXIT_FAILED, EXIT_LOCKED, EXIT_USAGE
from orchestrator.config.manifest import Settings
from orchestrator.ledger import states
from orchestrator.run.state import EXIT_DEADLINE

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "scripts" / "docs_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_reference"] = module
    spec.loader.exec_module(module)
    return module


gen = load_generator()


def page_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md")))


def test_every_generated_table_is_on_a_page_and_every_marker_is_known() -> None:
    used = set(gen.MARKER.findall(page_text()))
    assert used == set(gen.GENERATORS), set(gen.GENERATORS) ^ used
    for page in DOCS.rglob("*.md"):
        assert "<!-- generated:" not in gen.fill(page.read_text(encoding="utf-8")).replace(
            "<!-- generated: bench-table -->", ""), page


def test_every_setting_is_declared_with_its_meaning() -> None:
    rows = gen.settings_rows()
    assert [r[0].strip("`") for r in rows] == [f.name for f in dataclasses.fields(Settings)]
    for name, type_name, default, _allowed, meaning in rows:
        assert meaning and type_name and default, name
    table = gen.settings_table()
    assert "`objects_per_job` | integer | `1` | >= 1, <= 1,024 |" in table
    assert "`preflight` | choice | `enforce` | `off`, `warn`, `enforce` |" in table


def test_every_command_and_option_has_help() -> None:
    paths = []
    for path, command in gen.commands():
        paths.append(path)
        assert command.help, f"{path} has no help"
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{path} {param.opts[0]} has no help"
    assert {"orchestrator run", "orchestrator validate", "orchestrator ledger copy"} <= set(paths)
    reference = gen.cli_reference()
    for path in paths:
        assert f"### `{path}`" in reference
    assert "| `--max-submissions INTEGER RANGE` | Submit at most N objects in this run." in reference


def test_every_state_action_and_outcome_is_explained() -> None:
    for kind in (models.ObjectState, models.Action, models.Outcome):
        rows = gen.enum_rows(kind)
        assert len(rows) == len(kind)
        for value, meaning in rows:
            if kind is models.Action and value in ("`submit`", "`skip`"):
                continue  # the obvious two carry no comment
            assert meaning, f"{kind.__name__} {value} has no comment beside its declaration"


def test_the_state_diagram_is_drawn_from_the_transition_table() -> None:
    """Each transition is a row with its meaning, and each edge a way out of its state in the diagram."""
    text = gen.transitions_table()
    for transition in states.TRANSITIONS.values():
        assert f"| `{transition.name}` |" in text and transition.meaning in text, transition.name
    diagram = text.split("```text\n", 1)[1]
    for source, target in states.edges():
        (line,) = [line for line in diagram.splitlines() if line.split()[0] == source]
        assert f" {target} (" in line or f"-> {target} (" in line, (source, target)
    assert "<!-- generated: transitions -->" in (DOCS / "reference" / "ledger.md").read_text()


def test_log_events_are_found_with_their_messages() -> None:
    events = gen.log_events()
    assert {"summary", "submitted", "adopted", "completed", "job-failed", "fatal", "uncertain",
            "stalled"} <= set(events)
    for name, entry in events.items():
        assert entry["levels"] <= {"debug", "info", "warning", "error"}, name
    assert "`retry`" in gen.log_events_table()


def test_metrics_export_columns_and_exit_codes() -> None:
    metrics = gen.metrics_table()
    assert "`orchestrator_last_success_timestamp_seconds`" in metrics
    assert "`state` (completed, failed," in metrics
    columns = gen.export_table()
    for name in models.LedgerRecord._fields:
        assert gen.COLUMN_MEANINGS.get(name), f"export column {name} has no meaning"
        assert f"| `{name}` |" in columns
    assert {0, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_DEADLINE, 130, 143, 129} <= set(gen.EXIT_CODES)


def test_python_api_and_error_catalogue() -> None:
    text = gen.python_api()
    for name in gen.PUBLIC_API:
        assert f"### `api.{name}`" in text
    assert "run(manifest: 'Manifest', options: 'RunOptions'" in text or "run(manifest" in text
    messages = gen.error_messages()
    texts = [m for _module, _kind, m in messages]
    assert len(messages) > 150
    assert any("bucket not found" in t for t in texts)  # a store's table of messages
    assert any("quote a value" not in t and "secrets are not accepted literally" in t for t in texts)
    assert any(re.search(r"the disk is full", t) for t in texts)
    assert "OrchestratorError" in gen.error_tree()


def test_every_target_and_source_key_is_described() -> None:
    """Each key the reader accepts is in the generated tables and described in the pages' own text."""
    from orchestrator.targets.registry import BY_TYPE
    described = "\n".join((DOCS / page).read_text(encoding="utf-8") for page in (
        "reference/targets.md", "reference/sources.md", "reference/manifest.md"))
    table = gen.target_keys_table()
    for name in BY_TYPE:
        keys = gen.target_keys(name)
        assert keys and f"| `{name}` | " + ", ".join(f"`{k}`" for k in keys) in table
        for key in keys:
            assert f"`{key}" in described or f" {key}:" in described, f"target {name}: {key} is not described"
    for key in gen.source_keys():
        assert f"`{key}" in described or f" {key}:" in described, f"sources: {key} is not described"
    assert "| `service_account_file` | `gs://` |" in gen.source_keys_table()


def test_the_readme_lists_every_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path, command in gen.commands():
        if not isinstance(command, click.Group):
            assert f"| `{path} " in readme, f"the README's command table lacks {path}"


def test_the_annotated_manifest_shows_every_setting() -> None:
    page = (DOCS / "reference" / "manifest.md").read_text(encoding="utf-8")
    example = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    for spec in dataclasses.fields(Settings):
        assert f"\n  {spec.name}: " in example, f"the annotated manifest lacks settings.{spec.name}"


def test_the_performance_table_comes_from_make_bench_results_when_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    import bench.__main__ as bench_main
    page = (DOCS / "performance.md").read_text(encoding="utf-8")
    monkeypatch.setattr(gen, "BENCH_RESULTS", tmp_path / "absent.json")
    assert "plan       1M new objects: objects/s" in gen.fill(page)  # the recorded table stays
    results = tmp_path / "latest.json"
    results.write_text(json.dumps({"machine": {"cpu": "TestCPU", "cores": 2, "system": "Linux",
                                               "python": "3.11.7"}}))
    monkeypatch.setattr(gen, "BENCH_RESULTS", results)
    monkeypatch.setattr(bench_main, "rows", lambda _results: [("plan", "a measure", 1.5, "< 2", True)])
    filled = gen.fill(page)
    assert "Measured by `make bench` on TestCPU, 2 cores, Linux, Python 3.11.7" in filled
    assert "a measure" in filled and "1M new objects: objects/s" not in filled
