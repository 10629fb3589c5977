"""The examples under examples/ work: the Airflow DAG is parsed by Airflow 3 itself (in a virtualenv of
its own) and its task's function runs against the fakes; the Dagster asset is materialised by Dagster;
the CLI invocations in the manifests parse; shell completion produces its script; the Grafana
dashboard queries only metrics a run writes."""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from orchestrator.cli.main import cli
from tests.conftest import Child
from tests.fakes.zilliz import FakeZilliz

EXAMPLES = Path(__file__).parent.parent / "examples"


ROOT = EXAMPLES.parent
# Airflow 3 in a virtualenv of its own (`make install-airflow`): apache-airflow-task-sdk brings all of
# Airflow, whose pins the project's environment must not share
AIRFLOW_PYTHON = ROOT / ".airflow-venv" / "bin" / "python"
AIRFLOW_CHECK = """
import json, sys
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])  # as Airflow's DAG processor parses the file
assert not bag.import_errors, bag.import_errors
assert not bag.captured_warnings, bag.captured_warnings  # no deprecated (Airflow 2) import
dag = bag.dags["orchestrator_load"]
load = dag.get_task("load")
load_manifest = load.python_callable.__globals__["load_manifest"]  # what the task calls
runs = [load_manifest(sys.argv[2], poll_interval_s=0), load_manifest(sys.argv[2], poll_interval_s=0)]
print("RESULT", json.dumps({"tasks": [t.task_id for t in dag.tasks], "max_active_runs": dag.max_active_runs,
                  "catchup": dag.catchup, "schedule": str(dag.timetable), "runs": runs}))
try:
    load_manifest(sys.argv[3], poll_interval_s=0)
except RuntimeError as exc:  # the task fails, and says why
    print("RESULT", json.dumps({"failed": str(exc)}))
"""


def load_example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_airflow_dag_parses_in_airflow_3_and_its_task_loads_a_manifest(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    tmp_path: Path,
) -> None:
    assert AIRFLOW_PYTHON.exists(), "Airflow's virtualenv is missing: run `make install-airflow`"
    urls = put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    manifest = write_manifest()
    failing = write_manifest(sources=[{"url": urls[0].rsplit("/", 2)[0] + "/bad/", "collection": "articles"}],
                             name="failing.yaml")
    put_objects(["bad/c.parquet"])
    fake_api.fail_objects = {"c.parquet": "field 'vector' type mis-match"}
    done = Child([str(AIRFLOW_PYTHON), "-c", AIRFLOW_CHECK, str(EXAMPLES / "airflow_dag.py"), str(manifest),
                  str(failing)], deadline_s=300, shown="airflow_dag.py under Airflow 3",
                 env={**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"),
                      "ORCHESTRATOR_MANIFEST": str(manifest)}).finish()
    assert done.returncode == 0, done.stderr[-3000:]
    found, failed = (json.loads(line.split(" ", 1)[1]) for line in done.stdout.splitlines()
                     if line.startswith("RESULT "))
    assert found["tasks"] == ["load"] and found["max_active_runs"] == 1 and found["catchup"] is False
    assert "0 * * * *" in found["schedule"]  # @hourly
    first, again = found["runs"]
    assert first["submitted"] == 2 and first["jobs_completed"] == 2
    assert again["submitted"] == 0  # rerunning the task is safe
    assert sorted(fake_api.created_urls()) == sorted([*urls, urls[0].rsplit("/", 2)[0] + "/bad/c.parquet"])
    assert re.search(r"jobs_failed=1 .*exit=1", failed["failed"]), failed


def test_the_dagster_asset_materialises_in_dagster(
    monkeypatch: pytest.MonkeyPatch, put_objects: Callable[..., list[str]],
    write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    import dagster

    example = load_example("dagster_asset")
    assert isinstance(example.defs, dagster.Definitions)
    assert isinstance(example.nightly_embeddings, dagster.AssetsDefinition)
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest()
    monkeypatch.setattr(example, "MANIFEST", str(manifest))
    monkeypatch.setitem(example.load.__kwdefaults__, "poll_interval_s", 0)  # the fake's jobs end at once
    assert example.load(str(manifest), poll_interval_s=0) == {
        "submitted": 1, "skipped": 0, "jobs_completed": 1}
    # the asset itself, materialised by Dagster (nothing new: no job to wait for)
    result = dagster.materialize([example.nightly_embeddings])
    assert result.success
    assert result.output_for_node("nightly_embeddings") == {"submitted": 0, "skipped": 1, "jobs_completed": 0}
    fake_api.refuse_objects = {"b.parquet": (1100, "file not found")}  # refused: exit 1, nothing to wait for
    put_objects(["embeddings/b.parquet"])
    failed = dagster.materialize([example.nightly_embeddings], raise_on_error=False)
    assert not failed.success  # the materialisation fails when the run does


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


def test_the_kubernetes_deployment_follows_one_at_a_time_and_keeps_its_ledger() -> None:
    claim, deployment = yaml.safe_load_all((EXAMPLES / "kubernetes-deployment.yaml").read_text())
    assert claim["kind"] == "PersistentVolumeClaim" and deployment["kind"] == "Deployment"
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    parses(container["command"] + container["args"])
    assert "--follow" in container["args"]
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
    done = Child([str(command)],
                 env={"_ORCHESTRATOR_COMPLETE": "bash_source", "PATH": "/usr/bin:/bin"}).finish()
    assert done.returncode == 0, done.stderr
    assert "complete -o nosort -F _orchestrator_completion orchestrator" in done.stdout


def test_the_grafana_dashboard_queries_only_metrics_a_run_writes(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    tmp_path: Path,
) -> None:
    """Every metric and label the dashboard's queries, legends and variable name is in the exposition
    a real run writes, and every metric written has a panel."""
    from prometheus_client.parser import text_string_to_metric_families

    put_objects(["embeddings/a.parquet"])
    prom = tmp_path / "orchestrator.prom"
    result = CliRunner().invoke(cli, ["run", str(write_manifest()), "--wait", "--poll-interval", "0",
                                      "--metrics-file", str(prom)])
    assert result.exit_code == 0, result.output
    labels = {family.name: {k for sample in family.samples for k in sample.labels}
              for family in text_string_to_metric_families(prom.read_text())}
    dashboard = json.loads((EXAMPLES / "grafana" / "orchestrator-dashboard.json").read_text())
    variables = dashboard["templating"]["list"]
    queries = [(t["expr"], t.get("legendFormat", "")) for p in dashboard["panels"] for t in p["targets"]]
    queries += [(v["definition"], "") for v in variables if v["type"] == "query"]
    used: set[str] = set()
    for expr, legend in queries:
        names = re.findall(r"\borchestrator_[a-z_]+", expr)
        assert names, expr
        for name in names:
            assert name in labels, f"{name} is not a metric a run writes ({sorted(labels)})"
            wanted = set(re.findall(r"(\w+)\s*=~?", expr)) | set(re.findall(r"by \(([\w, ]+)\)", expr))
            wanted |= set(re.findall(r"\{\{(\w+)\}\}", legend))
            wanted |= set(re.findall(r"label_values\(\w+, (\w+)\)", expr))
            wanted = {w.strip() for group in wanted for w in group.split(",")}
            assert wanted <= labels[name], (name, wanted - labels[name])
        used.update(names)
    assert used == set(labels), f"metrics without a panel: {set(labels) - used}"
    assert {"datasource", "manifest"} == {v["name"] for v in variables}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
