"""Run a manifest against a real Milvus over gRPC and die hard (``os._exit``, no cleanup) at the N-th
import call, as a run killed there would: ``python -m tests.crash_grpc MANIFEST N [before]``. By
default it dies just after the server made the task, before its id reaches the ledger; with
``before``, just before the call is sent (the ledger row is ``submitting``, the server has no task)."""

from __future__ import annotations

import os
import sys
import threading

import httpx

from orchestrator import api
from orchestrator.config.manifest import Manifest
from orchestrator.models import ImportRequest
from orchestrator.sources.base import ObjectReader
from orchestrator.targets.base import Target
from orchestrator.targets.milvus_grpc import MilvusGrpcTarget

CRASH = 9


class DiesAtCreate(MilvusGrpcTarget):
    def __init__(self, uri: str, at: int, *, before: bool) -> None:
        super().__init__(uri)
        self.at = at
        self.before = before
        self.calls = 0
        self.count_lock = threading.Lock()

    def create(self, request: ImportRequest) -> str:
        with self.count_lock:
            self.calls += 1
            last = self.calls >= self.at
        if last and self.before:
            os._exit(CRASH)
        job_id = super().create(request)
        if last:
            os._exit(CRASH)
        return job_id


def main(path: str, at: int, before: bool) -> None:
    manifest = api.validate(path)

    def target(m: Manifest, _client: httpx.Client, _read: ObjectReader) -> Target:
        return DiesAtCreate(m.target.base_url, at, before=before)

    api.run(manifest, target_factory=target)
    sys.exit("the run ended without reaching the crash point")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:] == ["before"])
