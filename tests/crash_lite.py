"""Run a manifest against milvus-lite in this process and die hard (``os._exit``, no cleanup) at a
chosen point, as a killed or crashed run would: ``python -m tests.crash_lite MANIFEST MODE``.

MODE ``write:N`` dies just before the N-th batch of rows is written (earlier batches are in the
database, the job is not recorded, the ledger row is ``submitting``); ``recorded`` dies just after the
job record is written (every row is in, the ledger does not know the job id yet).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import httpx

from orchestrator import api
from orchestrator.config.manifest import Manifest
from orchestrator.sources.base import ObjectReader
from orchestrator.targets.base import Target
from orchestrator.targets.milvus_lite import JOBS, MilvusLiteTarget, open_client

CRASH = 9


class DiesMidway:
    """A pymilvus client that ends the process at the chosen call."""

    def __init__(self, client: Any, mode: str) -> None:
        self._client = client
        self._mode = mode
        self._writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _write(self, method: str, collection: str, rows: Any, **kwargs: Any) -> Any:
        if collection == JOBS:
            result = getattr(self._client, method)(collection, rows, **kwargs)
            if self._mode == "recorded":
                os._exit(CRASH)
            return result
        self._writes += 1
        if self._mode == f"write:{self._writes}":
            os._exit(CRASH)
        return getattr(self._client, method)(collection, rows, **kwargs)

    def insert(self, collection: str, rows: Any, **kwargs: Any) -> Any:
        return self._write("insert", collection, rows, **kwargs)

    def upsert(self, collection: str, rows: Any, **kwargs: Any) -> Any:
        return self._write("upsert", collection, rows, **kwargs)


def main(path: str, mode: str) -> None:
    manifest = api.validate(path)

    def target(m: Manifest, _client: httpx.Client, read: ObjectReader) -> Target:
        assert m.target.uri is not None
        return MilvusLiteTarget(m.target.uri, read=read, create_collection=m.target.create_collection,
                                client=DiesMidway(open_client(m.target.uri), mode), batch_rows=100)

    api.run(manifest, target_factory=target)
    sys.exit("the run ended without reaching the crash point")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
