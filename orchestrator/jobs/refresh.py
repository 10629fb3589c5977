"""Refreshing: the state of many known jobs learnt with few calls: the job list, a page of up to 100
jobs a call, and a progress call only where the list cannot tell (a failure's reason, the rows
imported where the list has no count but the progress call has, a job missing from the list)."""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from ..errors import FatalTargetError, JobNotFoundError, TargetError
from ..ledger.store import Ledger
from ..models import JobInfo, JobState, LedgerRecord
from ..redact import Redactor
from ..sources.registry import bucket_and_key
from ..targets.base import Target
from ..targets.pacing import with_retries
from ..terminal import label
from .evidence import reported_names
from .isolation import failed_job
from .policy import SubmitPolicy
from .two_phase import commit

log = logging.getLogger("orchestrator")
LIST_FROM = 4  # from this many jobs to learn about, one list walk beats one progress call each
# a job id, the state it ended in (None: the server no longer knows it), its objects
OnFinished = Callable[[str, JobState | None, int], None]
# a failed job's id, and the parts (row ids each) its objects go back in, to be sent again
OnRegrouped = Callable[[str, list[list[int]]], None]


def refresh(
    target: Target,
    ledger: Ledger,
    records: Iterable[LedgerRecord],
    policy: SubmitPolicy,
    *,
    stop: threading.Event,
    redact: Redactor,
    sleep: Callable[[float], object] | None = None,
    rng: Callable[[], float] = random.random,
    on_polled: Callable[[], None] | None = None,
    on_finished: OnFinished | None = None,
    on_regrouped: OnRegrouped | None = None,
) -> Counter[str]:
    """Learn the state of each submitted job once; move finished ones to completed or failed and
    remember the progress of running ones (for stall detection). A job the server no longer knows
    makes its rows ``uncertain``. From :data:`LIST_FROM` jobs on, the job list is walked first (until
    every job asked about was seen); a progress call is made only for a job the list did not show,
    a completed job the list gives no row count for (where the progress call has one) and a failed
    one without a reason (or, for a job of several, without its files' details). A job of several
    objects is asked about once and settles all of them: a completed one completes each; a failed one
    fails only the files proven to have failed it, and sends the others back in parts
    (:mod:`orchestrator.jobs.isolation`), each part to ``on_regrouped``. An uncommitted job is
    committed unless it belongs to a run's load not decided yet (``settings.visibility: per_run``,
    :mod:`orchestrator.jobs.visibility`): that one is reported ``uncommitted``. Returns counts of
    objects by job state (``failed``: those failed), plus ``uncertain`` and ``regrouped``.
    ``on_polled`` is called once per object, ``on_finished`` once per job seen finishing (with the
    objects it failed, for a failed one)."""
    jobs: dict[str, list[LedgerRecord]] = {}
    for record in records:
        if record.job_id is not None:
            jobs.setdefault(record.job_id, []).append(record)
    counts: Counter[str] = Counter()
    pause: Callable[[float], object] = sleep if sleep is not None else stop.wait
    lock = threading.Lock()
    listed = _listed(target, set(jobs), policy, stop=stop, pause=pause, rng=rng,
                     redact=redact) if len(jobs) >= LIST_FROM else {}
    decided = ledger.decided_loads()  # a job of a run's load is committed only once its run decided so

    def described(job_id: str) -> JobInfo:
        return with_retries(lambda: target.progress(job_id), max_attempts=policy.settings.max_attempts,
                            sleep=pause, rng=rng, stop=stop, what=f"progress of job {job_id}",
                            max_retry_after_s=policy.settings.max_retry_after_s)

    def poll(job_id: str, members: list[LedgerRecord]) -> None:
        if stop.is_set():
            return
        first = members[0]
        info = listed.get(job_id)
        try:
            if info is None or (info.state is JobState.FAILED and (not info.reason or (
                    len(members) > 1 and not info.file_names))) or (
                    info.state is JobState.COMPLETED and target.reports_rows
                    and _rows_unknown(info, members)):
                info = described(job_id)  # the list cannot tell: ask about this job alone
        except FatalTargetError:
            stop.set()  # every queued poll would fail alike
            raise
        except TargetError as exc:
            if isinstance(exc, JobNotFoundError):
                ledger.mark_uncertain([r.id for r in members], f"the server no longer knows job {job_id}: "
                                                               "check the collection")
                with lock:
                    counts["uncertain"] += len(members)
                if on_finished is not None:  # it left this run's jobs all the same
                    on_finished(job_id, None, len(members))
            log.warning("%s: progress of job %s: %s", label([r.url for r in members]), job_id,
                        redact(str(exc)),
                        extra={"event": "poll-error", "url": first.url, "job_id": job_id})
            return
        if info.state is JobState.UNCOMMITTED and first.load_id in (None, *decided):
            info = commit(target, first, info, described, redact)  # imported, invisible, and ours: commit
        if info.state is JobState.RUNNING:
            ledger.note_progress(job_id, info.progress)
        elif info.state is JobState.COMPLETED:
            _completed(ledger, job_id, members, info, from_footer=not target.reports_rows)
        elif info.state is JobState.FAILED:
            ended = _failed(ledger, job_id, members, info, redact(f"job {job_id} failed: "
                                                                  f"{info.reason or 'no reason given'}"),
                            grouped=policy.settings.objects_per_job > 1)
            with lock:
                counts[info.state.value] += ended.failed
                counts["regrouped"] += sum(map(len, ended.parts))
            if ended.parts and on_regrouped is not None:
                on_regrouped(job_id, ended.parts)
            if on_finished is not None:
                on_finished(job_id, info.state, ended.failed)
            return
        with lock:
            counts[info.state.value] += len(members)
        if on_finished is not None and info.state is not JobState.RUNNING:
            on_finished(job_id, info.state, len(members))

    with ThreadPoolExecutor(max_workers=policy.settings.concurrency, thread_name_prefix="poll") as pool:
        futures = [(pool.submit(poll, job_id, members), len(members)) for job_id, members in jobs.items()]
        try:
            for future, size in futures:
                future.result()
                if on_polled is not None:
                    for _ in range(size):
                        on_polled()
        finally:
            for future, _ in futures:
                future.cancel()
    return counts


class _Ended(NamedTuple):
    failed: int  # objects that count a failure
    parts: list[list[int]]  # the rows of each part sent again


def _failed(ledger: Ledger, job_id: str, members: list[LedgerRecord], info: JobInfo, reason: str, *,
            grouped: bool) -> _Ended:
    """Settle a failed job: only the files proven to fail it count a failure; the others go back in
    parts (:func:`orchestrator.jobs.isolation.failed_job`)."""
    outcome = failed_job(reason, members, info, grouped=grouped)
    parts = [[r.id for r in part] for part in outcome.parts]
    ledger.job_failed([r.id for r in members], job_id, reason, culprits=[r.id for r in outcome.proven],
                      parts=parts)
    for record in outcome.failed:
        log.error("%s: %s", record.url, reason,
                  extra={"event": "job-failed", "url": record.url, "job_id": job_id})
    if len(members) > 1:
        for record in outcome.proven:
            log.info("%s: the cause of job %s's failure: it goes in a job of its own from now on", record.url,
                     job_id, extra={"event": "culprit", "url": record.url, "job_id": job_id})
        how = "without the file that failed it" if outcome.proven else \
            "in halves, to find the file that failed it"
        for part in outcome.parts:
            for record in part:
                log.info("%s: job %s of %d objects failed (%s): sent again %s, in a job of %d, no failure "
                         "counted", record.url, job_id, len(members), reason, how, len(part),
                         extra={"event": "regrouped", "url": record.url, "job_id": job_id})
    return _Ended(len(outcome.failed), parts)


def _rows_unknown(info: JobInfo, members: list[LedgerRecord]) -> bool:
    """Whether a completed job as listed lacks the rows it imported (per file, for several objects)."""
    return info.imported_rows is None if len(members) == 1 else not any(r is not None for r in info.file_rows)


def _completed(ledger: Ledger, job_id: str, members: list[LedgerRecord], info: JobInfo, *,
               from_footer: bool = False) -> None:
    """Complete every object of a finished job, each with the rows the server says it imported from
    it: the job's total for a job of one object, the per-file count for a job of several. A target
    that does not count rows (``from_footer``) imported each whole file: the footer's count."""
    if from_footer:
        imported = {r.id: r.rows for r in members}
    elif len(members) == 1:
        imported = {members[0].id: info.imported_rows}
    else:
        per_file = dict(zip(info.file_names, info.file_rows, strict=False))
        imported = {r.id: next((per_file[n] for n in reported_names(r.sent_as or r.url, bucket_and_key(
            r.url)[0]) if n in per_file), None) for r in members}
    ledger.complete_job(job_id, imported)
    for record in members:
        rows = imported[record.id]
        log.info("%s: job %s completed%s", record.url, job_id, "" if rows is None else f" ({rows} rows)",
                 extra={"event": "completed", "url": record.url, "job_id": job_id,
                        "collection": record.collection, "rows": rows})
        if None not in (record.rows, rows) and record.rows != rows:
            log.warning("%s: job %s imported %s rows; the file holds %s", record.url, job_id, rows,
                        record.rows, extra={"event": "row-mismatch", "url": record.url, "job_id": job_id})


def _listed(target: Target, wanted: set[str], policy: SubmitPolicy, *, stop: threading.Event,
            pause: Callable[[float], object], rng: Callable[[], float],
            redact: Redactor) -> dict[str, JobInfo]:
    """The wanted jobs as the job list shows them, walking its pages until each was seen. A list
    whose pages shift between calls may skip a job: those are asked about one by one. A list that
    cannot be read leaves them all to one-by-one calls; a fatal error stops at once."""
    def walk() -> dict[str, JobInfo]:
        found: dict[str, JobInfo] = {}
        page = target.list_page_size
        for seen, job in enumerate(target.list_jobs(), start=1):
            if job.job_id in wanted:
                found[job.job_id] = job
                if len(found) == len(wanted):
                    break
            # a long history of other jobs: once the pages walked outnumber the jobs still missing,
            # one progress call each is cheaper than walking on (not where one reply held them all)
            if stop.is_set() or (page is not None and seen % page == 0 and seen // page > len(wanted)
                                 - len(found)):
                break
        return found

    try:
        return with_retries(walk, max_attempts=policy.settings.max_attempts, sleep=pause, rng=rng, stop=stop,
                            what="listing the import jobs",
                            max_retry_after_s=policy.settings.max_retry_after_s)
    except FatalTargetError:
        stop.set()
        raise
    except TargetError as exc:
        log.info("the job list cannot be read (%s): asking about each job", redact(str(exc)),
                 extra={"event": "list-unavailable"})
        return {}
