"""Every example in manifests/ is a valid manifest (with dummy values for the variables it names)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.manifest import load

EXAMPLES = sorted((Path(__file__).parent.parent / "manifests").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert {p.name for p in EXAMPLES} >= {"gcs-nightly.yaml", "minio.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates(path: Path) -> None:
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", path.read_text()))
    manifest = load(path, environ={name: f"dummy-{name.lower()}" for name in names})
    assert manifest.sources
