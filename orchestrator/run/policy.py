"""The one place a run's :class:`~orchestrator.jobs.policy.SubmitPolicy` is built: from the manifest's
settings, what its target can do (its spec's capabilities: files and bytes per job, the job window,
whether its job list lags and forgets), and the run's options."""

from __future__ import annotations

from ..config.manifest import Manifest, PreflightMode
from ..jobs.policy import SubmitPolicy
from .state import RunOptions

JOB_MEMORY_S = 3 * 3600  # how long servers remember finished jobs (Milvus: about 3 hours)


def submit_policy(manifest: Manifest, options: RunOptions | None = None) -> SubmitPolicy:
    """How a run of ``manifest`` submits, polls and judges. An in-process target's job list neither
    lags nor forgets, and is judged on this machine's clock; a server's on the server's."""
    settings = manifest.settings
    rules = manifest.target.capabilities
    options = options if options is not None else RunOptions()
    gb = settings.max_job_gb or rules.job_gb
    return SubmitPolicy(
        settings=settings,
        max_job_bytes=None if gb is None else int(gb * 1024**3),
        window=settings.max_jobs_in_flight or rules.window,
        list_lag_s=0.0 if rules.in_process else settings.job_list_lag_s,
        job_memory_s=float("inf") if rules.in_process else JOB_MEMORY_S,
        local_clock=rules.in_process,
        enforce=settings.preflight is PreflightMode.ENFORCE,
        drain=options.wait,
        poll_interval_s=options.poll_interval_s,
    )
