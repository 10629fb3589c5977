"""The milvus-grpc target (Milvus 2.3's bulk insert over gRPC) as a manifest names it: the section of the
milvus target, its capabilities (one file a call), its identity; the target itself
(:mod:`orchestrator.targets.milvus_grpc`, pymilvus from the ``milvus`` extra) is imported only when it
is built."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from ..config import extras
from ..config.manifest import TargetCapabilities, TargetConfig
from ..config.plugins import TargetSpec
from ..config.reader import Reader
from ..errors import FatalTargetError
from ..sources.base import ObjectReader
from . import milvus
from .base import Target
from .collections_v2 import GB
from .identity import endpoint_identity

# Milvus holds 1,024 unfinished jobs in all, shared with everyone (reference/import-api.md); a bulk insert
# names one file, read by the server from its bucket or, for a local source, its own disk
CAPABILITIES = TargetCapabilities(credentials=False, sts_token=False, partitions=True, local_sources=True,
                                  window=256, max_file_bytes=16 * GB)


def _section(r: Reader, node: Any, base_dir: Path) -> TargetConfig:
    return replace(milvus.read_section(r, node, base_dir), type=SPEC.type, capabilities=CAPABILITIES)


def _build(t: TargetConfig, client: httpx.Client, _read: ObjectReader) -> Target:
    try:
        from .milvus_grpc import MilvusGrpcTarget
    except ImportError as exc:
        raise FatalTargetError(f"the milvus-grpc target needs pymilvus ({exc}): install it with "
                               f"{extras.install_hint('milvus')}") from exc
    return MilvusGrpcTarget(t.base_url, token=t.api_key, db_name=t.db_name,
                            timeout_s=client.timeout.read or 30.0)  # settings.timeout_s, as for HTTP


SPEC = TargetSpec(type="milvus-grpc", parse=_section, capabilities=CAPABILITIES, identity=endpoint_identity,
                  build=_build, extra="milvus", extra_modules=("pymilvus",))
