"""A Dagster asset whose materialisation is one orchestrator run (with ``--wait``) of a manifest.

Load it with ``dagster dev -f dagster_asset.py`` or add ``nightly_embeddings`` to your Definitions.
Schedule it with a ``ScheduleDefinition`` or an automation condition; orchestrator's ledger makes every
materialisation idempotent (objects imported before are skipped, interrupted calls are reconciled).
"""

from __future__ import annotations

import os

from dagster import Definitions, asset

from orchestrator import api

MANIFEST = os.environ.get("ORCHESTRATOR_MANIFEST", "/opt/loads/nightly.yaml")


def load(path: str | None = None, *, poll_interval_s: float = 30.0) -> dict[str, int]:
    """One run of the manifest (``MANIFEST`` by default), waiting for its jobs; raises (the
    materialisation fails) when anything failed. Returns counts, kept by Dagster as the asset's value."""
    path = path or MANIFEST
    report = api.run(api.validate(path), api.RunOptions(wait=True, poll_interval_s=poll_interval_s))
    if report.exit_code() != 0:
        raise RuntimeError(f"{path}: {report.summary()}")
    return {"submitted": report.outcomes["submitted"], "skipped": report.planned["skip"],
            "jobs_completed": report.waited["completed"] + report.refreshed["completed"]}


@asset(group_name="vector_loads", description="Parquet embeddings imported into the vector database.")
def nightly_embeddings() -> dict[str, int]:
    return load()


defs = Definitions(assets=[nightly_embeddings])
