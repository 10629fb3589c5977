"""An Airflow 3 DAG that loads one manifest every hour through orchestrator's Python API.

Copy this file into your DAGs folder and set ``ORCHESTRATOR_MANIFEST`` (or edit ``MANIFEST``). The
worker that runs the task needs ``pip install milvus-import-orchestrator`` and the manifest's
environment variables (API key, import credentials). The ledger lives beside the manifest unless the
manifest's ``ledger:`` says otherwise: every worker that may run the task must see the same ledger file
(a shared volume), or run the task in one pool of size 1. ``max_active_runs=1`` keeps two runs of the
DAG from waiting on each other's lock; a run that still finds the ledger held fails fast with a clear
message.

Orchestrator's own state is the ledger, not Airflow's: retrying the task (or the whole DAG run) is
always safe; nothing is imported twice.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import dag, task  # Airflow 3; on Airflow 2: from airflow.decorators import ...

from orchestrator import api

MANIFEST = os.environ.get("ORCHESTRATOR_MANIFEST", "/opt/loads/nightly.yaml")


def load_manifest(path: str = MANIFEST, *, poll_interval_s: float = 30.0) -> dict[str, Any]:
    """List, submit, and wait for this run's jobs; fail the task when anything failed. Returns the
    counts (pushed to XCom) for downstream tasks."""
    manifest = api.validate(path)  # raises ManifestError with the file, the key and the problem
    report = api.run(manifest, api.RunOptions(wait=True, poll_interval_s=poll_interval_s, wait_lock_s=60))
    if report.exit_code() != 0:  # failed objects or jobs, held objects, a source not listed...
        raise RuntimeError(f"{path}: {report.summary()}")
    return {"summary": report.summary(), "submitted": report.outcomes["submitted"],
            "jobs_completed": report.waited["completed"] + report.refreshed["completed"]}


@dag(schedule="@hourly", start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False, max_active_runs=1,
     tags=["orchestrator"])
def orchestrator_load() -> None:
    @task
    def load() -> dict[str, Any]:
        return load_manifest()

    load()

    # The same load in a Kubernetes pod, for workers without orchestrator installed (an image with it,
    # the manifest from a ConfigMap, the ledger on a PersistentVolumeClaim; see kubernetes-cronjob.yaml):
    #
    # from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    # KubernetesPodOperator(
    #     task_id="load_in_a_pod", name="orchestrator-load", image="registry.example.com/orchestrator:1",
    #     cmds=["orchestrator"], arguments=["run", "/etc/orchestrator/nightly.yaml", "--wait", "--json-log"],
    #     env_from=[...],  # a Secret with ZILLIZ_API_KEY, IMPORT_ACCESS_KEY, IMPORT_SECRET_KEY
    #     volumes=[...], volume_mounts=[...],  # the manifest and the ledger's PVC
    # )
    #
    # The pod's exit code is the CLI's: 0 fine, 1 something failed, 75 another run holds the ledger.


orchestrator_load()
