"""The registries are the one list of what a manifest may name: each target API and store declares itself
once, in its own module (``SPEC``), and the tables below are where the tests name it.

Adding a target touches three places: its module (``orchestrator/targets/<api>.py``, or a light
``<api>_spec.py`` beside a heavy client, listed in ``targets/registry.py``), its fake (``tests/fakes/``,
listed in ``tests/conftest.py``'s ``FAKES``) and its row in :data:`TARGETS`. A store the same: its module
(``orchestrator/sources/<store>_spec.py`` and its lister, listed in ``sources/registry.py``), the fixture
that serves it, and its row in :data:`STORES`.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from orchestrator.config import extras
from orchestrator.errors import ManifestError
from orchestrator.run.wiring import PLUGINS, parse_manifest
from orchestrator.sources.registry import BY_SCHEME, STORES, source_key
from orchestrator.targets.registry import BY_TYPE, TARGETS, target_identity
from tests import conftest

ENV = {"ZILLIZ_API_KEY": "zk", "IMPORT_ACCESS_KEY": "ak", "IMPORT_SECRET_KEY": "sk"}
CREDS = {"access_key": "${IMPORT_ACCESS_KEY}", "secret_key": "${IMPORT_SECRET_KEY}"}


class TargetRow(NamedTuple):
    section: dict[str, Any]  # a minimal ``target:`` section
    fake: str  # the fixture the suite runs it against (``fake_api``: its fake in conftest's FAKES)


class StoreRow(NamedTuple):
    source: dict[str, Any]  # a minimal source of this store (``collection`` added)
    fixture: str  # the fixture that serves it


TARGETS_TESTED: dict[str, TargetRow] = {
    "zilliz-v1": TargetRow({"type": "zilliz-v1", "region": "gcp-us-west1", "cluster_id": "inxx-1",
                               "api_key": "${ZILLIZ_API_KEY}"}, "fake_api"),
    "zilliz-v2": TargetRow({"type": "zilliz-v2", "cluster_id": "inxx-1", "api_key": "${ZILLIZ_API_KEY}"},
                              "fake_api"),
    "milvus": TargetRow({"type": "milvus", "endpoint": "http://localhost:19530"}, "fake_api"),
    "milvus-lite": TargetRow({"type": "milvus-lite", "uri": "./demo.db"}, "tmp_path"),  # embedded
    "milvus-grpc": TargetRow({"type": "milvus-grpc", "endpoint": "http://localhost:19530"}, "milvus_uri"),
}
STORES_TESTED: dict[str, StoreRow] = {
    "s3": StoreRow({"url": "s3://lake/emb/"}, "s3_endpoint"),  # moto's S3 server
    "gs": StoreRow({"url": "gs://lake/emb/"}, "gcs_endpoint"),  # fake-gcs-server
    "az": StoreRow({"url": "az://lake/emb/", "account": "lakeacct"}, "azurite_endpoint"),
    "file": StoreRow({"url": "./lake"}, "tmp_path"),
}


def manifest(target: dict[str, Any], sources: list[dict[str, Any]], base_dir: Path) -> Any:
    doc: dict[str, Any] = {"version": 1, "target": target, "sources": sources}
    if BY_TYPE[target["type"]].capabilities.credentials:
        doc["credentials"] = CREDS
    return parse_manifest(doc, file="m.yaml", base_dir=base_dir, stem="m", environ=ENV)


def test_the_tables_name_every_registered_plugin_once() -> None:
    assert [spec.type for spec in TARGETS] == list(BY_TYPE) == list(TARGETS_TESTED)
    assert [spec.scheme for spec in STORES] == list(BY_SCHEME) == list(STORES_TESTED)
    assert PLUGINS.targets == TARGETS and PLUGINS.stores == STORES
    http = {t for t, row in TARGETS_TESTED.items() if row.fake == "fake_api"}
    assert http == set(conftest.FAKES)
    fixtures = {row.fake for row in TARGETS_TESTED.values()} | {row.fixture for row in STORES_TESTED.values()}
    for fixture in fixtures:
        assert fixture == "tmp_path" or callable(getattr(conftest, fixture, None)), fixture


@pytest.mark.parametrize("spec", TARGETS, ids=[spec.type for spec in TARGETS])
def test_every_target_declares_itself_whole(spec: Any, tmp_path: Path) -> None:
    for f in dataclasses.fields(spec):
        assert getattr(spec, f.name) is not None or f.name.startswith("extra"), f.name
    assert spec.extra is None or spec.extra in extras.EXTRAS
    caps = spec.capabilities
    assert caps.window >= 1 and caps.files_per_job >= 1 and (caps.sts_token <= caps.credentials)
    sources = [{"url": "s3://lake/emb/", "collection": "c"}]
    target = manifest(TARGETS_TESTED[spec.type].section, sources, tmp_path).target
    assert (target.type, target.capabilities) == (spec.type, caps)  # its section's parser is its own
    assert target_identity(target).startswith(f"{spec.type} ")


@pytest.mark.parametrize("spec", STORES, ids=[spec.scheme for spec in STORES])
def test_every_store_declares_itself_whole(spec: Any, tmp_path: Path) -> None:
    for f in dataclasses.fields(spec):
        assert getattr(spec, f.name) is not None or f.name == "extra", f.name
    assert spec.scheme in spec.spellings and spec.url_forms
    assert spec.extra is None or (spec.extra in extras.EXTRAS and spec.what)
    row = STORES_TESTED[spec.scheme]
    assert [s.scheme for s in STORES if s.locate(row.source["url"], tmp_path)] == [spec.scheme]  # its alone
    lite = TARGETS_TESTED["milvus-lite"].section
    source = manifest(lite, [{**row.source, "collection": "c"}], tmp_path).sources[0]
    assert source.scheme == spec.scheme and source_key(source).endswith("/")
    for key in {k for other in STORES for k in other.keys} - set(spec.keys):  # another store's key
        with pytest.raises(ManifestError, match=rf"{key}: only for .* sources, not {spec.scheme}://"):
            manifest(lite, [{**row.source, "collection": "c", key: "x"}], tmp_path)


def test_reading_a_manifest_imports_no_store_client_nor_optional_target() -> None:
    """Each spec imports its client only when it is built: validating a manifest of every store and of a
    target from the ``milvus`` extra loads none of them."""
    code = textwrap.dedent("""
        import sys
        from pathlib import Path
        from orchestrator.run.wiring import parse_manifest
        sources = [{"url": "s3://lake/e/", "collection": "c"}, {"url": "gs://lake/e/", "collection": "c"},
                   {"url": "az://lake/e/", "account": "acct", "collection": "c"},
                   {"url": ".", "collection": "c"}]
        target = {"type": "milvus-grpc", "endpoint": "http://x:19530"}
        doc = {"version": 1, "target": target, "sources": sources}
        parse_manifest(doc, file="m.yaml", base_dir=Path("/"), stem="m", environ={})
        heavy = ("boto3", "botocore", "google.cloud.storage", "azure.storage.blob", "pymilvus", "milvus_lite")
        print(sorted(m for m in sys.modules if m.startswith(heavy)))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parent.parent)
    assert done.stdout.strip() == "[]", done.stdout
