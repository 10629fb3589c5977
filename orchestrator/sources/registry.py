"""Which lister serves which URL scheme. Adding a store (Azure Blob, say) is one module with a
``build(config, settings)`` that makes its client, and one line here."""

from __future__ import annotations

from collections.abc import Callable

from ..manifest import Settings, SourceConfig
from . import gcs, local, s3
from .base import Source

Builder = Callable[[SourceConfig, Settings], Source]

BUILDERS: dict[str, Builder] = {
    "s3": s3.build,
    "gs": gcs.build,
    "file": local.build,
}


def make_source(config: SourceConfig, settings: Settings) -> Source:
    """The lister for ``config``, its client made from the manifest's options and the environment;
    raises :class:`SourceError` naming the source when the client cannot be made."""
    return BUILDERS[config.scheme](config, settings)
