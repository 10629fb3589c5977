"""Every snippet of the README and the docs site is run or validated, so that none goes stale:

- YAML: parses; a manifest (or a fragment of one, completed with a base manifest) passes
  ``orchestrator validate`` with the variables it names set; other YAML (alert rules) parses.
- shell and cron lines: every ``orchestrator`` command names a real command and real options (click's
  own definitions), every ``make`` target exists, every ``pip``/``pipx install`` names this
  distribution with extras it declares.
- Python: compiles (the Python API example is also run against the fake API, in test_examples.py).
- JSON: parses.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from orchestrator.cli.main import cli
from orchestrator.config import extras
from orchestrator.targets.registry import CAPABILITIES

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[a-z]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S)
MANIFEST_KEYS = {"version", "target", "credentials", "sources", "settings", "ledger", "schema_files"}
BASE: dict[str, Any] = {
    "version": 1,
    "target": {"type": "zilliz-v2", "cluster_id": "inxx-1", "api_key": "${DOCS_API_KEY}"},
    "credentials": {"access_key": "${DOCS_ACCESS_KEY}", "secret_key": "${DOCS_SECRET_KEY}"},
    "sources": [{"url": "s3://lake/embeddings/", "collection": "articles"}],
}


def snippets(lang: str) -> list[Any]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group("lang") == lang:
                body = re.sub(rf"^{match.group('indent')}", "", match.group("body"), flags=re.M)
                line = text[:match.start()].count("\n") + 1
                where = f"{page.relative_to(ROOT)}:{line}"
                found.append(pytest.param(body, id=where))
    return found


def test_the_pages_hold_snippets_of_each_kind() -> None:
    assert len(snippets("yaml")) >= 12 and len(snippets("sh")) >= 10
    assert snippets("python") and snippets("cron") and snippets("json")


# -- YAML --------------------------------------------------------------------------------------------

def completed(doc: dict[str, Any]) -> dict[str, Any]:
    """A manifest fragment (a target, a ledger line, a settings block) inside a valid base manifest."""
    if "version" in doc:
        return doc
    merged = {**BASE, **doc}
    target_type = merged["target"].get("type") if isinstance(merged["target"], dict) else None
    if "credentials" not in doc and target_type in CAPABILITIES and not CAPABILITIES[target_type].credentials:
        del merged["credentials"]
    return merged


@pytest.mark.parametrize("body", snippets("yaml"))
def test_yaml_snippet_is_valid(body: str, tmp_path: Path) -> None:
    doc = yaml.safe_load(body)  # the four one-line examples with ${VAR} unquoted in {...} failed here
    assert isinstance(doc, dict), "a YAML snippet is a mapping"
    if not set(doc) & MANIFEST_KEYS:
        return  # not a manifest (alert rules): parsing is the check
    for name in (doc.get("schema_files") or {}).values():  # the describe outputs it names
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text('{"collectionName": "articles", "fields": []}')
    manifest = tmp_path / "nightly.yaml"
    manifest.write_text(yaml.safe_dump(completed(doc), sort_keys=False))
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", manifest.read_text()))
    env = {name: f"dummy-{name.lower()}" for name in names}
    result = CliRunner().invoke(cli, ["validate", str(manifest)], env=env)
    assert result.exit_code == 0, result.output


# -- shell and cron ------------------------------------------------------------------------------------

MAKE_TARGETS = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def commands_of(line: str) -> list[list[str]]:
    """The simple commands of one shell line (``&&``, ``;`` and ``|`` split it; comments dropped)."""
    line = re.sub(r"\s\d?>>?(&\d|\s*\S+)", " ", line)  # redirections: >> run.log, 2>&1
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    out: list[list[str]] = [[]]
    for word in lexer:
        if word in ("&&", ";", "|", "||"):
            out.append([])
        else:
            out[-1].append(word)
    return [c for c in out if c]


def check_orchestrator(args: list[str]) -> None:
    command: click.Command = cli
    path = ["orchestrator"]
    words = list(args)
    options = {"--version", "--help"}
    while words:
        word = words.pop(0)
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            params = {o: p for p in command.params if isinstance(p, click.Option) for o in p.opts}
            assert name in params or name in options, f"{' '.join(path)}: no option {name}"
            if name in params and not params[name].is_flag and "=" not in word:
                words.pop(0)  # its value
        elif isinstance(command, click.Group) and word in command.commands:
            command = command.commands[word]
            path.append(word)
        else:
            assert not isinstance(command, click.Group), f"{' '.join(path)}: no command {word}"
    assert not isinstance(command, click.Group) or args in (["--version"], []), f"{args}: no command"


def check_line(line: str) -> None:
    for words in commands_of(line):
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            words = words[1:]  # VAR=value before the command
        if not words:
            continue
        program = words[0]
        if program == "orchestrator" or program.endswith("/bin/orchestrator"):
            check_orchestrator(words[1:])
        elif program == "make":
            assert set(words[1:]) <= MAKE_TARGETS, f"no make target {words[1:]}"
        elif program.endswith(("pip", "pipx")) and words[1:2] == ["install"]:
            for requirement in words[2:]:
                check_requirement(requirement)


def check_requirement(requirement: str) -> None:
    if requirement.startswith("-") or requirement in ("build",):
        return
    name, _, rest = requirement.partition("[")
    wheel = Path(name).name
    if wheel.endswith(".whl"):
        assert wheel.startswith(f"{PROJECT['name'].replace('-', '_')}-{PROJECT['version']}-"), requirement
    else:
        assert name == PROJECT["name"], f"{requirement}: the distribution is {PROJECT['name']}"
    for extra in rest.rstrip("]").split(",") if rest else []:
        assert extra in PROJECT["optional-dependencies"], f"{requirement}: no extra {extra}"


def shell_lines(body: str) -> list[str]:
    text = body.replace("\\\n", " ")
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("body", snippets("sh"))
def test_shell_snippet_names_real_commands_and_options(body: str) -> None:
    for line in shell_lines(body):
        check_line(line)


@pytest.mark.parametrize("body", snippets("cron"))
def test_cron_snippet_names_real_commands_and_options(body: str) -> None:
    for line in shell_lines(body):
        fields = line.split(None, 5)
        assert len(fields) == 6, f"a cron line has five time fields and a command: {line}"
        check_line(fields[5])


def test_the_checks_catch_what_they_are_for() -> None:
    for wrong in ("orchestrator runn m.yaml", "orchestrator run m.yaml --wiat", "make demoo",
                  "pip install orchestrator", "pipx install 'milvus-import-orchestrator[lite]'",
                  "orchestrator ledger m.yaml"):
        with pytest.raises(AssertionError):
            check_line(wrong)
    check_line("cd /srv && . ./env && .venv/bin/orchestrator --json-log run m.yaml --wait-lock 60 "
               ">> run.log 2>&1")
    assert PROJECT["name"] == extras.DISTRIBUTION


# -- Python and JSON -----------------------------------------------------------------------------------

@pytest.mark.parametrize("body", snippets("python"))
def test_python_snippet_compiles(body: str) -> None:
    compile(body, "snippet", "exec")


@pytest.mark.parametrize("body", snippets("json"))
def test_json_snippet_parses(body: str) -> None:
    json.loads(body)
