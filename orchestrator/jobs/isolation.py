"""What becomes of a failed job's objects: which are proven to have failed it, and the parts the others
are sent again in. Pure.

A job of several objects fails whole, whichever file broke it. Only a file proven to fail spends a
failure towards ``settings.max_job_failures``: the file the server says failed (its per-file
``details[]`` entry, or the one file the job's reason names), or a file that failed in a job of its
own. The others were not at fault: they go back without counting a failure, together when the cause
is known (one more job), or in two halves when it is not, each half its own job, and again in halves
while a half fails, until the failing file stands alone: about two jobs for each halving, so some
``2 * log2(n)`` more jobs for a job of ``n`` objects with one bad file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, TypeVar

from ..models import JobInfo, JobState, LedgerRecord
from ..sources.registry import bucket_and_key
from .evidence import culprit, reported_names

T = TypeVar("T")


class Outcome(NamedTuple):
    """A failed job's objects: ``failed`` count a failure (``proven`` of them are sent alone from then
    on); each of ``parts`` goes back to be sent again as one job, no failure counted."""

    failed: list[LedgerRecord]
    proven: list[LedgerRecord]
    parts: list[list[LedgerRecord]]


def failed_job(reason: str, members: Sequence[LedgerRecord], info: JobInfo, *, grouped: bool) -> Outcome:
    """The outcome of a failed job of ``members``. ``grouped``: objects may share jobs
    (``objects_per_job`` above 1), so a file that failed alone is marked to stay alone."""
    if len(members) == 1:
        return Outcome(list(members), list(members) if grouped else [], [])
    blamed = from_details(members, info) or ([found] if (found := culprit(reason, members)) else [])
    if blamed:
        rest = [r for r in members if r not in blamed]
        return Outcome(blamed, blamed, [rest] if rest else [])
    ordered = sorted(members, key=lambda r: r.id)
    half = (len(ordered) + 1) // 2
    return Outcome([], [], [ordered[:half], ordered[half:]])


def from_details(members: Sequence[LedgerRecord], info: JobInfo) -> list[LedgerRecord]:
    """The members the job's per-file details single out as failed: those with a reason of their own,
    else those whose state is ``Failed`` while others' is not. Empty when the details do not tell
    (none given, a file missing from them, or every file reported alike)."""
    per_file = {name: i for i, name in enumerate(info.file_names)}
    index: dict[int, int] = {}
    for record in members:
        names = reported_names(record.sent_as or record.url, bucket_and_key(record.url)[0])
        found = next((per_file[n] for n in names if n in per_file), None)
        if found is None:
            return []
        index[record.id] = found

    def told(flags: dict[int, bool]) -> list[LedgerRecord]:
        picked = [r for r in members if flags[r.id]]
        return picked if 0 < len(picked) < len(members) else []

    reasons = {r.id: bool(_at(info.file_reasons, index[r.id])) for r in members}
    failed = {r.id: _at(info.file_states, index[r.id]) is JobState.FAILED for r in members}
    return told(reasons) or told(failed)


def _at(values: tuple[T | None, ...], i: int) -> T | None:
    return values[i] if i < len(values) else None
