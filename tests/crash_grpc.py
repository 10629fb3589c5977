"""Run a manifest against a real Milvus over gRPC and die hard (``os._exit``, no cleanup) just after
the server made the N-th import task, before its id reaches the ledger, as a run killed in that window
would: ``python -m tests.crash_grpc MANIFEST N``."""

from __future__ import annotations

import os
import sys
import threading

import httpx

from orchestrator import api
from orchestrator.manifest import Manifest
from orchestrator.models import ImportRequest
from orchestrator.targets.base import ObjectReader, Target
from orchestrator.targets.milvus_grpc import MilvusGrpcTarget

CRASH = 9


class DiesAfterCreate(MilvusGrpcTarget):
    def __init__(self, uri: str, after: int) -> None:
        super().__init__(uri)
        self.after = after
        self.calls = 0
        self.count_lock = threading.Lock()

    def create(self, request: ImportRequest) -> str:
        job_id = super().create(request)
        with self.count_lock:
            self.calls += 1
            if self.calls >= self.after:
                os._exit(CRASH)
        return job_id


def main(path: str, after: int) -> None:
    manifest = api.validate(path)

    def target(m: Manifest, _client: httpx.Client, _read: ObjectReader) -> Target:
        return DiesAfterCreate(m.target.base_url, after)

    api.run(manifest, target_factory=target)
    sys.exit("the run ended without reaching the crash point")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
