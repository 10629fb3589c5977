"""The command line as a contract: help text, exit codes, `python -m orchestrator`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from orchestrator.cli.main import cli
from tests.conftest import Child


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command's path, those of groups (``ledger copy``) included."""
    found: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        found += _commands(command, path) if isinstance(command, click.Group) else [path]
    return found


COMMANDS = _commands(cli)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group) and command.help and len(command.help) > 20
        command = command.commands[name]
    assert isinstance(command, click.Command) and command.help and len(command.help) > 20
    result = CliRunner().invoke(cli, [*path, "--help"])
    arguments = [p.human_readable_name for p in command.params if isinstance(p, click.Argument)]
    assert result.exit_code == 0 and arguments and all(a in result.stdout for a in arguments)


def test_validate_exit_codes(write_manifest: Callable[..., Path], tmp_path: Path) -> None:
    good = CliRunner().invoke(cli, ["validate", str(write_manifest())])
    assert good.exit_code == 0 and "valid" in good.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ntarget: {}\nsources: []\n")
    result = CliRunner().invoke(cli, ["validate", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {bad}: target.type: required key is missing")
    assert result.stdout == ""


def test_usage_errors_exit_2() -> None:
    assert CliRunner().invoke(cli, ["run"]).exit_code == 2
    assert CliRunner().invoke(cli, ["nope"]).exit_code == 2


def test_python_dash_m(tmp_path: Path) -> None:
    done = Child([sys.executable, "-m", "orchestrator", "validate", str(tmp_path / "x.yaml")]).finish()
    assert done.returncode == 2 and "x.yaml: cannot read" in done.stderr
