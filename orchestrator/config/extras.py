"""The optional parts of the install: which pip extra brings which modules, and the message that names
the extra when a manifest needs one that is not installed.

The core (S3, GCS, local folders; Zilliz Cloud and Milvus over REST; a SQLite ledger) imports without
any of them; each extra's modules are imported only where they are used.
"""

from __future__ import annotations

import importlib.util

DISTRIBUTION = "milvus-import-orchestrator"  # the name on PyPI (`orchestrator` is another project's)

# extra -> the modules it installs (as ``import`` names them)
EXTRAS: dict[str, tuple[str, ...]] = {
    "milvus": ("pymilvus", "milvus_lite"),  # the milvus-lite and milvus-grpc targets
    "azure": ("azure.storage.blob", "azure.identity"),  # az:// and *.blob.core.windows.net sources
    "gcs-events": ("google.cloud.pubsub_v1",),  # discovery: events of gs:// sources (Pub/Sub)
    "postgres": ("psycopg",),  # ledger: postgresql://...
}


def install_hint(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def missing(extra: str, *, needed_by: str, modules: tuple[str, ...] | None = None) -> str | None:
    """None when the extra's modules (or the given ones among them) can be imported; else one line
    saying what needs them and how to install them."""
    absent = [m for m in (modules or EXTRAS[extra]) if not _importable(m)]
    if not absent:
        return None
    return (f"{needed_by} needs the optional '{extra}' extra ({', '.join(absent)} not installed): "
            f"{install_hint(extra)}")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False
