"""The dependency direction of STYLE.md, held by reading the imports of every module.

The package's folders are stages, in the order the data flows; a module may import its own folder and
the layers below it, never one above (``LAYERS``, bottom first)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "orchestrator"

# bottom first; a name is a folder (a stage) or a top-level module
LAYERS = [
    {"errors", "models", "redact", "terminal", "paths"},
    {"config"},
    {"sources"},
    {"preflight"},
    {"targets"},
    {"ledger"},
    {"planning"},
    {"jobs"},
    {"run"},
    {"report"},
    {"api"},
    {"cli", "__main__"},
]


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(("." * node.level) + (node.module or ""))
            if node.module is None:  # from . import api
                found.update(("." * node.level) + alias.name for alias in node.names)
    return found


def modules_importing(name: str) -> set[str]:
    return {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
            if any(i == name or i.startswith(name + ".") for i in imports(p))}


def stage(path: Path) -> str:
    """The layer name of a module: its folder, or its own name at the top."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def imported_stages(path: Path) -> set[str]:
    """The stages a module's own imports reach (relative imports resolved; absolute ones too)."""
    here = list(path.relative_to(PACKAGE).parent.parts)
    reached: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[: len(here) - (node.level - 1)]
            names = [*base, *(node.module.split(".") if node.module else [])]
            targets = [names] if node.module else [[*names, alias.name] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("orchestrator."):
            targets = [node.module.split(".")[1:]]  # type: ignore[union-attr]
        elif isinstance(node, ast.Import):
            targets = [a.name.split(".")[1:] for a in node.names if a.name.startswith("orchestrator.")]
        else:
            continue
        reached.update(t[0] for t in targets if t and t[0] != "__init__")
    return reached


def layer_of(name: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if name in names)


def test_every_module_is_in_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).as_posix() != "__init__.py":
            assert any(stage(path) in names for names in LAYERS), path


def test_nothing_imports_upward() -> None:
    """Each stage imports itself and the stages below it: the planner knows no HTTP, the ledger no
    click, the sources no targets."""
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).as_posix() == "__init__.py":
            continue
        mine = layer_of(stage(path))
        for reached in imported_stages(path):
            assert layer_of(reached) <= mine, (path.relative_to(PACKAGE).as_posix(), "imports", reached)


def test_the_layer_check_can_fail() -> None:
    """The check above reads relative imports the way Python does (one dot: this folder)."""
    assert imported_stages(PACKAGE / "run" / "pipeline.py") >= {"jobs", "ledger", "sources"}
    assert "run" not in imported_stages(PACKAGE / "ledger" / "transitions.py")
    assert layer_of("run") > layer_of("ledger")


def test_click_only_in_cli_and_yaml_only_in_config() -> None:
    assert {m.split("/")[0] for m in modules_importing("click")} == {"cli"}
    assert modules_importing("yaml") == {"config/yamlfile.py"}


def test_one_module_per_driver() -> None:
    assert modules_importing("psycopg") == {"ledger/postgres.py"}
    assert modules_importing("prometheus_client") == {"report/metrics.py"}
    assert modules_importing("sqlite3") == {"ledger/sqlite.py"}


def test_a_ledger_backend_is_chosen_in_one_place() -> None:
    """Only the ledger's factory picks a backend, by the location's type: a new backend is its module
    and one line there."""
    backends = {f"{dots}{name}" for dots in (".", "..ledger.") for name in ("sqlite", "postgres")}
    assert set().union(*(modules_importing(b) for b in backends)) == {"ledger/factory.py"}


def test_pure_planning_knows_no_io() -> None:
    pure = [*(PACKAGE / "planning").glob("*.py"), PACKAGE / "preflight" / "rules.py",
            PACKAGE / "config" / "globs.py", PACKAGE / "config" / "urls.py", PACKAGE / "config" / "pgurl.py",
            PACKAGE / "config" / "env.py", PACKAGE / "jobs" / "evidence.py",
            *(PACKAGE / "sources").glob("*_spec.py")]  # a store's spec imports its client only when built
    banned = {"httpx", "boto3", "botocore", "google", "azure", "sqlite3", "psycopg", "click", "yaml"}
    for path in pure:
        assert not {i.split(".")[0] for i in imports(path)} & banned, path


def test_the_library_surface_is_the_top() -> None:
    """``api`` is what the CLI calls; the run, its wiring and the job lifecycle never call back up."""
    assert modules_importing("..api") == {"cli/main.py", "cli/views.py"}
    assert modules_importing(".api") == set()
