"""The reference pages' tables, generated from the code while the docs site builds (an MkDocs hook:
``hooks:`` in mkdocs.yml). A page holds a marker such as ``<!-- generated: settings -->``; the hook puts
the table in its place, so the declaration in the code stays the one place a setting, a command, an
option, a state, a log event or a metric is described. ``tests/test_docs_reference.py`` fails when one
of them has no description.

Run it alone to print one table: ``python scripts/docs_reference.py settings``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

import orchestrator
from orchestrator import api, errors, models
from orchestrator.cli.exits import EXIT_FAILED, EXIT_LOCKED, EXIT_USAGE
from orchestrator.cli.main import cli
from orchestrator.config import extras, manifest
from orchestrator.config.source_section import store_keys
from orchestrator.ledger import states
from orchestrator.report.run_metrics import run_metrics
from orchestrator.run.state import EXIT_DEADLINE, RunReport
from orchestrator.run.wiring import PLUGINS, parse_manifest
from orchestrator.targets.registry import CAPABILITIES

PACKAGE = Path(orchestrator.__file__).parent
MARKER = re.compile(r"<!-- generated: ([a-z-]+) -->")


def cell(text: object) -> str:
    """Text for one cell of a markdown table."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def code(text: str) -> str:
    """``text`` as inline code, whatever backticks it holds."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def table(head: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# -- settings: the fields of manifest.Settings --------------------------------------------------------

def settings_rows() -> list[tuple[str, str, str, str, str]]:
    hints = typing.get_type_hints(manifest.Settings)
    rows = []
    for spec in dataclasses.fields(manifest.Settings):
        kind, meta = hints[spec.name], spec.metadata
        if isinstance(kind, type) and issubclass(kind, models.enum.Enum):
            allowed = ", ".join(f"`{m.value}`" for m in kind)
            type_name = "choice"
        else:
            bounds = []
            if meta["low"] is not None:
                bounds.append(f">= {number(meta['low'])}")
            if meta["above"] is not None:
                bounds.append(f"> {number(meta['above'])}")
            if meta["high"] is not None:
                bounds.append(f"<= {number(meta['high'])}")
            if meta["pattern"] is not None:
                bounds.append(f"a version (`{meta['pattern']}`), quoted")
            allowed = ", ".join(bounds)
            type_name = {int: "integer", float: "number"}.get(kind, "text" if meta["pattern"] else
                                                              re.sub(r"\s*\|\s*None", " or null", str(kind)))
            if "None" in str(kind) and type_name in ("integer", "number", "text"):
                type_name += " or null"
        default = spec.default
        shown = "null" if default is None else f"`{getattr(default, 'value', default)}`"
        rows.append((f"`{spec.name}`", type_name, shown, allowed, meta["doc"]))
    return rows


def settings_table() -> str:
    return table(("setting", "type", "default", "allowed", "meaning"), list(settings_rows()))


# -- the command line, from click -----------------------------------------------------------------

def commands(group: click.Group = cli, prefix: str = "orchestrator") -> Iterator[tuple[str, click.Command]]:
    for name in sorted(group.commands):
        command = group.commands[name]
        yield f"{prefix} {name}", command
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix} {name}")


def cli_reference() -> str:
    out = []
    for path, command in commands():
        ctx = click.Context(command, info_name=path)
        out.append(f"### `{path}`\n")
        out.append(f"```text\n{command.get_usage(ctx)}\n```\n")
        out.append(inspect.cleandoc(command.help or "") + "\n")
        rows = []
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden:
                continue
            record = param.get_help_record(ctx)
            names = record[0] if record else ", ".join(param.opts)
            default = param.get_default(ctx, call=False)
            shown = "" if param.is_flag or default is None or isinstance(default, tuple) else f"`{default}`"
            help_text = record[1] if record else ""
            rows.append((f"`{names}`", help_text, shown))
        if rows:
            out.append(table(("option", "meaning", "default"), rows))
    return "\n".join(out)


# -- states, actions and outcomes: the enums of models.py, with their comments ------------------------

def enum_rows(kind: type[models.enum.Enum]) -> list[tuple[str, str]]:
    """Each member's value and the comment beside its declaration (the closed enums of models.py)."""
    source = inspect.getsource(kind)
    rows = []
    for member in kind:
        value = re.escape(str(member.value))
        found = re.search(rf"^\s*{member.name} = \"{value}\"(?:\s*#\s*(.*))?$", source, re.M)
        rows.append((f"`{member.value}`", (found.group(1) if found and found.group(1) else "")))
    return rows


def states_table() -> str:
    return table(("state", "meaning"), enum_rows(models.ObjectState))


def transitions_table() -> str:
    """The state graph of ``orchestrator/ledger/states.py``: each transition, then each state's ways out."""
    rows = [(f"`{t.name}`", ", ".join(f"`{s}`" for s in ([states.NEW] if t.new else []) + list(t.sources)),
             f"`{t.target.value}`", t.meaning) for t in states.TRANSITIONS.values()]
    width = max(len(s) for s in [states.NEW, *(s.value for s in models.ObjectState)])
    lines = []
    for source in [states.NEW, *(s.value for s in models.ObjectState)]:
        out: dict[str, list[str]] = {}
        for t in states.TRANSITIONS.values():
            if (source, t.target.value) in t.edges():
                out.setdefault(t.target.value, []).append(t.name)
        ways = ", ".join(f"{target} ({', '.join(names)})" for target, names in out.items())
        lines.append(f"{source:<{width}}  -> {ways or '(none: a new version is a new import)'}")
    return (table(("transition", "from", "to", "meaning"), rows) + "\n```text\n" + "\n".join(lines)
            + "\n```\n")


def actions_table() -> str:
    return table(("plan action", "meaning"), enum_rows(models.Action))


def outcomes_table() -> str:
    return table(("submission outcome", "meaning"), enum_rows(models.Outcome))


# -- log events: every logging call that names an event -------------------------------------------

def _template(node: ast.expr) -> str | None:
    """The text of a message argument: a constant, an f-string (fields as ``{...}``), or %-formatting."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.sub(r"%[-0-9.]*[sdrfg]", "…", node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "…" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left), _template(node.right)
        return None if left is None or right is None else left + right
    return None


def _calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


# events named at run time: the expression, and the names it takes (run/submitter.py logs a create
# call's outcome)
DYNAMIC_EVENTS = {"outcome.value": [models.Outcome.SUBMITTED.value, models.Outcome.ADOPTED.value]}


def log_events() -> dict[str, dict[str, Any]]:
    """event -> its levels, modules and message templates, found in the package's logging calls."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in _calls(tree):
            if not isinstance(call.func, ast.Attribute):
                continue
            for kw in call.keywords:
                if kw.arg != "extra" or not isinstance(kw.value, ast.Dict):
                    continue
                for key, value in zip(kw.value.keys, kw.value.values, strict=True):
                    if not isinstance(key, ast.Constant) or key.value != "event":
                        continue
                    names = [str(value.value)] if isinstance(value, ast.Constant) else \
                        DYNAMIC_EVENTS.get(ast.unparse(value), [ast.unparse(value)])
                    for name in names:
                        entry = found.setdefault(name, {"levels": set(), "modules": set(), "messages": []})
                        entry["levels"].add(call.func.attr)
                        entry["modules"].add(path.relative_to(PACKAGE.parent).as_posix())
                        text = _template(call.args[0]) if call.args else None
                        if text and text not in entry["messages"]:
                            entry["messages"].append(text)
    return found


def log_events_table() -> str:
    rows = []
    for event, entry in sorted(log_events().items()):
        levels = ", ".join(sorted(entry["levels"]))
        messages = "<br>".join(code(m) for m in entry["messages"][:3])
        rows.append((f"`{event}`", levels, messages, ", ".join(f"`{m}`" for m in sorted(entry["modules"]))))
    return table(("event", "level", "message (… is filled in)", "logged by"), rows)


def json_log_fields() -> str:
    from orchestrator.cli.logs import JsonFormatter
    fields = ", ".join(f"`{f}`" for f in ("ts", "level", "message", *JsonFormatter._FIELDS))
    return f"Fields an event may carry: {fields}.\n"


# -- metrics: what report.run_metrics makes of a run ------------------------------------------------

def metrics_table() -> str:
    fake = typing.cast(manifest.Manifest, SimpleNamespace(path=Path("nightly.yaml")))
    rows = []
    for m in run_metrics(fake, RunReport(), objects={}, seconds=0, now=0, last_success_at=None):
        labels = sorted({k for labels, _ in m.samples for k in labels} - {"manifest"})
        values = sorted({labels[k] for labels, _ in m.samples for k in labels if k != "manifest"})
        shown = ", ".join(f"`{k}`" for k in labels) + (f" ({', '.join(values)})" if values else "")
        rows.append((f"`{m.name}`", shown, m.help))
    return table(("metric (a gauge, labelled `manifest`)", "labels", "meaning"), rows)


# -- export columns: the fields of models.LedgerRecord -----------------------------------------------

COLUMN_MEANINGS = {
    "url": "the object's native URL (`s3://bucket/key`, `gs://...`, `az://account/container/key`, `file://...`)",
    "version": "the object version: S3 ETag, GCS generation, Azure ETag, or a local file's fingerprint",
    "source": "the URL of the manifest source that listed it",
    "collection": "the destination collection",
    "partition": "the destination partition (empty: none)",
    "state": "the ledger state (see Ledger states)",
    "job_id": "the import job's id on the server",
    "attempts": "create calls made for it",
    "failures": "failures counted towards `settings.max_job_failures`",
    "error": "the last error, as the server or the pre-flight check said it",
    "size": "bytes",
    "updated_at": "the last transition, ISO 8601 in UTC",
    "rows": "rows in the file, from its parquet footer (when the pre-flight read it)",
    "imported_rows": "rows the server said it imported",
    "target": "the destination's target identity (API family, cluster or endpoint, database)",
    "sent_as": "the object as the create call named it (URL or key)",
    "server_at": "the server's clock when the row was claimed (Unix time; empty: unknown)",
    "key_gen": "the idempotency key's generation (new after a failure or a `retry`)",
    "id": "the ledger row's id",
    "batch": "the claim that sent it with others in one job (empty: a job of its own)",
    "alone": "proven to fail (named by the server, or failed alone after a job of several failed): sent "
             "alone from then on",
    "part": "the part of a failed job of several it is sent again in (halves, until the failing file "
            "stands alone; empty: any group)",
    "load_id": "the run's load it was last sent in (`settings.visibility: per_run`; empty: per job)",
    "found": "how its object was found: `listing`, `event` or `inventory` (empty: before ledger schema 7, "
             "a listing)",
}


def export_table() -> str:
    return table(("column", "meaning"), [(f"`{name}`", COLUMN_MEANINGS.get(name, ""))
                                         for name in models.LedgerRecord._fields])


# -- exit codes -----------------------------------------------------------------------------------

EXIT_CODES = {
    0: "nothing failed",
    EXIT_FAILED: "something failed (an object, a job, a source, the ledger's storage, the run as a whole): "
                 "the message says what",
    EXIT_USAGE: "the manifest or the command line is wrong: every problem found, one line each; nothing ran",
    EXIT_LOCKED: "another run holds the ledger",
    EXIT_DEADLINE: "`run --deadline` came: the run stopped early and printed its summary (as GNU `timeout` "
                   "exits)",
    130: "stopped by Ctrl-C (SIGINT)",
    143: "stopped by SIGTERM",
    129: "stopped by SIGHUP",
}


def exit_codes_table() -> str:
    return table(("exit", "meaning"), [(f"`{code}`", text) for code, text in EXIT_CODES.items()])


# -- the Python API -------------------------------------------------------------------------------

PUBLIC_API = ("validate", "ls", "plan", "check", "run", "status", "retry", "show", "export", "write_metrics",
              "check_metrics_file", "copy_ledger", "ledger_location")


def python_api() -> str:
    out = []
    for name in PUBLIC_API:
        function: Callable[..., Any] = getattr(api, name)
        signature = re.sub(r"\s+", " ", str(inspect.signature(function)))
        doc = inspect.getdoc(function) or ""
        out.append(f"### `api.{name}`\n\n```python\n{name}{signature}\n```\n\n{doc}\n")
    return "\n".join(out)


# -- errors: the exception tree and every message the code raises -------------------------------------

def error_tree() -> str:
    doc = inspect.getdoc(errors) or ""
    tree = doc.split("\n\n")[1]
    return f"```text\n{tree}\n```\n"


_RAISERS = {"fail", "note", "_fail"}


def error_messages() -> list[tuple[str, str, str]]:
    """(module, kind, message) for every error message the package raises or prints: the exceptions it
    raises with a message, the manifest reader's problems, the CLI's own ``error:`` lines."""
    found: list[tuple[str, str, str]] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE.parent).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in _calls(tree):
            func = call.func
            name = func.id if isinstance(func, ast.Name) else \
                func.attr if isinstance(func, ast.Attribute) else ""
            if name.endswith("Error") and name in vars(errors) and call.args:
                text = _template(call.args[-1] if name == "ManifestError" else call.args[0])
                kind = name
            elif name in _RAISERS and len(call.args) >= 2 and isinstance(func, ast.Attribute) \
                    and isinstance(func.value, ast.Name) and func.value.id in ("r", "self"):  # the reader's
                text, kind = _template(call.args[1]), "ManifestError"
            elif name == "_fail" and call.args:
                text, kind = _template(call.args[0]), "cli"
            else:
                continue
            if text and (module, kind, text) not in found:
                found.append((module, kind, text))
        for kind, text in _described(tree, module):
            if (module, kind, text) not in found:
                found.append((module, kind, text))
    return found


_TABLE_NAME = re.compile(r"CODES|PROBLEMS|ERRORS|MESSAGES")


def _described(tree: ast.Module, module: str) -> Iterator[tuple[str, str]]:
    """Messages kept apart from their ``raise``: the texts a ``describe_*_error`` function returns (a
    store's errors, said as a source error) and module tables of messages by error code."""
    kind = "SourceError" if "/sources/" in module else "LedgerError" if "ledger" in module else "message"
    for node in tree.body:
        describes = isinstance(node, ast.FunctionDef) and re.fullmatch(r"describe_\w+_error", node.name)
        if isinstance(node, ast.FunctionDef) and describes:
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and ret.value is not None:
                    text = _template(ret.value)
                    if text:
                        yield kind, text
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and any(
                isinstance(t, ast.Name) and _TABLE_NAME.search(t.id) for t in node.targets):
            for value in node.value.values:
                text = _template(value)
                if text:
                    yield kind, text.replace("{error}", "…")


EXIT_OF = {"ManifestError": EXIT_USAGE, "LockHeldError": EXIT_LOCKED}


def error_kind(kind: str) -> str:
    """What an error class means, from its docstring in errors.py (and the exit, where it is its own)."""
    cls = vars(errors).get(kind)
    if not isinstance(cls, type):
        return "printed by the command line" if kind == "cli" else "a message the error above carries"
    meaning = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
    return f"{meaning} (exit {EXIT_OF[kind]})" if kind in EXIT_OF else meaning


def error_catalogue() -> str:
    rows = [(code(text), f"`{kind}`: {error_kind(kind)}", f"`{module}`")
            for module, kind, text in error_messages()]
    return table(("message (… is filled in)", "error: what it means", "raised in"), rows)


def extras_table() -> str:
    rows = [(f"`{extra}`", ", ".join(f"`{m}`" for m in modules), f"`{extras.install_hint(extra)}`")
            for extra, modules in extras.EXTRAS.items()]
    return table(("extra", "brings", "install"), rows)


# -- target and source keys: what the manifest reader accepts, asked of the reader itself ------------

def known_keys(doc: dict[str, Any], place: str) -> list[str]:
    """The keys the reader accepts at ``place`` (``target`` or ``sources[0]``), from its own "unknown
    key" message for a key no manifest has."""
    try:
        parse_manifest(doc, file="m.yaml", base_dir=Path("/"), stem="m", environ={})
    except errors.ManifestError as exc:
        for problem in exc.problems:
            if problem.path == f"{place}.zz_probe":
                return re.findall(r"[a-z_]+", problem.problem.split("known keys:", 1)[1])
    raise AssertionError(f"the reader did not refuse {place}.zz_probe")


def target_keys(target_type: str) -> list[str]:
    doc = {"version": 1, "target": {"type": target_type, "zz_probe": 1}, "sources": []}
    return [k for k in known_keys(doc, "target") if k != "type"]


def source_keys() -> list[str]:
    doc = {"version": 1, "target": {"type": "milvus-lite", "uri": "x.db"},
           "sources": [{"url": "lake", "collection": "a", "zz_probe": 1}]}
    return known_keys(doc, "sources[0]")


def target_keys_table() -> str:
    rows = []
    for name, rules in CAPABILITIES.items():
        rows.append((f"`{name}`", ", ".join(f"`{k}`" for k in target_keys(name)),
                     "required" if rules.credentials else "none", "yes" if rules.partitions else "no",
                     "yes" if rules.local_sources else "no", number(rules.files_per_job),
                     "none" if rules.in_process else number(rules.window)))
    return table(("type", "keys", "`credentials`", "partitions", "local folders", "files per job",
                  "jobs in flight (default)"), rows)


def source_keys_table() -> str:
    only = store_keys(PLUGINS.stores)  # keys that only some kinds of source take
    rows = [(f"`{key}`", ", ".join(f"`{s}://`" for s in only[key]) if key in only else "every kind")
            for key in source_keys()]
    return table(("key", "for"), rows)


GENERATORS: dict[str, Callable[[], str]] = {
    "settings": settings_table,
    "cli": cli_reference,
    "states": states_table,
    "transitions": transitions_table,
    "actions": actions_table,
    "outcomes": outcomes_table,
    "log-events": log_events_table,
    "log-fields": json_log_fields,
    "metrics": metrics_table,
    "export-columns": export_table,
    "exit-codes": exit_codes_table,
    "python-api": python_api,
    "error-tree": error_tree,
    "error-catalogue": error_catalogue,
    "extras": extras_table,
    "target-keys": target_keys_table,
    "source-keys": source_keys_table,
    "bench-table": str,  # the recorded table stays, unless make bench's results replace it (fill)
}


# -- the benchmarks' table: from `make bench`'s results when they are here --------------------------

BENCH_RESULTS = PACKAGE.parent / "bench" / "results" / "latest.json"
BENCH_BLOCK = re.compile(r"<!-- generated: bench-table -->\n\n```text\n.*?```\n", re.S)


def bench_table() -> str | None:
    """The table ``make bench`` printed, with the machine, from its results file; None without one."""
    if not BENCH_RESULTS.exists():
        return None
    sys.path.insert(0, str(PACKAGE.parent))
    from bench.__main__ import rows
    from bench.__main__ import table as bench_text
    results = json.loads(BENCH_RESULTS.read_text(encoding="utf-8"))
    m = results["machine"]
    return (f"Measured by `make bench` on {m['cpu']}, {m['cores']} cores, {m['system']}, Python "
            f"{m['python']}:\n\n```text\n{bench_text(rows(results))}\n```\n")


def fill(markdown: str) -> str:
    """``markdown`` with every marker replaced by its generated text; an unknown marker is an error."""
    measured = bench_table() if BENCH_BLOCK.search(markdown) else None
    if measured is not None:
        markdown = BENCH_BLOCK.sub(lambda _m: measured, markdown)
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise KeyError(f"unknown generated section {name!r} (known: {', '.join(GENERATORS)})")
        return GENERATORS[name]()
    return MARKER.sub(one, markdown)


def on_page_markdown(markdown: str, **_kwargs: Any) -> str:
    """The MkDocs hook."""
    return fill(markdown)


if __name__ == "__main__":
    sys.stdout.write(GENERATORS[sys.argv[1]]())
