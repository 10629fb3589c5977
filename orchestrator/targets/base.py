"""The protocol every import API implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from ..models import ImportRequest, JobInfo


class Target(Protocol):
    """One import API. Methods raise :class:`orchestrator.errors.TargetError` subclasses only."""

    def create(self, request: ImportRequest) -> str:
        """Start one import job for one object; return the job id."""
        ...

    def progress(self, job_id: str) -> JobInfo:
        """The job's state, with its file name where the API gives it."""
        ...

    def list_jobs(self) -> Iterator[JobInfo]:
        """Every job the server still remembers (file names may be absent: ask ``progress``)."""
        ...
