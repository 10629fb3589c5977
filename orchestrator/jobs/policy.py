"""How one run submits, polls and judges jobs: the settings and the target's capabilities they come
from, read once (:func:`orchestrator.run.policy.submit_policy`) into one frozen object that the
submitter, the refresh, the reconciler and the job window take, as s3transfer's ``TransferManager``
takes one ``TransferConfig``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class SubmitPolicy:
    """What a run may do and how long it waits; collaborators (the target, the ledger, the clocks, the
    stop flag, the observer) are passed beside it."""

    concurrency: int  # create calls (and progress calls, pre-flight reads) in flight at once
    max_attempts: int  # tries of one call on transient errors
    max_retry_after_s: float  # the longest Retry-After obeyed
    objects_per_job: int = 1  # objects in one create call
    max_job_bytes: int | None = None  # the most bytes of one job of several objects
    job_timeout_s: int | None = None  # how long the server may take over one job
    window: int = 1  # unfinished jobs this manifest keeps on the server at once
    list_lag_s: float = 0.0  # how long the job list may take to show a new job
    job_memory_s: float = float("inf")  # how long the server remembers a finished job
    local_clock: bool = False  # the target runs in this process: its list is judged on our clock
    enforce: bool = True  # a file that fails the pre-flight check is not submitted (else: warned)
    drain: bool = False  # ``run --wait``: keep submitting as jobs end, waiting for room
    poll_interval_s: float = 5.0  # between polls while draining; the pause after a full server
