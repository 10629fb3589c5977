"""Every import API a manifest's ``target.type`` may name, in the order messages list them, each declared
once in its own module (``SPEC``: its section, capabilities, identity and builder). Adding a target is its
module and one line here.

Targets that need the optional ``milvus`` extra declare themselves in a light ``*_spec.py`` module and
import their client only when built.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from ..config.manifest import TargetCapabilities, TargetConfig
from ..config.plugins import TargetSpec
from ..sources.base import ObjectReader
from . import milvus, milvus_grpc_spec, milvus_lite_spec, zilliz_v1, zilliz_v2
from .base import Target

Builder = Callable[[TargetConfig, httpx.Client, ObjectReader], Target]

TARGETS: tuple[TargetSpec[Builder], ...] = (
    zilliz_v1.SPEC, zilliz_v2.SPEC, milvus.SPEC, milvus_lite_spec.SPEC, milvus_grpc_spec.SPEC)
BY_TYPE: dict[str, TargetSpec[Builder]] = {spec.type: spec for spec in TARGETS}
CAPABILITIES: dict[str, TargetCapabilities] = {spec.type: spec.capabilities for spec in TARGETS}


def target_identity(t: TargetConfig) -> str:
    """Where imports land, as the ledger records it: the API, the cluster or endpoint, the database.
    Jobs are only ever polled or judged by the target that owns them."""
    return BY_TYPE[t.type].identity(t)
