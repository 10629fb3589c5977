"""Per-type validation of the manifest's ``target`` section, and the example manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.config.manifest import TARGET_TYPES, ZILLIZ_V2_URL, Manifest, parse
from orchestrator.errors import ManifestError

ENV = {"ZILLIZ_API_KEY": "zk", "IMPORT_ACCESS_KEY": "ak", "IMPORT_SECRET_KEY": "sk", "STS": "st",
       "MILVUS_TOKEN": "root:pw", "MILVUS_PASSWORD": "pw",
       "IMPORT_SESSION_TOKEN": "st"}
CREDS = {"access_key": "${IMPORT_ACCESS_KEY}", "secret_key": "${IMPORT_SECRET_KEY}"}
S3 = [{"url": "s3://lake/emb/", "collection": "articles"}]
TARGETS: dict[str, dict[str, Any]] = {
    "zilliz-v1": {"type": "zilliz-v1", "region": "gcp-us-west1", "cluster_id": "inxx-1",
                  "api_key": "${ZILLIZ_API_KEY}"},
    "zilliz-v2": {"type": "zilliz-v2", "cluster_id": "inxx-1", "api_key": "${ZILLIZ_API_KEY}"},
    "milvus": {"type": "milvus", "endpoint": "http://localhost:19530"},
    "milvus-lite": {"type": "milvus-lite", "uri": "./demo.db"},
    "milvus-grpc": {"type": "milvus-grpc", "endpoint": "http://localhost:19530"},
}


def manifest(target: dict[str, Any], *, credentials: Any = None, sources: Any = None,
             base_dir: Path = Path("/work/m")) -> Manifest:
    doc: dict[str, Any] = {"version": 1, "target": target, "sources": sources or S3}
    if credentials is not None:
        doc["credentials"] = credentials
    return parse(doc, file="m.yaml", base_dir=base_dir, stem="m", environ=ENV)


def fails(match: str, target: dict[str, Any], **kwargs: Any) -> ManifestError:
    with pytest.raises(ManifestError, match=match) as info:
        manifest(target, **kwargs)
    return info.value


def test_every_type_has_a_minimal_manifest() -> None:
    assert set(TARGETS) == set(TARGET_TYPES)
    v2 = manifest(TARGETS["zilliz-v2"], credentials=CREDS).target
    assert v2.base_url == ZILLIZ_V2_URL and v2.api_key is not None and v2.api_key.reveal() == "zk"
    m = manifest(TARGETS["milvus"]).target
    assert (m.base_url, m.api_key, m.db_name, m.two_phase) == ("http://localhost:19530", None, None, True)
    assert not manifest({**TARGETS["milvus"], "two_phase": False}).target.two_phase
    lite = manifest(TARGETS["milvus-lite"]).target
    assert lite.uri == Path("/work/m/demo.db") and not lite.create_collection and lite.metric == "COSINE"


def test_unknown_keys_name_the_known_ones() -> None:
    error = fails("unknown key", {**TARGETS["milvus"], "cluster_id": "inxx-1"})
    assert error.path == "target.cluster_id" and "token" in error.problem and "db_name" in error.problem
    fails(r"target\.region: unknown key", {**TARGETS["zilliz-v2"], "region": "gcp-us-west1"},
          credentials=CREDS)
    fails(r"target\.type: expected one of zilliz-v1, zilliz-v2, milvus, milvus-lite",
          {"type": "pinecone"})
    fails(r"target\.type: required key is missing", {"uri": "./x.db"})


def test_zilliz_v2_endpoint_database_and_sts_token() -> None:
    t = manifest({**TARGETS["zilliz-v2"], "endpoint": "https://proxy:8443/", "db_name": "analytics"},
                 credentials={**CREDS, "token": "${STS}"})
    assert t.target.base_url == "https://proxy:8443" and t.target.db_name == "analytics"
    assert t.credentials is not None and t.credentials.token is not None
    assert t.credentials.token.reveal() == "st"
    fails(r"target\.db_name: '1db' is not a valid", {**TARGETS["zilliz-v2"], "db_name": "1db"},
          credentials=CREDS)
    fails(r"credentials\.token: the zilliz-v1 import API takes no session token",
          TARGETS["zilliz-v1"], credentials={**CREDS, "token": "${STS}"})


def test_secrets_only_from_the_environment() -> None:
    fails(r"target\.api_key: secrets are not accepted literally", {**TARGETS["zilliz-v2"], "api_key": "zk"},
          credentials=CREDS)
    fails(r"target\.token: secrets are not accepted literally", {**TARGETS["milvus"], "token": "root:pw"})
    fails(r"target\.password: secrets are not accepted literally",
          {**TARGETS["milvus"], "user": "root", "password": "pw"})
    fails(r"credentials\.token: secrets are not accepted literally", TARGETS["zilliz-v2"],
          credentials={**CREDS, "token": "st"})


def test_milvus_bearer_is_a_token_or_user_and_password() -> None:
    t = manifest({**TARGETS["milvus"], "token": "${MILVUS_TOKEN}"}).target
    assert t.api_key is not None and t.api_key.reveal() == "root:pw"
    t = manifest({**TARGETS["milvus"], "user": "root", "password": "${MILVUS_PASSWORD}"}).target
    assert t.api_key is not None and t.api_key.reveal() == "root:pw"
    fails(r"target\.token: set either token or user and password",
          {**TARGETS["milvus"], "token": "${MILVUS_TOKEN}", "user": "root"})
    fails(r"target\.password: user and password go together", {**TARGETS["milvus"], "user": "root"})
    fails(r"target\.endpoint: expected http\(s\)://host", {**TARGETS["milvus"], "endpoint": "localhost"})


@pytest.mark.parametrize("kind", ["milvus", "milvus-lite"])
def test_targets_that_read_objects_themselves_take_no_credentials(kind: str) -> None:
    fails(r"^m\.yaml: credentials: the .* target reads the objects itself", TARGETS[kind], credentials=CREDS)
    fails(r"sources\[0\]\.credentials: the .* target reads", TARGETS[kind],
          sources=[{**S3[0], "credentials": CREDS}])


@pytest.mark.parametrize("kind", ["zilliz-v1", "zilliz-v2"])
def test_zilliz_still_needs_credentials(kind: str) -> None:
    fails(r"sources\[0\]\.credentials: no credentials for the import service", TARGETS[kind])


def test_partitions_by_type() -> None:
    with_partition = [{**S3[0], "partition": "p2024"}]
    fails(r"sources\[0\]\.partition: the zilliz-v1 import API cannot target a partition",
          TARGETS["zilliz-v1"], credentials=CREDS, sources=with_partition)
    for kind in ("zilliz-v2", "milvus", "milvus-lite"):
        creds = CREDS if kind == "zilliz-v2" else None
        loaded = manifest(TARGETS[kind], credentials=creds, sources=with_partition)
        assert loaded.sources[0].partition == "p2024"


def test_milvus_reads_its_own_bucket_not_a_local_folder() -> None:
    fails(r"sources\[0\]\.url: the milvus target imports from the bucket the server reads",
          TARGETS["milvus"], sources=[{"url": "./data", "collection": "c"}])
    assert manifest(TARGETS["milvus-lite"], sources=[{"url": "./data", "collection": "c"}]).sources[0].root \
        == Path("/work/m/data")


def test_milvus_lite_keys() -> None:
    t = manifest({**TARGETS["milvus-lite"], "uri": "../dbs/x.db", "create_collection": True, "metric": "L2"})
    assert t.target.uri == Path("/work/dbs/x.db") and t.target.create_collection and t.target.metric == "L2"
    fails(r"target\.uri: expected a database path ending in \.db", {**TARGETS["milvus-lite"], "uri": "./x"})
    fails(r"target\.uri: expected a database path", {**TARGETS["milvus-lite"], "uri": "http://h:19530"})
    fails(r"target\.create_collection: expected true or false, got str 'yes'",
          {**TARGETS["milvus-lite"], "create_collection": "yes"})
    fails(r"target\.metric: expected one of COSINE, L2, IP", {**TARGETS["milvus-lite"], "metric": "HAMMING"})


@pytest.mark.parametrize(("given", "kept"), [("2.3", "2.3"), ("v2.4.5", "v2.4.5"), (2.3, "2.3")])
def test_milvus_version_setting(given: Any, kept: str) -> None:
    doc: dict[str, Any] = {"version": 1, "target": TARGETS["milvus-grpc"], "sources": S3,
                           "settings": {"milvus_version": given}}
    loaded = parse(doc, file="m.yaml", base_dir=Path("/w"), stem="m", environ=ENV)
    assert loaded.settings.milvus_version == kept
    doc["settings"] = {"milvus_version": "latest"}
    with pytest.raises(ManifestError, match=r"settings.milvus_version: expected a version such as '2.3'"):
        parse(doc, file="m.yaml", base_dir=Path("/w"), stem="m", environ=ENV)


def test_every_target_type_is_declared_once_and_built() -> None:
    from orchestrator.config.manifest import TARGET_RULES
    from orchestrator.run import wiring

    assert set(wiring.TARGETS) == set(TARGET_RULES) == set(TARGETS)
    assert all(rules.window >= 1 for rules in TARGET_RULES.values())
    assert [t for t, rules in TARGET_RULES.items() if rules.in_process] == ["milvus-lite"]
