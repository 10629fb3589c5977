"""How one run submits, polls and judges jobs: the manifest's settings, and what they combine into
with the target's capabilities and the run's options, built once
(:func:`orchestrator.run.policy.submit_policy`) into one frozen object that the submitter, the refresh,
the reconciler and the job window take, as s3transfer's ``TransferManager`` takes one
``TransferConfig``. A setting is read from ``policy.settings`` where it is used: adding one is its
field in :class:`~orchestrator.config.manifest.Settings` and the code that reads it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config.manifest import Settings


@dataclass(frozen=True, kw_only=True, slots=True)
class SubmitPolicy:
    """What a run may do and how long it waits; collaborators (the target, the ledger, the clocks, the
    stop flag, the observer) are passed beside it."""

    settings: Settings = field(default_factory=Settings)  # the manifest's, as written (or defaulted)
    max_job_bytes: int | None = None  # the most bytes of one job of several objects
    window: int = 1  # unfinished jobs this manifest keeps on the server at once
    # no defaults: no lag and an endless memory hold for an in-process target only, and read as proof
    # that a job is absent from a server's list they would resend a create call whose reply was lost
    list_lag_s: float  # how long the job list may take to show a new job
    job_memory_s: float  # how long the server remembers a finished job
    local_clock: bool = False  # the target runs in this process: its list is judged on our clock
    enforce: bool = True  # a file that fails the pre-flight check is not submitted (else: warned)
    drain: bool = False  # ``run --wait``: keep submitting as jobs end, waiting for room
    poll_interval_s: float = 5.0  # between polls while draining; the pause after a full server
