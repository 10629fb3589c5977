"""Plain data shared by every layer: frozen dataclasses and closed enums."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple


class Secret:
    """A credential. ``str`` and ``repr`` are masked; only :meth:`reveal` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """The keys the import service uses to read the objects (never used for listing)."""

    access_key: Secret
    secret_key: Secret
    token: Secret | None = None  # an STS session token, for APIs that take one (Zilliz v2)


class StoredObject(NamedTuple):
    """One object as a lister saw it (a tuple: made once per listed key, a million times per rerun).

    ``url`` is the native URL (``s3://bucket/key``); ``relative_key`` is the key below the source's
    prefix, which include/exclude globs and ``pattern`` are matched against; ``version`` identifies
    this content (the S3 ETag, the GCS generation, a local fingerprint); ``checksum`` is what the store
    says about the bytes (the S3 ETag, the GCS MD5, the local footer hash), shown by ``ls``.
    """

    url: str
    bucket: str
    key: str
    relative_key: str
    size: int
    version: str
    modified: float  # seconds since the epoch
    checksum: str = ""
    found: str = "listing"  # how it was discovered: "listing", "event" or "inventory" (plan and ls show it)


class ObjectState(enum.StrEnum):
    """Where one object version stands in the ledger; it changes only by the named transitions of
    `ledger/states.py`."""

    PENDING = "pending"  # planned, no create call made (or every call was refused)
    SUBMITTING = "submitting"  # a create call may be in flight: never resubmit without reconciling
    SUBMITTED = "submitted"  # the server gave a job id; the job runs
    COMPLETED = "completed"  # the job finished on the server
    FAILED = "failed"  # the server refused the object or its job failed
    UNCERTAIN = "uncertain"  # the evidence cannot decide yet whether a job exists: each run looks again
    INVALID = "invalid"  # the pre-flight check found problems: never submitted as it stands


class Action(enum.StrEnum):
    """What the planner decided for one listed object."""

    SUBMIT = "submit"
    RETRY = "retry"  # submit again after a failure
    RECONCILE = "reconcile"  # a previous run died mid-call: look the job up first
    SKIP = "skip"
    CHANGED = "changed"  # imported before, the content changed since, and on_change is skip
    HOLD = "hold"  # held: uncertain (until the evidence decides), invalid, or out of failures


class Outcome(enum.StrEnum):
    """How one submission ended."""

    SUBMITTED = "submitted"  # a job was created
    ADOPTED = "adopted"  # the create call's reply was lost, but its job was found and recorded
    FAILED = "failed"  # the server refused the object
    DEFERRED = "deferred"  # retries ran out on transient errors; stays pending for the next run
    UNSURE = "unsure"  # a reply was lost and the job list could not be read; the next run looks again
    INVALID = "invalid"  # the pre-flight check found problems: recorded, not submitted
    QUEUED = "queued"  # waits for room: the job window or the server is full, or a look-alike is unresolved
    NOT_STARTED = "not-started"  # the run was stopping


class JobState(enum.StrEnum):
    """A server-side import job, normalised across APIs."""

    RUNNING = "running"
    UNCOMMITTED = "uncommitted"  # two-phase import: imported, rows invisible until committed (or aborted)
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Route:
    """Where an object goes."""

    collection: str
    partition: str | None


class LedgerRecord(NamedTuple):
    """One import (an object version into a destination) as the ledger remembers it (a tuple: built a
    million times per rerun). ``source`` is the source's URL; ``target`` the identity of the target
    (API family, cluster or endpoint, database) it was imported into; ``sent_as`` the object as the
    create call named it; ``server_at`` the server's clock when the row was claimed (None: unknown);
    ``key_gen`` the idempotency key's generation (new after a failure or a re-arm)."""

    url: str
    version: str
    source: str
    collection: str
    partition: str | None
    state: ObjectState
    job_id: str | None
    attempts: int
    failures: int
    error: str | None
    size: int
    updated_at: float
    rows: int | None = None  # from the parquet footer, when the pre-flight read it
    imported_rows: int | None = None  # what the server said it imported
    target: str = ""
    sent_as: str | None = None
    server_at: float | None = None
    key_gen: int = 0
    id: int = 0
    batch: int | None = None  # the claim that sent it with others in one job (None: a job of its own)
    alone: bool = False  # proven to fail (named, or failed alone): sent alone from then on
    load_id: int | None = None  # the run's load it was sent in (``settings.visibility: per_run``)
    part: int | None = None  # a part of a failed job of several, sent again together (None: any group)
    found: str | None = None  # how it was found (StoredObject.found); None: before schema 7, a listing


class PastImport(NamedTuple):
    """What the planner reads of one ledger row: the fields of a :class:`LedgerRecord` that decide an
    object's action. A rerun looks one up for every listed object, so only these are read."""

    version: str
    target: str
    collection: str
    partition: str | None
    state: ObjectState
    job_id: str | None
    failures: int
    error: str | None
    alone: bool = False  # sent alone from now on (proven to fail a job of several)
    part: int | None = None  # grouped only with the rest of its part of a failed job


class JobProgress(NamedTuple):
    """A running job's progress as the polls saw it: ``changed_at`` is when the value last changed (or
    was first seen), ``seen_at`` the latest poll; ``seen_at - changed_at`` is how long it stood still."""

    job_id: str
    progress: float | None
    changed_at: float
    seen_at: float


class PlanItem(NamedTuple):
    """The planner's decision for one object (a tuple: built once per listed object)."""

    obj: StoredObject
    source: int
    action: Action
    reason: str
    route: Route | None
    alone: bool = False  # a job of its own, never grouped with others (a culprit of a failed group)
    part: int | None = None  # shares a job only with the objects of its part (a half of a failed group)


@dataclass(frozen=True, slots=True)
class ImportRequest:
    """Everything one create call needs, independent of the API's spelling.

    ``object_url`` is the object as the API names it (a URL, or a key in the server's own bucket:
    see ``Target.object_ref``); ``obj`` and ``source`` let a target that reads the object itself
    (Milvus Lite) ask the source for its bytes. A job of several objects (``settings.objects_per_job``,
    only on targets that take it) names the others in ``companions``.
    """

    object_url: str
    collection: str
    partition: str | None
    credentials: Credentials | None
    idempotency_key: str
    obj: StoredObject | None = None
    source: int = 0
    companions: tuple[str, ...] = ()  # the other objects of a job of several, named like object_url
    timeout_s: int | None = None  # how long the server may let the job take (settings.job_timeout_s)

    @property
    def files(self) -> tuple[str, ...]:
        """Every object of the job, in the order sent: ``object_url`` first."""
        return (self.object_url, *self.companions)


# The job id of a job-list record whose own id is missing or unreadable: the job exists but cannot be
# described, so it may be anyone's; it is never stored, asked about, committed or aborted.
UNREADABLE_JOB_ID = ""


@dataclass(frozen=True, slots=True)
class JobInfo:
    """What a progress or list call says about one job."""

    job_id: str
    state: JobState
    collection: str | None = None
    file_name: str | None = None
    reason: str | None = None
    progress: float | None = None
    imported_rows: int | None = None
    file_names: tuple[str, ...] = ()  # every file of the job, where the API lists them (``details``)
    file_rows: tuple[int | None, ...] = ()  # the rows imported from each of ``file_names``
    file_states: tuple[JobState | None, ...] = ()  # each file's own state, where the API says it
    file_reasons: tuple[str | None, ...] = ()  # each file's own failure reason, where the API says it

    @property
    def names(self) -> tuple[str, ...]:
        """The job's files as the server reports them; empty when it does not say."""
        if self.file_names:
            return self.file_names
        return (self.file_name,) if self.file_name else ()
