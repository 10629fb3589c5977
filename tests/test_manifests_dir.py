"""Every example in manifests/ is a valid manifest (with dummy values for the variables it names)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.run.wiring import load_manifest
from orchestrator.sources.registry import BY_SCHEME
from orchestrator.targets.registry import BY_TYPE

EXAMPLES = sorted((Path(__file__).parent.parent / "manifests").glob("*.yaml"))


def dummy_env(path: Path) -> dict[str, str]:
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", path.read_text()))
    return {name: f"dummy-{name.lower()}" for name in names}


def test_there_are_examples_for_every_target() -> None:
    assert {p.name for p in EXAMPLES} >= {"gcs-nightly.yaml", "minio.yaml", "demo.yaml", "azure-nightly.yaml"}
    manifests = [load_manifest(p, environ=dummy_env(p)) for p in EXAMPLES]
    assert {m.target.type for m in manifests} == set(BY_TYPE)
    assert {s.scheme for m in manifests for s in m.sources} == set(BY_SCHEME)  # every kind of source too


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates(path: Path) -> None:
    manifest = load_manifest(path, environ=dummy_env(path))
    assert manifest.sources
