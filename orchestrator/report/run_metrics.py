"""The Prometheus metrics of one run (:mod:`orchestrator.report.metrics` writes and pushes them): its
report's counts, and the ledger's as the run left it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from ..config.manifest import Manifest
from ..models import Action, JobState, ObjectState, Outcome
from ..run.state import RunReport
from ..run.wiring import ledger_exists, manifest_ledger
from . import metrics


def run_metrics(manifest: Manifest, report: RunReport, *, objects: Mapping[str, int], seconds: float,
                now: float, last_success_at: float | None) -> list[metrics.Metric]:
    """The Prometheus metrics of one run (gauges; every sample labelled with the manifest's file name)."""
    label = {"manifest": manifest.path.name}

    def one(name: str, help_text: str, value: float) -> metrics.Metric:
        return metrics.Metric(name, help_text, [(label, value)])

    def by(name: str, help_text: str, key: str, values: Mapping[str, float], keys: Iterable[str],
           ) -> metrics.Metric:
        return metrics.Metric(name, help_text, [({**label, key: k}, values.get(k, 0)) for k in keys])

    jobs = {state: report.refreshed[state] + report.waited[state]
            for state in (JobState.COMPLETED.value, JobState.FAILED.value)}
    return [
        by("orchestrator_objects", "Object versions in the ledger at the end of the run, by state.",
           "state", objects, [s.value for s in ObjectState]),
        by("orchestrator_run_planned_objects", "Objects listed by the run, by the planner's decision.",
           "action", report.planned, [a.value for a in Action]),
        by("orchestrator_run_submissions", "Submissions made by the run, by outcome.",
           "outcome", report.outcomes, [o.value for o in Outcome]),
        one("orchestrator_run_retries",
            "Calls repeated after a transient error (429, 5xx, busy, lost reply).", report.retries),
        one("orchestrator_run_failures", "Objects refused by the server plus jobs that failed, in the run.",
            report.outcomes[Outcome.FAILED] + jobs[JobState.FAILED.value]),
        by("orchestrator_run_jobs_finished", "Jobs seen finishing during the run, by result.",
           "result", jobs, list(jobs)),
        one("orchestrator_jobs_stalled",
            "Running jobs whose progress stood still for settings.stall_after_s.", report.stalled),
        by("orchestrator_run_messages", "Event queue messages the run read (discovery: events), by fate: "
           "received, deleted (all they named is in the ledger), kept (they come back), poison.",
           "fate", report.messages, ["received", "deleted", "kept", "poison"]),
        one("orchestrator_run_source_errors", "Sources that could not be listed in the run.",
            len(report.source_errors)),
        one("orchestrator_run_exit_code", "The run's exit code (0: nothing failed).", report.exit_code()),
        one("orchestrator_run_duration_seconds", "How long the run took.", round(seconds, 3)),
        one("orchestrator_run_end_timestamp_seconds", "When the run ended (Unix time).", round(now, 3)),
        one("orchestrator_last_success_timestamp_seconds",
            "When a run last ended with nothing failed (Unix time; 0: never).",
            round(last_success_at, 3) if last_success_at is not None else 0),
    ]


def final_metrics(manifest: Manifest, report: RunReport, *, seconds: float,
                  clock: Callable[[], float] = time.time) -> list[metrics.Metric]:
    """The run's metrics with the ledger's counts as the run left them."""
    objects: dict[str, int] = {}
    last_success = None
    if ledger_exists(manifest):
        with manifest_ledger(manifest) as ledger:
            objects, last_success = ledger.counts(), ledger.last_success()
    return run_metrics(manifest, report, objects=objects, seconds=seconds, now=clock(),
                       last_success_at=last_success)
