"""Two-phase imports (Milvus 2.6 ``auto_commit: false``): a job imports invisibly until committed.
A job this ledger owns is committed when a poll finds it imported (:func:`commit`); an uncommitted
job no row owns, a lost reply's orphan, is aborted (:func:`abort_orphans`)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from ..errors import JobTerminalError, TargetError, TransientError
from ..ledger.store import Ledger
from ..models import JobInfo, JobState, LedgerRecord, ObjectState
from ..redact import Redactor
from ..targets.base import Target
from .reconcile import Reconciler

log = logging.getLogger("orchestrator")


def commit(target: Target, record: LedgerRecord, info: JobInfo, described: Callable[[str], JobInfo],
           redact: Redactor) -> JobInfo:
    """Commit a job this ledger owns (its id was recorded before this call); the job reads as running
    until the server says it completed. A job already terminal is whatever the server says it is."""
    try:
        target.commit(info.job_id)
    except JobTerminalError:
        return described(info.job_id)
    except TransientError as exc:  # still importing, or the call failed: the next poll commits it
        log.info("%s: commit of job %s: %s; later", record.url, info.job_id, redact(str(exc)),
                 extra={"event": "commit-later", "url": record.url, "job_id": info.job_id})
        return dataclasses.replace(info, state=JobState.RUNNING)
    log.info("%s: job %s committed", record.url, info.job_id,
             extra={"event": "committed", "url": record.url, "job_id": info.job_id})
    after = described(info.job_id)  # committing is quick: its end is often seen in the same poll
    return after if after.state in (JobState.COMPLETED, JobState.FAILED) else dataclasses.replace(
        after, state=JobState.RUNNING)


def abort_orphans(reconciler: Reconciler, ledger: Ledger, redact: Redactor) -> int:
    """Two-phase targets: abort every uncommitted job that no ledger row owns but whose object's
    import is settled otherwise (it holds another job, or was proven to have none): a lost reply's
    orphan, whose rows never become visible. A job that an unresolved (``submitting``) import may own
    is left to :func:`reconcile`; one that two imports could own is left alone. Returns how many."""
    target = reconciler.target
    if not target.two_phase:
        return 0
    try:
        jobs = [j for j in reconciler.unknown_jobs(None, only=JobState.UNCOMMITTED)]
    except TargetError as exc:
        log.warning("cannot look for orphaned uncommitted jobs (%s); the next run looks again",
                    redact(str(exc)), extra={"event": "unsure"})
        return 0
    aborted = 0
    for job in jobs:
        found = [ledger.by_reported_name(name, job.collection) for name in job.names]
        if not found or any(len(o) != 1 or o[0].state is ObjectState.SUBMITTING for o in found):
            continue
        owners = [o[0] for o in found]
        try:
            target.abort(job.job_id)
        except TargetError as exc:
            log.warning("%s: cannot abort orphaned job %s: %s", owners[0].url, job.job_id, redact(str(exc)),
                        extra={"event": "abort-failed", "url": owners[0].url, "job_id": job.job_id})
            continue
        aborted += 1
        log.info("%s: aborted job %s, an uncommitted orphan of a lost reply", owners[0].url, job.job_id,
                 extra={"event": "aborted", "url": owners[0].url, "job_id": job.job_id})
    return aborted
