"""The examples under examples/ work: each Python one's callable runs for real against the fakes (the
scheduler is stubbed only for its decorators), the CLI invocations in the manifests parse, and shell
completion produces its script."""

from __future__ import annotations

import configparser
import importlib.util
import shlex
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from orchestrator.cli import cli
from tests.fakes.zilliz import FakeZilliz

EXAMPLES = Path(__file__).parent.parent / "examples"


def stub(monkeypatch: pytest.MonkeyPatch, name: str, **attributes: Any) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    monkeypatch.setitem(sys.modules, name, module)


def load_example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_airflow_task_loads_a_manifest(
    monkeypatch: pytest.MonkeyPatch, put_objects: Callable[..., list[str]],
    write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    dags: list[str] = []

    def dag(**options: Any) -> Callable[[Callable[[], None]], Callable[[], None]]:
        assert options["max_active_runs"] == 1 and options["catchup"] is False
        return lambda f: lambda: dags.append(f.__name__)  # building the DAG does not run the task

    stub(monkeypatch, "airflow")
    stub(monkeypatch, "airflow.decorators", dag=dag, task=lambda f: f)
    example = load_example("airflow_dag")
    assert dags == ["orchestrator_load"]
    urls = put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    manifest = write_manifest()

    result = example.load_manifest(str(manifest), poll_interval_s=0)
    assert result["submitted"] == 2 and result["jobs_completed"] == 2
    assert sorted(fake_api.created_urls()) == sorted(urls)
    again = example.load_manifest(str(manifest), poll_interval_s=0)
    assert again["submitted"] == 0 and len(fake_api.creates()) == 2  # rerunning the task is safe
    fake_api.fail_objects = {"c.parquet": "field 'vector' type mis-match"}
    put_objects(["embeddings/c.parquet"])
    with pytest.raises(RuntimeError, match=r"jobs_failed=1 .*exit=1"):  # the task fails, and says why
        example.load_manifest(str(manifest), poll_interval_s=0)


def test_the_dagster_asset_loads_a_manifest(
    monkeypatch: pytest.MonkeyPatch, put_objects: Callable[..., list[str]],
    write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    class Definitions:
        def __init__(self, *, assets: list[Any]) -> None:
            self.assets = assets

    stub(monkeypatch, "dagster", asset=lambda **_options: lambda f: f, Definitions=Definitions)
    example = load_example("dagster_asset")
    assert example.defs.assets == [example.nightly_embeddings]
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest()
    monkeypatch.setattr(example, "MANIFEST", str(manifest))
    assert example.load(str(manifest), poll_interval_s=0) == {
        "submitted": 1, "skipped": 0, "jobs_completed": 1}
    # the asset itself, as Dagster would materialise it (its jobs finish at once: no poll interval)
    assert example.nightly_embeddings() == {"submitted": 0, "skipped": 1, "jobs_completed": 0}


def parses(argv: list[str]) -> None:
    """``argv`` (after the program name) is a valid command line: click parses it without running it."""
    assert argv[0] == "orchestrator"
    command = cli.get_command(click_context(), argv[1])
    assert command is not None, argv
    command.make_context(argv[1], argv[2:])


def click_context() -> Any:
    import click
    return click.Context(cli)


def test_the_kubernetes_cronjob_runs_one_at_a_time_and_keeps_its_ledger() -> None:
    claim, cronjob = yaml.safe_load_all((EXAMPLES / "kubernetes-cronjob.yaml").read_text())
    assert claim["kind"] == "PersistentVolumeClaim" and cronjob["kind"] == "CronJob"
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    parses(container["command"] + container["args"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["ledger"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert {m["name"] for m in container["volumeMounts"]} == set(volumes)


def test_the_systemd_units() -> None:
    service = configparser.ConfigParser(interpolation=None, strict=False)
    service.read(EXAMPLES / "systemd" / "orchestrator-nightly.service")
    assert service["Service"]["Type"] == "oneshot"
    command = shlex.split(service["Service"]["ExecStart"])
    parses(["orchestrator", *command[1:]])
    assert command[0].endswith("/orchestrator")
    assert "75" in service["Service"]["SuccessExitStatus"].split()
    timer = configparser.ConfigParser(interpolation=None)
    timer.read(EXAMPLES / "systemd" / "orchestrator-nightly.timer")
    assert timer["Timer"]["OnCalendar"] and timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_script_and_completions(shell: str) -> None:
    runner = CliRunner()
    script = runner.invoke(cli, [], prog_name="orchestrator",
                           env={"_ORCHESTRATOR_COMPLETE": f"{shell}_source"})
    assert script.exit_code == 0
    assert "_orchestrator_completion" in script.output and "_ORCHESTRATOR_COMPLETE" in script.output
    if shell == "bash":
        done = runner.invoke(cli, [], prog_name="orchestrator", env={
            "_ORCHESTRATOR_COMPLETE": "bash_complete", "COMP_WORDS": "orchestrator retry m.yaml --ex",
            "COMP_CWORD": "3"})
        assert done.output.split() == ["plain,--exact"]
        commands = runner.invoke(cli, [], prog_name="orchestrator", env={
            "_ORCHESTRATOR_COMPLETE": "bash_complete", "COMP_WORDS": "orchestrator s", "COMP_CWORD": "1"})
        assert commands.output.split() == ["plain,show", "plain,status"]


def test_the_docs_python_api_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    page = (EXAMPLES.parent / "docs" / "reference" / "python-api.md").read_text()
    code = page.split("```python\n", 1)[1].split("```", 1)[0]
    put_objects(["embeddings/a.parquet"])
    fake_api.fail_objects = {"a.parquet": "field 'vector' type mis-match"}
    monkeypatch.chdir(write_manifest().parent)  # nightly.yaml, as the example names it
    exec(compile(code, "python-api.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("submit s3://") and out[1] == "{'submit': 1}"
    assert out[2].startswith("summary: submitted=1 ") and "jobs_failed=1" in out[2]
    assert out[3].startswith("failed s3://") and "type mis-match" in out[3]


def test_the_installed_command_prints_its_completion_script() -> None:
    """As the README says to run it: the installed ``orchestrator`` script, not a test runner."""
    command = Path(sys.executable).parent / "orchestrator"
    done = subprocess.run([str(command)], capture_output=True, text=True, timeout=60, check=False,
                          env={"_ORCHESTRATOR_COMPLETE": "bash_source", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "complete -o nosort -F _orchestrator_completion orchestrator" in done.stdout
