"""The milvus-lite target as a manifest names it: its section (a database file), its capabilities
(in-process: one file a job, no window to keep), its identity; the target itself
(:mod:`orchestrator.targets.milvus_lite`, pymilvus and milvus-lite from the ``milvus`` extra) is imported
only when it is built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from ..config import extras
from ..config.manifest import Metric, TargetCapabilities, TargetConfig
from ..config.plugins import TargetSpec
from ..config.reader import Reader, excerpt
from ..errors import FatalTargetError, ManifestError
from ..sources.base import ObjectReader
from .base import Target
from .identity import file_identity

# the import runs here, a file at a time, read in record batches: no server list lags or forgets
CAPABILITIES = TargetCapabilities(credentials=False, sts_token=False, partitions=True, local_sources=True,
                                  window=1_000_000, in_process=True)


def _section(r: Reader, node: Any, base_dir: Path) -> TargetConfig:
    t = r.mapping(node, "target", required=("type", "uri"), optional=("create_collection", "metric"))
    uri = r.string(t["uri"], "target.uri")
    if "://" in uri or not uri.endswith(".db"):
        raise r.fail("target.uri", f"expected a database path ending in .db (e.g. ./demo.db), got "
                                   f"{excerpt(uri)}")
    return TargetConfig(
        type=SPEC.type,
        capabilities=CAPABILITIES,
        uri=(base_dir / uri).resolve(),
        create_collection=r.boolean(t.get("create_collection", False), "target.create_collection"),
        metric=r.enum(t.get("metric", Metric.COSINE.value), "target.metric", Metric),
    )


def _build(t: TargetConfig, _client: httpx.Client, read: ObjectReader) -> Target:
    try:
        from .milvus_lite import MilvusLiteTarget
    except ImportError as exc:
        raise FatalTargetError(f"the milvus-lite target needs pymilvus and milvus-lite ({exc}): install "
                               f"them with {extras.install_hint('milvus')}") from exc
    if t.uri is None:
        raise ManifestError("", "target.uri", "the milvus-lite target needs a database path")
    return MilvusLiteTarget(t.uri, read=read, create_collection=t.create_collection, metric=t.metric)


SPEC = TargetSpec(type="milvus-lite", parse=_section, capabilities=CAPABILITIES, identity=file_identity,
                  build=_build, extra="milvus")
