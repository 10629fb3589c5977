"""Manifest validation: every error names the file, the place and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.errors import ManifestError
from orchestrator.run.wiring import load_manifest

ENV = {"ZILLIZ_API_KEY": "k-123456", "IMPORT_ACCESS_KEY": "a-123456", "IMPORT_SECRET_KEY": "s-123456"}


def base() -> dict[str, Any]:
    return {
        "version": 1,
        "target": {"type": "zilliz-v1", "region": "gcp-us-west1", "cluster_id": "inxx-1",
                   "api_key": "${ZILLIZ_API_KEY}"},
        "credentials": {"access_key": "${IMPORT_ACCESS_KEY}", "secret_key": "${IMPORT_SECRET_KEY}"},
        "sources": [{"url": "s3://lake/embeddings/", "collection": "articles"}],
    }


def write(tmp_path: Path, doc: Any, name: str = "nightly.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # errors name the manifest as the user typed it


def error(tmp_path: Path, doc: Any, env: dict[str, str] = ENV) -> str:
    write(tmp_path, doc)
    with pytest.raises(ManifestError) as info:
        load_manifest("nightly.yaml", env)
    return str(info.value)


def test_valid_manifest_has_defaults(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, base()), ENV)
    assert m.target.base_url == "https://controller.api.gcp-us-west1.zillizcloud.com"
    assert m.target.api_key.reveal() == "k-123456"
    assert "k-123456" not in repr(m) and "a-123456" not in repr(m)
    source = m.sources[0]
    assert (source.bucket, source.prefix, source.include) == ("lake", "embeddings/", ("**/*.parquet",))
    assert m.settings.concurrency == 4 and m.settings.max_attempts == 5
    assert m.ledger_path == tmp_path / "nightly.ledger.sqlite"


def test_prefix_without_slash_names_a_folder_and_env_is_substituted_anywhere(tmp_path: Path) -> None:
    doc = base()
    doc["sources"][0]["url"] = "s3://lake/${AREA}"
    m = load_manifest(write(tmp_path, doc), {**ENV, "AREA": "emb"})
    assert m.sources[0].prefix == "emb/"


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d["sources"][0].update(url="http://x"),
     "nightly.yaml: sources[0].url: expected s3://bucket/prefix, gs://bucket/prefix"),
    (lambda d: d["sources"].append({"url": "ftp://x/y", "collection": "c"}),
     "nightly.yaml: sources[1].url: expected s3://bucket/prefix"),
    (lambda d: d.update(sorces=[]), "nightly.yaml: sorces: unknown key"),
    (lambda d: d["target"].update(clusterid="x"), "nightly.yaml: target.clusterid: unknown key"),
    (lambda d: d["sources"][0].update(colection="x"), "nightly.yaml: sources[0].colection: unknown key"),
    (lambda d: d["target"].update(api_key="literal-key"),
     "nightly.yaml: target.api_key: secrets are not accepted literally; write ${ENV_VAR}"),
    (lambda d: d["credentials"].update(secret_key="abc"),
     "nightly.yaml: credentials.secret_key: secrets are not accepted literally"),
    (lambda d: d["target"].update(api_key="${NOPE_KEY}"),
     "nightly.yaml: target.api_key: environment variable NOPE_KEY is not set"),
    (lambda d: d.update(version=2), "nightly.yaml: version: this orchestrator reads manifest version 1"),
    (lambda d: d.pop("sources"), "nightly.yaml: sources: required key is missing"),
    (lambda d: d.update(sources=[]), "nightly.yaml: sources: expected a non-empty list"),
    (lambda d: d["target"].update(type="pinecone"), "nightly.yaml: target.type: expected one of zilliz-v1"),
    (lambda d: d["target"].pop("region"), "nightly.yaml: target: set region"),
    (lambda d: d["sources"][0].update(collection="has-dash"),
     "nightly.yaml: sources[0].collection: 'has-dash' is not a valid Milvus name"),
    (lambda d: d["sources"][0].update(collection="{coll}"),
     "nightly.yaml: sources[0].collection: template field {coll} is not a named group of pattern"),
    (lambda d: d["sources"][0].update(pattern="(?P<coll>[a-z+"),
     "nightly.yaml: sources[0].pattern: not a valid regular expression"),
    (lambda d: d["sources"][0].update(partition="p1"),
     "nightly.yaml: sources[0].partition: the zilliz-v1 import API cannot target a partition"),
    (lambda d: d.update(settings={"concurrency": 0}),
     "nightly.yaml: settings.concurrency: expected a whole number from 1 to 256, got 0"),
    (lambda d: d.update(settings={"on_change": "maybe"}),
     "nightly.yaml: settings.on_change: expected one of skip, reimport"),
    (lambda d: d.update(settings={"requests_per_second": "fast"}),
     "nightly.yaml: settings.requests_per_second: expected a number"),
    (lambda d: d.pop("credentials"),
     "nightly.yaml: sources[0].credentials: no credentials for the import service"),
    (lambda d: d["sources"][0].update(include="*.parquet"),
     "nightly.yaml: sources[0].include: expected a list of strings, got str"),
])
def test_errors_name_file_path_and_problem(tmp_path: Path, mutate: Any, expected: str) -> None:
    doc = base()
    mutate(doc)
    message = error(tmp_path, doc)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    message = error(tmp_path, "version: 1\ntarget: [\n")
    assert message.startswith("nightly.yaml: line ") and "not valid YAML" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"^nope\.yaml: cannot read: No such file"):
        load_manifest("nope.yaml", ENV)


def test_secret_values_never_appear_in_errors(tmp_path: Path) -> None:
    doc = base()
    doc["target"]["cluster_id"] = 12
    message = error(tmp_path, doc)
    assert "k-123456" not in message and "target.cluster_id" in message
    doc = base()
    doc["credentials"]["secret_key"] = 987654321  # a literal secret that YAML read as a number
    message = error(tmp_path, doc)
    assert message == "nightly.yaml: credentials.secret_key: expected a non-empty string, got int"


def test_relative_ledger_is_beside_the_manifest(tmp_path: Path) -> None:
    doc = base()
    doc["ledger"] = "state/l.sqlite"
    assert load_manifest(write(tmp_path, doc), ENV).ledger_path == tmp_path / "state" / "l.sqlite"
