"""The protocol every import API implements, and what the wiring hands to targets that need it.

Two-phase import (Milvus 3.0+, ``reference/import-api.md`` sections 9 and 10) is an optional capability of the
protocol, spelled the same way on every target so that callers need no ``isinstance``:

* ``two_phase`` (bool): True while this target creates jobs whose rows stay invisible until
  :meth:`Target.commit`; such a job reads :attr:`JobState.UNCOMMITTED` once imported. It may turn False
  during a run (a server that refuses the option). Whether one job needs a commit is told by its
  state (``UNCOMMITTED``), never by this flag: a job made before the flag turned off still waits.
* ``commit(job_id)`` makes an uncommitted job's rows visible; ``abort(job_id)`` drops them for good.
  Both are idempotent from the caller's side: committing a job already committing or completed, or
  aborting one already failed, succeeds. Committing a failed job, or aborting a committing or
  completed one, raises :class:`orchestrator.errors.JobTerminalError` (``committed`` tells which).

Targets without the capability inherit :class:`OnePhase`: ``two_phase`` is False, and ``commit`` /
``abort`` raise :class:`orchestrator.errors.PermanentError` (a caller that checks ``two_phase`` never
calls them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from ..config.manifest import TargetConfig
from ..errors import ManifestError, PermanentError
from ..models import ImportRequest, JobInfo, Secret, StoredObject
from ..preflight.schema import CollectionSchema


class Target(Protocol):
    """One import API. Methods raise :class:`orchestrator.errors.TargetError` subclasses only."""

    max_file_bytes: int | None  # the largest file one import takes (None: no documented limit)
    two_phase: bool  # create makes uncommitted jobs, to be committed or aborted (see the module docstring)
    # True once this process saw one of its jobs wait for a commit: the server really honours two-phase,
    # so a create whose reply was lost can be sent again (its job, if any, is never committed)
    two_phase_proven: bool
    # whether ``progress`` tells the rows a completed job imported; where it does not (Zilliz v1), a
    # completed job imported its whole file: the count the pre-flight check read from its footer
    reports_rows: bool
    # jobs per reply of ``list_jobs``; None where one reply holds every job (open-source Milvus: its list
    # has no pagination, reference section 10), so walking on never costs another call
    list_page_size: int | None

    def object_ref(self, obj: StoredObject, url: str) -> str:
        """How this API names ``obj`` in a create call: ``url`` (the URL in the source's
        ``object_url_style``), or the object's key in the server's own bucket."""
        ...

    def create(self, request: ImportRequest) -> str:
        """Start one import job for the request's objects (``request.files``: one, or several where
        ``settings.objects_per_job`` allows); return the job id."""
        ...

    def progress(self, job_id: str) -> JobInfo:
        """The job's state, with its file name where the API gives it."""
        ...

    def describe(self, collection: str) -> CollectionSchema | None:
        """The collection's schema for the pre-flight check; None where this target cannot read it
        (no data-plane endpoint configured, or a collection still to be created)."""
        ...

    def list_jobs(self) -> Iterator[JobInfo]:
        """Every job the server still remembers (file names may be absent: ask ``progress``)."""
        ...

    def commit(self, job_id: str) -> None:
        """Make the rows of an uncommitted two-phase job visible (only when ``two_phase``)."""
        ...

    def abort(self, job_id: str) -> None:
        """Drop an uncommitted two-phase job and its rows (only when ``two_phase``)."""
        ...


class OnePhase:
    """For targets whose jobs commit themselves: no two-phase import."""

    two_phase: bool = False
    two_phase_proven: bool = False
    reports_rows: bool = True
    list_page_size: int | None = 100  # the paged job lists of Zilliz Cloud (v1, v2)

    def commit(self, job_id: str) -> None:
        raise PermanentError(f"cannot commit job {job_id}: this target has no two-phase import")

    def abort(self, job_id: str) -> None:
        raise PermanentError(f"cannot abort job {job_id}: this target has no two-phase import")


def required_key(t: TargetConfig) -> Secret:
    """The API key a target type cannot call without (its section's parser requires it)."""
    if t.api_key is None:
        raise ManifestError("", "target.api_key", f"the {t.type} target needs an API key")
    return t.api_key
