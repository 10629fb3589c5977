"""The dependency direction of STYLE.md, held by reading the imports of every module."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "orchestrator"


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


def test_click_only_in_cli_and_yaml_only_in_manifest() -> None:
    assert modules_importing("click") == {"cli.py"}
    assert modules_importing("yaml") == {"manifest.py"}


def test_one_module_per_driver() -> None:
    assert modules_importing("psycopg") == {"ledger_pg.py"}
    assert modules_importing("prometheus_client") == {"metrics.py"}
    assert modules_importing("sqlite3") == {"ledger.py"}


def test_pure_planning_knows_no_io() -> None:
    for name in ("planner.py", "preflight.py", "globs.py", "urls.py", "pgurl.py"):
        banned = {"httpx", "boto3", "botocore", "google", "sqlite3", "psycopg", "click", "yaml"}
        assert not {i.split(".")[0] for i in imports(PACKAGE / name)} & banned, name


def test_nothing_imports_upward() -> None:
    for path in [*(PACKAGE / "sources").glob("*.py"), *(PACKAGE / "targets").glob("*.py")]:
        for i in imports(path):
            assert not i.startswith(("..api", "..cli", "..submit", "..ledger")), (path.name, i)
            assert ".targets" not in i or path.parent.name == "targets", (path.name, i)


def test_the_library_surface_is_the_top() -> None:
    """``api`` is what the CLI calls; the run, its wiring and the job lifecycle never call back up."""
    assert modules_importing(".api") == {"cli.py", "views.py"}
    for name in ("pipeline.py", "wiring.py", "jobs.py", "submit.py", "run.py"):
        assert not {i for i in imports(PACKAGE / name) if i in (".api", ".cli", ".pipeline")}, name
    assert ".submit" not in imports(PACKAGE / "jobs.py")
