"""Which import a server-side job belongs to, proven from evidence, never guessed. Pure.

A server reports a job's file by name only (``a/1.parquet``, sometimes with its bucket or host, in
the form it was sent: percent-encoded for https URLs). That name does not say which bucket, and two
keys can look alike once decoded. So:

* :func:`name_key` is what a server could confuse: the key below the bucket, percent-decoded (``+`` as
  a space), NFC-normalised, with the collection. The submitter never has two unresolved create calls
  with one name key in flight: the second waits its turn.
* :func:`reported_names` are the exact forms a server may report for an object as it was sent.
* :func:`judge` gives each interrupted import a verdict: adopt a job only when it is the one job that
  matches the import and no other unresolved import could have made it; otherwise ``uncertain``. No
  job at all proves nothing until the server's list has had time to show it (``lag_s``), and proves
  nothing either once the server may have forgotten it (``memory_s``). Ages are measured on the
  server's own clock (:class:`ServerClock`), never by comparing two machines' clocks.
"""

from __future__ import annotations

import email.utils
import enum
import re
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from typing import NamedTuple
from urllib.parse import unquote_plus

from ..models import JobInfo, JobState, LedgerRecord
from ..sources.registry import bucket_and_key


def name_key(collection: str, url: str) -> tuple[str, str]:
    """What a server could report alike for two objects: the collection, and the key below the bucket
    decoded as loosely as any server might decode it."""
    return collection, unicodedata.normalize("NFC", unquote_plus(bucket_and_key(url)[1]))


def reported_names(sent: str, bucket: str) -> frozenset[str]:
    """Every exact form a server may report for an object named ``sent`` in its create call: the
    whole, the part after the scheme, the path after the host, and the path after the bucket."""
    if "://" not in sent:  # a key in the server's own bucket (Milvus)
        return frozenset({sent, sent.lstrip("/")})
    rest = sent.split("://", 1)[1]
    path = rest.partition("/")[2]
    names = {sent, rest, path}
    if bucket and path.startswith(bucket + "/"):
        names.add(path[len(bucket) + 1:])
    return frozenset(names)


class Verdict(enum.StrEnum):
    ADOPT = "adopt"  # the one job that is this import's, proven
    RELEASE = "release"  # proven: the server has no job for it
    WAIT = "wait"  # no job listed yet, but the list may lag: look again later
    ABORT = "abort"  # two-phase: only uncommitted jobs of its own name it (``jobs``): abort them, release
    UNCERTAIN = "uncertain"  # the server's answer cannot prove either way yet: held, looked at again


class Judgement(NamedTuple):
    record: LedgerRecord
    verdict: Verdict
    job: JobInfo | None
    why: str
    jobs: tuple[JobInfo, ...] = ()  # the jobs to abort (``ABORT``)


def _names(record: LedgerRecord) -> frozenset[str]:
    return reported_names(record.sent_as or record.url, bucket_and_key(record.url)[0])


Unit = tuple[str, int]  # one create call: ("batch", n) for a call of several, ("row", id) for one


def unit_of(record: LedgerRecord) -> Unit:
    """The create call a row took part in: its claim of several (``batch``), or the row alone."""
    return ("batch", record.batch) if record.batch is not None else ("row", record.id)


def judge(rows: Sequence[LedgerRecord], others: Sequence[LedgerRecord], jobs: Sequence[JobInfo], *,
          server_now: float | None, lag_s: float, memory_s: float,
          abort: bool = False) -> list[Judgement]:
    """A verdict for each of ``rows`` (imports whose create call's outcome is unknown), given the jobs
    the server lists that no ledger row owns. ``others`` are the other unresolved imports that could
    have made one of those jobs.

    A create call may have named several objects (rows of one ``batch``): it is judged as a whole, by
    its whole file set. A job is its call's only when the job names exactly the call's files, each
    once, and no other unresolved call could have made it; a job naming some of the files but not
    all (or others besides) proves nothing but doubt, and a job described without its files (a reply
    that breaks the protocol) forbids proving absence. Every row of a call gets the call's verdict.
    With ``abort`` (a two-phase target), a call that several jobs name, all uncommitted and none
    naming another call's files, gets ``ABORT``: none can become visible unless committed, so
    aborting them all proves it has no job."""
    units: dict[Unit, list[LedgerRecord]] = {}
    for record in {r.id: r for r in [*others, *rows]}.values():
        units.setdefault(unit_of(record), []).append(record)
    owners: dict[str, list[tuple[Unit, int]]] = {}  # a reported name -> the (call, row) it may be
    for key, members in units.items():
        for member in members:
            for name in _names(member):
                owners.setdefault(name, []).append((key, member.id))
    overlaps: dict[str, list[Unit]] = {}  # job id -> the calls it names a file of
    exact: dict[str, set[Unit]] = {}  # job id -> the calls whose file set it is
    named_by: dict[Unit, list[JobInfo]] = {}  # a call -> the jobs that name one of its files
    for job in jobs:
        hits: dict[Unit, list[tuple[int, int]]] = {}  # a call -> (file index, row id) pairs that match
        for index, name in enumerate(job.names):
            for key, row_id in owners.get(name, ()):
                if job.collection in (None, units[key][0].collection):
                    hits.setdefault(key, []).append((index, row_id))
        for key, pairs in hits.items():
            overlaps.setdefault(job.job_id, []).append(key)
            named_by.setdefault(key, []).append(job)
            per_row, per_file = Counter(r for _, r in pairs), Counter(i for i, _ in pairs)
            if len(job.names) == len(units[key]) == len(per_row) == len(per_file) and \
                    set(per_row.values()) == set(per_file.values()) == {1}:
                exact.setdefault(job.job_id, set()).add(key)
    verdicts: dict[Unit, tuple[Verdict, JobInfo | None, str, tuple[JobInfo, ...]]] = {}
    for row in rows:
        key = unit_of(row)
        if key in verdicts:
            continue
        members = units[key]
        matches = named_by.get(key, [])
        what = "this object" if len(members) == 1 else f"this job's {len(members)} objects"
        ids = ", ".join(j.job_id for j in matches[:5])
        if len(matches) == 1 and exact.get(matches[0].job_id) == {key} and \
                len(overlaps[matches[0].job_id]) == 1:
            verdicts[key] = (Verdict.ADOPT, matches[0], f"job {matches[0].job_id} names {what}", ())
        elif abort and len(matches) > 1 and all(
                j.state is JobState.UNCOMMITTED and overlaps[j.job_id] == [key] for j in matches):
            verdicts[key] = (Verdict.ABORT, None, f"only uncommitted jobs name {what} ({ids}): none can "
                             "become visible unless committed", tuple(matches))
        elif len(matches) > 1:
            verdicts[key] = (Verdict.UNCERTAIN, None,
                             f"several jobs the ledger does not know name {what} ({ids}): which one it "
                             "made cannot be proven; check the collection", ())
        elif matches and key not in exact.get(matches[0].job_id, set()):
            verdicts[key] = (Verdict.UNCERTAIN, None,
                             f"job {matches[0].job_id} names some of {what} but not exactly them: whose it "
                             "is cannot be proven; check the collection", ())
        elif matches:
            rivals = ", ".join(units[k][0].url for k in overlaps[matches[0].job_id] if k != key)
            verdicts[key] = (Verdict.UNCERTAIN, None,
                             f"job {matches[0].job_id} may be {what}'s or {rivals}'s (the server reports the "
                             "same name): cannot be proven; check the collection", ())
        else:
            absent = _absent(row, server_now, lag_s, memory_s)
            blind = [j.job_id for j in jobs if not j.names and j.collection in (None, members[0].collection)]
            if blind and absent.verdict is Verdict.RELEASE:  # a job that names no file may be this one
                named = f"job {blind[0]}" if blind[0] else "a job listed without a readable id"
                verdicts[key] = (Verdict.WAIT, None,
                                 f"{named} is described without its files: whether it is {what}'s "
                                 "cannot be proven yet; looked at again later", ())
            else:
                verdicts[key] = (absent.verdict, None, absent.why, ())
    return [Judgement(row, *verdicts[unit_of(row)]) for row in rows]


def culprit(reason: str, rows: Sequence[LedgerRecord]) -> LedgerRecord | None:
    """The one row of a failed job of several whose object the server's ``reason`` names, or None
    when it names none of them, or several (then nobody is blamed)."""
    if len(rows) < 2:
        return None
    named = [r for r in rows if any(n and _names_whole(reason, n) for n in _names(r))]
    return named[0] if len(named) == 1 else None


def _names_whole(text: str, name: str) -> bool:
    """Whether ``text`` names the file ``name`` whole, not as a part of a longer name (``a.parquet`` in
    ``a.parquet.bak`` or ``x/a.parquet``); a full stop that ends a sentence ends the name."""
    return re.search(rf"(?<![\w./-]){re.escape(name)}(?![\w/-]|\.[\w-])", text) is not None


def _absent(row: LedgerRecord, server_now: float | None, lag_s: float, memory_s: float) -> Judgement:
    """No job names the object: proof of absence only between the list's lag and the server's memory."""
    if row.server_at is None or server_now is None:
        if lag_s <= 0 and memory_s == float("inf"):
            return Judgement(row, Verdict.RELEASE, None, "the server has no job for it")
        return Judgement(row, Verdict.UNCERTAIN, None,
                         "no job names it, and when its create call was made is unknown on the server's "
                         "clock (the server may have forgotten the job): check the collection")
    age = server_now - row.server_at
    if age < (lag_s + 1 if lag_s > 0 else -1):  # the server's Date has a resolution of one second
        return Judgement(row, Verdict.WAIT, None,
                         f"no job names it yet; the job list may lag up to {lag_s:g}s "
                         "(settings.job_list_lag_s): looked again later")
    if age > memory_s:
        return Judgement(row, Verdict.UNCERTAIN, None,
                         f"interrupted {age / 3600:.1f} h ago by the server's clock, longer than the "
                         "server remembers finished jobs: check the collection")
    return Judgement(row, Verdict.RELEASE, None, "the server has no job for it")


class ServerClock:
    """The import server's time, from the ``Date`` header of its latest reply, carried forward by this
    process's monotonic clock. Two machines' wall clocks are never compared: ages of interrupted
    calls are differences of two server times."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._base: tuple[float, float] | None = None
        self._lock = threading.Lock()

    def observe(self, date: str | None) -> None:
        if not date:
            return
        try:
            at = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        with self._lock:
            self._base = (at, self._monotonic())

    def now(self) -> float | None:
        with self._lock:
            if self._base is None:
                return None
            at, seen = self._base
        return at + (self._monotonic() - seen)


class LocalClock:
    """For a target that runs in this process (Milvus Lite): the server's clock is this machine's."""

    def now(self) -> float | None:
        return time.time()
