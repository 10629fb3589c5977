"""The :class:`Ledger` other layers hold: one open ledger (a :class:`~.session.Session`) and the
operations on it, each written once in the module that owns it. Nothing here but the list.

``factory.open_ledger`` opens one at a path or a PostgreSQL location; ``copy.py`` moves a whole one.
"""

from __future__ import annotations

from . import loads, reads, reports, runs, transitions, views
from .session import Session


class Ledger(Session):
    """An open ledger. Thread-safe: every operation takes the connection lock for one short
    transaction; each transition is committed durably before it returns."""

    # the guarded transitions (transitions.py; the state graph is states.py)
    begin_submission = transitions.begin_submission
    begin_group = transitions.begin_group
    mark_invalid = transitions.mark_invalid
    record_job = transitions.record_job
    refuse = transitions.refuse
    mark_uncertain = transitions.mark_uncertain
    release = transitions.release
    complete = transitions.complete
    complete_job = transitions.complete_job
    job_failed = transitions.job_failed
    rearm = transitions.rearm
    withdraw = transitions.withdraw

    # what the planner, the submitter and the job lifecycle read (reads.py)
    history = reads.history
    past_imports = reads.past_imports
    records = reads.records
    unfinished = reads.unfinished
    known_job_ids = reads.known_job_ids
    get = reads.get
    row = reads.row
    rows = reads.rows
    by_reported_name = reads.by_reported_name
    companions = reads.companions
    count = reads.count
    job_sizes = reads.job_sizes
    job_states = reads.job_states
    jobs_held = reads.jobs_held

    # the loads of ``settings.visibility: per_run`` (loads.py)
    open_load = loads.open_load
    decide_load = loads.decide_load
    end_load = loads.end_load
    open_loads = loads.open_loads
    decided_loads = loads.decided_loads
    load_rows = loads.load_rows

    # read-only operator views (views.py)
    counts = views.counts
    events = views.events
    group_counts = views.group_counts
    oldest_submitted = views.oldest_submitted
    submitted_before = views.submitted_before
    failing = views.failing
    row_totals = views.row_totals
    stalled = views.stalled
    job_progress = views.job_progress
    last_success = views.last_success

    # the HTML report's data (reports.py)
    report_groups = reports.groups
    report_span = reports.span
    report_timeline = reports.timeline
    report_durations = reports.durations
    report_reasons = reports.reasons

    # the run's own bookkeeping (runs.py)
    claim_run = runs.claim_run
    end_run = runs.end_run
    note_progress = runs.note_progress
    note_success = runs.note_success
    last_listed = runs.last_listed
    note_listed = runs.note_listed

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
