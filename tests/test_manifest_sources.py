"""Manifest options for sources: the kinds of store, their per-kind keys, URL styles, listing settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.config.manifest import Manifest
from orchestrator.errors import ManifestError
from orchestrator.models import Secret
from orchestrator.run.wiring import parse_manifest

ENV = {"KEY": "k", "A": "a", "S": "s"}


def manifest(tmp_path: Path, *sources: dict[str, Any], settings: dict[str, Any] | None = None) -> Manifest:
    doc: dict[str, Any] = {
        "version": 1,
        "target": {"type": "zilliz-v1", "region": "gcp-us-west1", "cluster_id": "inxx-1",
                   "api_key": "${KEY}"},
        "credentials": {"access_key": "${A}", "secret_key": "${S}"},
        "sources": list(sources),
    }
    if settings is not None:
        doc["settings"] = settings
    return parse_manifest(doc, file="m.yaml", base_dir=tmp_path, stem="m", environ=ENV)


def refused(tmp_path: Path, *sources: dict[str, Any], settings: dict[str, Any] | None = None) -> str:
    with pytest.raises(ManifestError) as info:
        manifest(tmp_path, *sources, settings=settings)
    return str(info.value)


def test_the_three_kinds_and_their_options(tmp_path: Path) -> None:
    m = manifest(
        tmp_path,
        {"url": "gs://lake/emb", "collection": "c", "service_account_file": "keys/lister.json",
         "object_url_style": "https-path"},
        {"url": "s3://minio-lake/emb/", "collection": "c", "endpoint_url": "http://127.0.0.1:9000",
         "path_style": True, "profile": "minio", "region": "us-east-1", "request_payer": "requester"},
        {"url": "data", "collection": "c"},
    )
    gs, s3, local = m.sources
    assert (gs.scheme, gs.bucket, gs.prefix, gs.object_url_style) == ("gs", "lake", "emb/", "https-path")
    assert gs.service_account_file == tmp_path / "keys/lister.json"
    assert gs.label == "sources[0] gs://lake/emb/"
    assert (s3.path_style, s3.profile, s3.region, s3.request_payer) == (
        True, "minio", "us-east-1", "requester")
    assert s3.object_url_style == "native" and not gs.path_style
    assert local.scheme == "file" and local.root == tmp_path / "data"
    assert (m.settings.list_concurrency, m.settings.min_age_s) == (8, 60.0)


def test_azure_sources_in_both_forms(tmp_path: Path) -> None:
    az, https, azurite = manifest(
        tmp_path,
        {"url": "az://lake/emb", "collection": "c", "account": "lakeacct"},
        {"url": "https://lakeacct2.blob.core.windows.net/lake-2/x/y/", "collection": "c",
         "sas_token": "${S}"},
        {"url": "az://lake/", "collection": "c", "account": "devstoreaccount1",
         "endpoint_url": "http://127.0.0.1:10000/devstoreaccount1"}).sources
    assert (az.scheme, az.account, az.bucket, az.prefix, az.label) == (
        "az", "lakeacct", "lake", "emb/", "sources[0] az://lake/emb/")
    assert (https.scheme, https.account, https.bucket, https.prefix) == ("az", "lakeacct2", "lake-2", "x/y/")
    assert https.sas_token == Secret("s") and https.connection_string is None and https.endpoint_url is None
    assert (azurite.account, azurite.endpoint_url) == (
        "devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1")


def test_listing_settings(tmp_path: Path) -> None:
    m = manifest(tmp_path, {"url": "gs://lake/", "collection": "c"},
                 settings={"list_concurrency": 1, "min_age_s": 0})
    assert (m.settings.list_concurrency, m.settings.min_age_s) == (1, 0.0)
    assert "settings.min_age_s: expected a number of seconds from 0" in refused(
        tmp_path, {"url": "gs://lake/", "collection": "c"}, settings={"min_age_s": -1})
    assert "settings.list_concurrency: expected a whole number from 1 to 64" in refused(
        tmp_path, {"url": "gs://lake/", "collection": "c"}, settings={"list_concurrency": 0})


@pytest.mark.parametrize(("source", "message"), [
    ({"url": "gs://lake/", "collection": "c", "path_style": True},
     "m.yaml: sources[0].path_style: only for s3:// sources, not gs://"),
    ({"url": "gs://lake/", "collection": "c", "endpoint_url": "http://x"},
     "m.yaml: sources[0].endpoint_url: only for s3:// and az:// sources, not gs://"),
    ({"url": "s3://lake/", "collection": "c", "account": "acct"},
     "m.yaml: sources[0].account: only for az:// sources, not s3://"),
    ({"url": "az://lake/emb", "collection": "c"},
     "m.yaml: sources[0].account: az:// sources name their storage account: account: <name>"),
    ({"url": "az://lake/", "collection": "c", "account": "Lake_Acct"},
     "m.yaml: sources[0].account: 'Lake_Acct' is not a storage account name"),
    ({"url": "https://Lake.blob.core.windows.net/lake/", "collection": "c"},
     "m.yaml: sources[0].url: 'Lake' is not a storage account name"),
    ({"url": "az://my.lake/", "collection": "c", "account": "acct"},
     "m.yaml: sources[0].url: 'my.lake' is not an Azure container name"),
    ({"url": "https://acct.blob.core.windows.net/lake/", "collection": "c", "account": "acct"},
     "m.yaml: sources[0].account: the https URL names the account: remove this key"),
    ({"url": "https://acct.blob.core.windows.net/lake/", "collection": "c", "endpoint_url": "http://x"},
     "m.yaml: sources[0].endpoint_url: the https URL names the endpoint"),
    ({"url": "az://lake/", "collection": "c", "account": "acct", "connection_string": "AccountKey=abc"},
     "m.yaml: sources[0].connection_string: secrets are not accepted literally"),
    ({"url": "az://lake/", "collection": "c", "account": "acct", "connection_string": "${S}",
      "sas_token": "${S}"},
     "m.yaml: sources[0].sas_token: a connection string names the endpoint and the key: set one of"),
    ({"url": "az://lake/", "collection": "c", "account": "acct", "object_url_style": "https-path"},
     "m.yaml: sources[0].object_url_style: Azure objects are always sent as https://<account>.blob"),
    ({"url": "s3://lake/", "collection": "c", "service_account_file": "k.json"},
     "m.yaml: sources[0].service_account_file: only for gs:// sources, not s3://"),
    ({"url": "data", "collection": "c", "profile": "p"},
     "m.yaml: sources[0].profile: only for s3:// sources, not file://"),
    ({"url": "s3://lake/", "collection": "c", "path_style": "yes"},
     "m.yaml: sources[0].path_style: expected true or false"),
    ({"url": "s3://lake/", "collection": "c", "request_payer": "owner"},
     "m.yaml: sources[0].request_payer: expected one of requester"),
    ({"url": "s3://lake/", "collection": "c", "endpoint_url": "minio:9000"},
     "m.yaml: sources[0].endpoint_url: expected http(s)://host[:port]"),
    ({"url": "s3://lake/", "collection": "c", "object_url_style": "https"},
     "m.yaml: sources[0].object_url_style: expected one of native, https-virtual, https-path"),
    ({"url": "s3://lake/", "collection": "c", "object_url_style": "https-path"},
     "m.yaml: sources[0].object_url_style: https-path needs the bucket's region"),
    ({"url": "gs://lake/", "collection": "c", "object_url_style": "https-virtual"},
     "m.yaml: sources[0].object_url_style: GCS objects take native or https-path"),
    ({"url": "data", "collection": "c", "object_url_style": "https-path"},
     "m.yaml: sources[0].object_url_style: local folders keep their file:// URL"),
])
def test_options_in_the_wrong_place_are_refused(tmp_path: Path, source: dict[str, Any], message: str) -> None:
    assert refused(tmp_path, source).startswith(message)
