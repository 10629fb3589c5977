"""Which lister serves which URL scheme. Adding a store is one module with a ``build(config,
settings)`` that makes its client, and one line here (plus its URL and keys in ``manifest.py``).

Modules are imported on first use: a run over S3 never pays for importing the GCS client, nor a run
over a local folder for boto3 (a few hundred milliseconds each, on every cron run).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from ..config.manifest import Settings, SourceConfig
from .base import Source

Builder = Callable[[SourceConfig, Settings], Source]

MODULES: dict[str, str] = {
    "s3": "orchestrator.sources.s3",
    "gs": "orchestrator.sources.gcs",
    "az": "orchestrator.sources.azure",
    "file": "orchestrator.sources.local",
}


def builder(scheme: str) -> Builder:
    return cast(Builder, importlib.import_module(MODULES[scheme]).build)


def make_source(config: SourceConfig, settings: Settings) -> Source:
    """The lister for ``config``, its client made from the manifest's options and the environment;
    raises :class:`SourceError` naming the source when the client cannot be made."""
    return builder(config.scheme)(config, settings)
