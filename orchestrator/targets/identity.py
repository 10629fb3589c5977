"""Where a target's imports land, as the ledger records it (its ``owner``): the API, the cluster or the
endpoint, the database. Jobs are only ever polled or judged by the target that owns them; each target's
spec names one of these."""

from __future__ import annotations

import httpx

from ..config.manifest import TargetConfig


def cluster_identity(t: TargetConfig) -> str:
    """Zilliz Cloud: the cluster, whichever endpoint reaches it."""
    return f"{t.type} cluster={t.cluster_id} db={t.db_name or 'default'}"


def endpoint_identity(t: TargetConfig) -> str:
    """A self-hosted server: its scheme and host (lower case), and the database."""
    url = httpx.URL(t.base_url)
    return f"{t.type} {url.scheme}://{url.netloc.decode().lower()} db={t.db_name or 'default'}"


def file_identity(t: TargetConfig) -> str:
    """An embedded database: its file."""
    assert t.uri is not None
    return f"{t.type} {t.uri.resolve()}"
