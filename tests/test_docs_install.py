"""Install as the docs say: the wheel built with ``python -m build``, installed into a fresh virtualenv
with no extras, runs ``orchestrator --version`` and a small run (a local folder into the fake Zilliz
v2 API over loopback); a manifest that needs a missing extra is refused naming the extra. And the
Milvus Lite the ``milvus`` extra pins is the release the tests run with."""

from __future__ import annotations

import fcntl
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from orchestrator.cli.main import cli
from tests.conftest import API_KEY, parquet_bytes
from tests.fakes.zilliz_v2 import FakeZillizV2

ROOT = Path(__file__).parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
pytestmark = pytest.mark.timeout(900)  # a build and an install from the package index


def run(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a fresh virtualenv holding the wheel and nothing else (no extras): made once
    per test session, the pytest-xdist workers sharing it (the session's folder, under a lock)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:  # no xdist: this session's own folder
        return build_and_install(tmp_path_factory.mktemp("wheel"))
    shared = tmp_path_factory.getbasetemp().parent / "wheel"  # the session's folder, above the workers'
    shared.mkdir(exist_ok=True)
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / "venv" / "bin" / "orchestrator"
        return done.parent if done.exists() else build_and_install(shared)


def build_and_install(work: Path) -> Path:
    source = work / "source"  # a copy: building in the worktree would leave build/ and egg-info there
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "orchestrator", source / "orchestrator",
                    ignore=shutil.ignore_patterns("__pycache__"))
    built = run([sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(source)])
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel,) = (work / "dist").glob("*.whl")
    assert wheel.name.startswith(PROJECT["name"].replace("-", "_") + "-" + PROJECT["version"])
    venv = work / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)])
    assert made.returncode == 0, made.stderr
    # without the test run's PYTHONPATH: a checkout on it (its egg-info) reads to pip as the project
    # installed already, and pip would install its dependencies and skip the wheel itself
    pip = run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(wheel)],
              env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert pip.returncode == 0, pip.stderr[-3000:]
    return venv / "bin"


def clean_env(**extra: str) -> dict[str, str]:
    """No PYTHONPATH or virtualenv of the test run leaks into the installed command."""
    keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "TMPDIR", "SYSTEMROOT")}
    return {**keep, "PATH": "/usr/bin:/bin", **extra}


def test_the_installed_command_prints_its_version(installed: Path) -> None:
    done = run([str(installed / "orchestrator"), "--version"], env=clean_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"orchestrator, version {PROJECT['version']}"
    listed = run([str(installed / "pip"), "list", "--format=freeze"], env=clean_env())
    names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert PROJECT["name"] in names
    assert not names & {"pymilvus", "milvus-lite", "psycopg", "azure-storage-blob"}  # no extra came along


def test_a_small_run_from_the_installed_command(installed: Path, tmp_path: Path) -> None:
    fake = FakeZillizV2(api_key=API_KEY).start()
    try:
        (tmp_path / "lake").mkdir()
        for name in ("a.parquet", "b.parquet"):
            (tmp_path / "lake" / name).write_bytes(parquet_bytes())
        manifest = tmp_path / "nightly.yaml"
        manifest.write_text(yaml.safe_dump({
            "version": 1, "target": fake.manifest_target(),
            "credentials": {"access_key": "${IMPORT_ACCESS_KEY}", "secret_key": "${IMPORT_SECRET_KEY}"},
            "sources": [{"url": "lake", "collection": "articles"}],
            "settings": {"min_age_s": 0, "job_list_lag_s": 0},
        }))
        env = clean_env(ZILLIZ_API_KEY=API_KEY, IMPORT_ACCESS_KEY="a-123456", IMPORT_SECRET_KEY="s-123456")
        command = str(installed / "orchestrator")
        done = run([command, "run", str(manifest), "--wait", "--poll-interval", "0.2"], env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        summary = r"^summary: submitted=2 .* jobs_completed=2 .* exit=0 "
        assert re.search(summary, done.stdout, re.M), done.stdout
        assert len(fake.jobs) == 2
        again = run([command, "run", str(manifest)], env=env, timeout=120)
        assert again.returncode == 0 and " submitted=0 " in again.stdout and " skipped=2 " in again.stdout
        assert len(fake.jobs) == 2
    finally:
        fake.stop()


@pytest.mark.parametrize(("doc", "place", "extra"), [
    ({"target": {"type": "milvus-lite", "uri": "demo.db"}, "sources": [{"url": "lake", "collection": "a"}]},
     "target.type", "milvus"),
    ({"target": {"type": "milvus-grpc", "endpoint": "http://localhost:19530"},
      "sources": [{"url": "lake", "collection": "a"}]}, "target.type", "milvus"),
    ({"target": {"type": "milvus-lite", "uri": "demo.db"},
      "sources": [{"url": "az://lake/emb/", "account": "acct1", "collection": "a"}]},
     "sources[0].url", "azure"),
    ({"target": {"type": "milvus-lite", "uri": "demo.db"}, "sources": [{"url": "lake", "collection": "a"}],
      "ledger": "postgresql://loader@db:5432/imports"}, "ledger", "postgres"),
    ({"target": {"type": "milvus-lite", "uri": "demo.db"},
      "sources": [{"url": "gs://lake/emb/", "collection": "a", "discovery": "events",
                   "queue": "projects/my-project/subscriptions/lake-events"}]},
     "sources[0].queue", "gcs-events"),
])
def test_a_manifest_that_needs_a_missing_extra_names_it(
    installed: Path, tmp_path: Path, doc: dict[str, object], place: str, extra: str,
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, **doc}))
    done = run([str(installed / "orchestrator"), "validate", str(manifest)], env=clean_env())
    assert done.returncode == 2
    assert f"m.yaml: {place}: " in done.stderr
    assert f"needs the optional '{extra}' extra" in done.stderr
    assert f"pip install '{PROJECT['name']}[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_ledger_copy_to_postgresql_without_the_extra_names_it(installed: Path, tmp_path: Path) -> None:
    done = run([str(installed / "orchestrator"), "ledger", "copy", str(tmp_path / "a.sqlite"),
                "postgresql://loader@db:5432/imports?schema=nightly"], env=clean_env())
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"pip install '{PROJECT['name']}[postgres]'" in done.stderr


LITE = importlib.metadata.version("milvus-lite")


def pinned(package: str) -> str:
    (requirement,) = [r for r in PROJECT["optional-dependencies"]["milvus"] if r.startswith(package)]
    return requirement


@pytest.mark.parametrize("version", [LITE], ids=[f"milvus-lite {LITE}"])
def test_milvus_lite_is_the_pinned_release(version: str, tmp_path: Path) -> None:
    """The test names the release it ran with; the pin in pyproject.toml is that release."""
    assert pinned("milvus-lite") == f"milvus-lite=={version}"
    (tmp_path / "lake" / "articles").mkdir(parents=True)
    (tmp_path / "lake" / "articles" / "a.parquet").write_bytes(parquet_bytes(rows=5))
    manifest = tmp_path / "lite.yaml"
    manifest.write_text(yaml.safe_dump({
        "version": 1, "target": {"type": "milvus-lite", "uri": "./lite.db", "create_collection": True},
        "sources": [{"url": "lake", "pattern": "(?P<coll>[a-z_]+)/", "collection": "{coll}"}],
        "settings": {"min_age_s": 0}}))
    first = CliRunner().invoke(cli, ["run", str(manifest), "--wait"])
    assert first.exit_code == 0, first.output
    assert "submitted=1 " in first.output and "jobs_completed=1 " in first.output
    again = CliRunner().invoke(cli, ["run", str(manifest)])  # the database file is opened again
    assert again.exit_code == 0 and "submitted=0 " in again.output and "skipped=1 " in again.output


def test_make_demo_installs_only_what_the_demo_needs() -> None:
    """``make demo`` needs Python and make: no apt, no npm, no test tools, only the milvus extra."""
    planned = run(["make", "-n", "-B", "demo"], cwd=ROOT, timeout=60)
    assert planned.returncode == 0, planned.stderr
    assert "apt-get" not in planned.stdout and "npm" not in planned.stdout
    installs = [line for line in planned.stdout.splitlines()
                if "pip install" in line and "--upgrade pip" not in line]
    assert installs == [".venv/bin/pip install --quiet -e '.[milvus]'"], installs
    scripts = re.findall(r"\.venv/bin/python (scripts/\S+\.py)", planned.stdout)
    assert scripts, planned.stdout
    allowed = set(sys.stdlib_module_names) | {"orchestrator", "pyarrow", "pymilvus", "__future__"}
    for script in scripts:
        imported = re.findall(r"^(?:from|import) ([a-z_]+)", (ROOT / script).read_text(), re.M)
        assert set(imported) <= allowed, (script, set(imported) - allowed)
