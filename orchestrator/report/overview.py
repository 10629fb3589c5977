"""What ``status`` shows of a ledger, aggregated by the database (never the whole ledger in memory): per
source and collection, counts by state, stalled jobs, the job running longest and the rows; the failing
objects and the last success."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..ledger.store import Ledger
from ..models import JobProgress, LedgerRecord


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """One source and collection: counts by state, stalled jobs, the job running longest, and rows
    (expected, imported) when the ledger records them (``None`` when it does not)."""

    source: str  # the source's URL
    collection: str
    counts: dict[str, int]
    stalled: int
    oldest_running: LedgerRecord | None
    rows: tuple[int | None, int | None] | None


@dataclass(frozen=True, slots=True)
class Overview:
    """What ``status`` shows, aggregated by the ledger: never the whole ledger in memory."""

    now: float
    stall_after_s: float
    groups: list[GroupStatus]
    stalled: list[tuple[LedgerRecord, JobProgress]]
    failing_total: int
    failing: list[LedgerRecord]  # the most recent ones, each with its last error
    last_success_at: float | None
    job_sizes: dict[str, int] = field(default_factory=dict)  # objects per job shown, where more than one


def overview(ledger: Ledger, *, stall_after_s: float, failing_limit: int,
             clock: Callable[[], float]) -> Overview:
    """The ledger's overview: ``failing_limit`` of the most recent failing objects, jobs stalled for
    ``stall_after_s``."""
    stalled = ledger.stalled(stall_after_s)
    total, failing = ledger.failing(failing_limit)
    groups = _groups(ledger, stalled)
    shown = {r.job_id for r in [*(r for r, _ in stalled), *failing,
                                *(g.oldest_running for g in groups if g.oldest_running)] if r.job_id}
    return Overview(clock(), stall_after_s, groups, stalled, total, failing, ledger.last_success(),
                    {job: n for job, n in ledger.job_sizes(sorted(shown)).items() if n > 1})


def _groups(ledger: Ledger, stalled: list[tuple[LedgerRecord, JobProgress]]) -> list[GroupStatus]:
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for source, collection, state, n in ledger.group_counts():
        counts.setdefault((source, collection), {})[state] = n
    stuck = Counter((record.source, record.collection) for record, _ in stalled)
    oldest = ledger.oldest_submitted()
    rows = ledger.row_totals()
    return [GroupStatus(key[0], key[1], by_state, stuck[key], oldest.get(key),
                        rows.get(key) if rows else None) for key, by_state in counts.items()]
