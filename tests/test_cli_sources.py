"""Sources through the CLI: the errors users meet, `ls`, min_age, and one manifest over S3, GCS and a
local folder run end to end against the fake import API."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient
from botocore.config import Config
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.cloud import storage

from orchestrator.cli.main import cli
from orchestrator.errors import SourceError
from orchestrator.sources.azure import AzureSource
from orchestrator.sources.gcs import RETRY, GcsSource
from orchestrator.sources.s3 import S3Source
from tests.conftest import AZURE_ACCOUNT, AZURE_KEY, free_port, parquet_bytes
from tests.fakes.canned import Canned, CannedServer
from tests.fakes.zilliz import FakeZilliz
from tests.test_operator_logs import unstamped

S3_XML = "application/xml"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def ledger_urls(manifest: Path) -> list[str]:
    result = invoke("status", str(manifest), "--json")
    assert result.exit_code == 0, result.output
    return sorted(o["url"] for o in json.loads(result.stdout)["objects"])


def s3_error(code: str, message: str = "refused") -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>")


def gcs_error(code: int, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message, "errors": [{"message": message}]}})


@pytest.fixture(scope="session")
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture
def good(put_objects: Callable[..., list[str]], bucket: str) -> dict[str, Any]:
    """A healthy S3 source to run beside a failing one."""
    urls = put_objects(["emb/1.parquet", "emb/2.parquet"])
    return {"source": {"url": f"s3://{bucket}/emb/", "collection": "articles"}, "urls": sorted(urls)}


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


# -- the errors users meet: one line naming the source, exit 1, the other sources still run ---------

S3_CANNED = {
    "access denied": (Canned(403, s3_error("AccessDenied"), S3_XML),
                      "access denied (the listing credentials need s3:ListBucket and s3:GetObject here)"),
    "bad key": (Canned(403, s3_error("InvalidAccessKeyId"), S3_XML),
                "the listing credentials are not valid (InvalidAccessKeyId)"),
    "expired": (Canned(400, s3_error("ExpiredToken"), S3_XML), "the listing credentials have expired"),
}


@pytest.mark.parametrize("case", sorted(S3_CANNED))
def test_s3_refusals(case: str, canned: CannedServer, good: dict[str, Any],
                     write_manifest: Callable[..., Path], fake_api: FakeZilliz) -> None:
    canned.reply, message = S3_CANNED[case]
    manifest = write_manifest(sources=[good["source"], {"url": "s3://private/emb/", "collection": "articles",
                                                        "endpoint_url": canned.url, "path_style": True}])
    assert_one_source_fails(manifest, fake_api, good["urls"], f"sources[1] s3://private/emb/: {message}")


def test_s3_bucket_not_found_and_endpoint_not_answering(
        good: dict[str, Any], write_manifest: Callable[..., Path], fake_api: FakeZilliz) -> None:
    port = free_port()
    manifest = write_manifest(sources=[
        {"url": "s3://no-such-bucket/emb/", "collection": "articles"},
        good["source"],
        {"url": "s3://lake/emb/", "collection": "articles", "endpoint_url": f"http://127.0.0.1:{port}"}])
    started = time.monotonic()
    result = invoke("run", str(manifest))
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    errors = [line for line in unstamped(result.stderr) if line.startswith("error:")]
    assert errors == ["error: sources[0] s3://no-such-bucket/emb/: bucket not found",
                      f"error: sources[2] s3://lake/emb/: cannot reach the endpoint (http://127.0.0.1:{port})"]
    assert "source_errors=2" in result.stdout
    assert ledger_urls(manifest) == good["urls"]
    assert sorted(c.body["objectUrl"] for c in fake_api.creates()) == good["urls"]


GCS_CANNED = {
    "access denied": (Canned(403, gcs_error(403, "lister does not have storage.objects.list access")),
                      "access denied (the listing credentials need storage.objects.list and .get here)"),
    "anonymous refused": (Canned(401, gcs_error(401, "Anonymous caller")),
                          "the store wants credentials; anonymous ones (STORAGE_EMULATOR_HOST is set) "
                          "were refused"),
}


@pytest.mark.parametrize("case", sorted(GCS_CANNED))
def test_gcs_refusals(case: str, canned: CannedServer, good: dict[str, Any], env: dict[str, str],
                      monkeypatch: pytest.MonkeyPatch, write_manifest: Callable[..., Path],
                      fake_api: FakeZilliz) -> None:
    canned.reply, message = GCS_CANNED[case]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", canned.url)
    manifest = write_manifest(sources=[good["source"], {"url": "gs://private/emb", "collection": "articles"}])
    assert_one_source_fails(manifest, fake_api, good["urls"], f"sources[1] gs://private/emb/: {message}")
    assert canned.paths and all(p.startswith("/storage/v1/b/private") for p in canned.paths)


@pytest.fixture
def key_file(canned: CannedServer, private_key_pem: str, tmp_path: Path) -> Path:
    """A service account key whose token endpoint is the canned server."""
    path = tmp_path / "lister.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "p", "private_key_id": "k1", "private_key": private_key_pem,
        "client_email": "lister@p.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": f"{canned.url}/token"}))
    return path


def test_gcs_key_whose_token_is_refused_at_every_call(
        canned: CannedServer, key_file: Path, good: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        write_manifest: Callable[..., Path], fake_api: FakeZilliz) -> None:
    """A token is granted, then every call answers 401, as for credentials that expired or lost access."""
    canned.by_path["/token"] = Canned(200, json.dumps({"access_token": "t0", "expires_in": 3600,
                                                       "token_type": "Bearer"}))
    canned.reply = Canned(401, gcs_error(401, "Invalid Credentials"))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", canned.url)
    manifest = write_manifest(sources=[good["source"], {
        "url": "gs://lake/emb/", "collection": "articles", "service_account_file": key_file.name}])
    assert_one_source_fails(manifest, fake_api, good["urls"], "sources[1] gs://lake/emb/: the listing "
                            "credentials are not valid or have expired (HTTP 401)")


def test_gcs_revoked_key_file(canned: CannedServer, key_file: Path, good: dict[str, Any], gcs: storage.Client,
                              write_manifest: Callable[..., Path], fake_api: FakeZilliz) -> None:
    """The key file signs a token request; the token endpoint refuses it, as Google does for a deleted
    or expired key."""
    canned.reply = Canned(400, json.dumps({"error": "invalid_grant",
                                           "error_description": "Invalid JWT Signature."}))
    manifest = write_manifest(sources=[good["source"], {
        "url": "gs://lake/emb/", "collection": "articles", "service_account_file": key_file.name}])
    assert_one_source_fails(manifest, fake_api, good["urls"],
                            "sources[1] gs://lake/emb/: the listing credentials were refused (expired, "
                            "revoked or not valid): invalid_grant: Invalid JWT Signature.")
    assert canned.paths and set(canned.paths) == {"/token"}


def test_gcs_bucket_not_found_and_endpoint_not_answering(
        good: dict[str, Any], gcs: storage.Client, monkeypatch: pytest.MonkeyPatch,
        write_manifest: Callable[..., Path], fake_api: FakeZilliz) -> None:
    manifest = write_manifest(sources=[good["source"],
                                       {"url": "gs://no-such-bucket/x/y", "collection": "articles"}])
    assert_one_source_fails(manifest, fake_api, good["urls"],
                            "sources[1] gs://no-such-bucket/x/y/: bucket not found")

    port = free_port()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    plan = invoke("plan", str(manifest))
    assert time.monotonic() - started < 5  # a refused connection is not retried
    assert plan.exit_code == 1
    assert unstamped(plan.stderr)[0] == \
        f"error: sources[1] gs://no-such-bucket/x/y/: cannot reach the endpoint (http://127.0.0.1:{port})"


def azure_error(code: str, message: str = "refused") -> str:
    return (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>")


AZURE_CANNED = {
    "bad key": (Canned(403, azure_error("AuthenticationFailed"), S3_XML),
                "the listing credentials were refused (AuthenticationFailed): check the account key, SAS "
                "token or connection string, and that it has not expired"),
    "no role": (Canned(403, azure_error("AuthorizationPermissionMismatch"), S3_XML),
                "access denied (AuthorizationPermissionMismatch): the listing identity needs Storage Blob "
                "Data Reader here (a SAS token: read and list permissions)"),
}


@pytest.mark.parametrize("case", sorted(AZURE_CANNED))
def test_azure_refusals(case: str, canned: CannedServer, good: dict[str, Any], env: dict[str, str],
                        monkeypatch: pytest.MonkeyPatch, write_manifest: Callable[..., Path],
                        fake_api: FakeZilliz) -> None:
    canned.reply, message = AZURE_CANNED[case]
    monkeypatch.setenv("LIST_SAS", "sv=2024-08-04&sp=rl&sig=LISTING-SAS-do-not-leak")
    manifest = write_manifest(sources=[good["source"], {
        "url": "az://private/emb/", "collection": "articles", "account": AZURE_ACCOUNT,
        "endpoint_url": f"{canned.url}/{AZURE_ACCOUNT}", "sas_token": "${LIST_SAS}"}])
    assert_one_source_fails(manifest, fake_api, good["urls"], f"sources[1] az://private/emb/: {message}")
    assert canned.paths and all(p.startswith(f"/{AZURE_ACCOUNT}/private?") for p in canned.paths)


def test_azure_container_not_found_and_endpoint_down(
        good: dict[str, Any], azure_connection_string: str, monkeypatch: pytest.MonkeyPatch,
        write_manifest: Callable[..., Path], fake_api: FakeZilliz) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_connection_string)
    monkeypatch.setenv("LIST_SAS", "sv=2024-08-04&sp=rl&sig=LISTING-SAS-do-not-leak")
    port = free_port()
    manifest = write_manifest(sources=[
        # listed with AZURE_STORAGE_CONNECTION_STRING, which names this account
        {"url": "az://no-such-container/emb", "collection": "articles", "account": AZURE_ACCOUNT},
        good["source"],
        {"url": "az://lake/emb/", "collection": "articles", "account": AZURE_ACCOUNT,
         "endpoint_url": f"http://127.0.0.1:{port}/{AZURE_ACCOUNT}", "sas_token": "${LIST_SAS}"}])
    result = invoke("--verbose", "run", str(manifest))
    assert result.exit_code == 1
    errors = [line for line in unstamped(result.stderr) if line.startswith("error:")]
    assert errors == ["error: sources[0] az://no-such-container/emb/: container not found",
                      f"error: sources[2] az://lake/emb/: cannot reach the endpoint (http://127.0.0.1:{port})"]
    assert "LISTING-SAS" not in result.output and AZURE_KEY not in result.output
    assert "source_errors=2" in result.stdout
    assert ledger_urls(manifest) == good["urls"]


def test_endpoints_that_accept_and_never_answer_time_out(silent_port: int,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Built with short timeouts here; the real ones (seconds, a few retries) are the sources' defaults."""
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{silent_port}", region_name="us-east-1",
                          aws_access_key_id="k", aws_secret_access_key="s",
                          config=Config(read_timeout=0.3, retries={"total_max_attempts": 1}))
    with pytest.raises(SourceError, match=r"^s3 src: the endpoint did not answer in time \(http://127"):
        list(S3Source(client, label="s3 src", bucket="lake", prefix="emb/").list())
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{silent_port}")
    source = GcsSource(storage.Client(project="p"), label="gs src", bucket="lake", prefix="emb/",
                       timeout=(0.3, 0.3), retry=RETRY.with_timeout(0.5))
    with pytest.raises(SourceError, match=r"^gs src: the endpoint did not answer in time \(http://127.*"
                                          r"\(gave up retrying\)$"):
        list(source.list())
    container = ContainerClient(f"http://127.0.0.1:{silent_port}/acct", "lake", credential="sig=SECRET%3D",
                                read_timeout=0.3, retry_total=0)
    with pytest.raises(SourceError) as info:
        list(AzureSource(container, label="az src", account="acct", prefix="emb/").list())
    assert str(info.value) == f"az src: the endpoint did not answer in time (http://127.0.0.1:{silent_port})"


def test_a_missing_folder(good: dict[str, Any], tmp_path: Path, write_manifest: Callable[..., Path],
                          fake_api: FakeZilliz) -> None:
    manifest = write_manifest(sources=[good["source"], {"url": "missing-folder", "collection": "articles"}])
    assert_one_source_fails(manifest, fake_api, good["urls"],
                            f"sources[1] {(tmp_path / 'missing-folder').as_uri()}/: folder not found")


def test_empty_prefix_warns_and_rules_that_keep_nothing_fail(
        good: dict[str, Any], put_objects: Callable[..., list[str]], bucket: str,
        write_manifest: Callable[..., Path], fake_api: FakeZilliz) -> None:
    put_objects(["raw/a.csv", "raw/b.csv"])
    manifest = write_manifest(sources=[
        good["source"], {"url": f"s3://{bucket}/nothing-here/", "collection": "articles"}])
    result = invoke("run", str(manifest))
    assert result.exit_code == 0, result.output
    assert f"warning: sources[1] s3://{bucket}/nothing-here/: no objects under this prefix" \
        in unstamped(result.stderr)
    assert ledger_urls(manifest) == good["urls"]

    manifest = write_manifest(sources=[{"url": f"s3://{bucket}/raw/", "collection": "articles"}],
                              name="raw.yaml")
    result = invoke("plan", str(manifest))
    assert result.exit_code == 1
    assert unstamped(result.stderr)[0] == \
        f"error: sources[0] s3://{bucket}/raw/: none of the 2 object(s) under this prefix is kept by " \
        "include/exclude (`orchestrator ls` shows the rule that dropped each)"


def assert_one_source_fails(manifest: Path, fake_api: FakeZilliz, good_urls: list[str], line: str) -> None:
    result = invoke("run", str(manifest))
    assert result.exit_code == 1, result.output
    errors = [x for x in unstamped(result.stderr) if x.startswith("error:")]
    assert errors == [f"error: {line}"]
    assert "submitted=2 " in result.stdout and "source_errors=1" in result.stdout
    assert ledger_urls(manifest) == good_urls  # the failing source left nothing in the ledger
    assert sorted(c.body["objectUrl"] for c in fake_api.creates()) == good_urls


# -- ls and min_age -----------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A local folder: two old parquet files, one just written, a marker and a scratch file."""
    root = tmp_path / "data"
    for rel in ["a/1.parquet", "b.parquet", "new.parquet", "_SUCCESS", "tmp/scratch.parquet"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(parquet_bytes())
    hour_ago = time.time() - 3600
    for rel in ["a/1.parquet", "b.parquet", "_SUCCESS", "tmp/scratch.parquet"]:
        os.utime(root / rel, (hour_ago, hour_ago))
    return root


def test_ls_shows_the_rule_for_every_object(folder: Path, put_objects: Callable[..., list[str]], bucket: str,
                                           write_manifest: Callable[..., Path]) -> None:
    put_objects(["emb/x.parquet"])
    manifest = write_manifest(sources=[
        {"url": f"s3://{bucket}/emb/", "collection": "articles"},
        {"url": "data", "collection": "articles", "exclude": ["tmp/**"]}], settings={"min_age_s": 600})
    result = invoke("ls", str(manifest), "--source", "1")
    assert result.exit_code == 0, result.output
    uri = folder.as_uri()
    assert result.stdout.splitlines() == [
        f"dropped  {uri}/_SUCCESS  (no include matched)",
        f"kept     {uri}/b.parquet  (include '**/*.parquet')",
        f"held     {uri}/new.parquet  (include '**/*.parquet'; modified 0s ago, under settings.min_age_s "
        "(600s): a later run takes it)",
        f"kept     {uri}/a/1.parquet  (include '**/*.parquet')",
        f"dropped  {uri}/tmp/scratch.parquet  (exclude 'tmp/**')",
    ]
    assert unstamped(result.stderr)[-1] == "ls: 2 dropped, 1 held back, 2 kept"

    every = invoke("ls", str(manifest), "--json")
    rows = [json.loads(line) for line in every.stdout.splitlines()]
    assert [(r["source"], r["kept"]) for r in rows][:1] == [(0, True)] and len(rows) == 6
    assert rows[0]["url"] == f"s3://{bucket}/emb/x.parquet" and rows[0]["held_back"].startswith("modified")
    assert rows[0]["checksum"] == rows[0]["version"] and rows[0]["size"] > 0

    wrong = invoke("ls", str(manifest), "--source", "2")
    assert wrong.exit_code == 2
    assert "--source: no source 2: the manifest has sources 0 to 1" in wrong.stderr


def test_plan_and_run_hold_back_objects_still_being_written(
        folder: Path, write_manifest: Callable[..., Path], fake_api: FakeZilliz) -> None:
    manifest = write_manifest(sources=[{"url": "data", "collection": "articles", "exclude": ["tmp/**"]}],
                              settings={"min_age_s": 600})
    plan = invoke("plan", str(manifest))
    assert plan.exit_code == 0, plan.output
    new = re.escape(f"{folder.as_uri()}/new.parquet")
    assert re.search(rf"^skip      {new} -> articles  \(modified \d+s ago, under settings\.min_age_s "
                     r"\(600s\): a later run takes it\)$", plan.stdout, re.M)
    run = invoke("run", str(manifest))
    assert run.exit_code == 0 and "submitted=2 " in run.stdout and "skipped=1" in run.stdout
    assert sorted(c.body["objectUrl"] for c in fake_api.creates()) == [
        (folder / "a/1.parquet").as_uri(), (folder / "b.parquet").as_uri()]


# -- one manifest, every kind of source -----------------------------------------------------------

def test_s3_gcs_azure_and_a_local_folder_in_one_run(
        put_objects: Callable[..., list[str]], bucket: str, gcs: storage.Client, gcs_bucket: str,
        azure: BlobServiceClient, azure_container: str, azurite_endpoint: str, azure_connection_string: str,
        monkeypatch: pytest.MonkeyPatch, folder: Path, write_manifest: Callable[..., Path],
        fake_api: FakeZilliz) -> None:
    put_objects(["emb/a.parquet", "emb/odd name+é.parquet", "emb/_SUCCESS"])
    for key in ["vec/x/1.parquet", "vec/sp ace#1.parquet", "vec/x/2.txt", "nat/1.parquet"]:
        gcs.bucket(gcs_bucket).blob(key).upload_from_string(parquet_bytes())
    for key in ["blobs/2024/a b+é.parquet", "blobs/2025/1.parquet", "blobs/_SUCCESS"]:
        azure.get_container_client(azure_container).upload_blob(key, parquet_bytes())
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_connection_string)  # for its account
    manifest = write_manifest(sources=[
        {"url": f"s3://{bucket}/emb/", "collection": "articles", "object_url_style": "https-virtual",
         "region": "us-east-1"},
        {"url": f"gs://{gcs_bucket}/vec", "collection": "vectors", "object_url_style": "https-path"},
        {"url": f"gs://{gcs_bucket}/nat/", "collection": "natives"},
        {"url": folder.as_uri(), "collection": "local", "exclude": ["tmp/**"]},
        {"url": f"az://{azure_container}/blobs", "pattern": "(?P<year>[0-9]{4})/",
         "collection": "azure_{year}", "account": AZURE_ACCOUNT, "endpoint_url": azurite_endpoint},
    ], settings={"list_concurrency": 4})

    result = invoke("run", str(manifest))
    assert result.exit_code == 0, result.output
    sent = sorted((c.body["collectionName"], c.body["objectUrl"]) for c in fake_api.creates())
    assert sent == sorted([
        ("articles", f"https://{bucket}.s3.us-east-1.amazonaws.com/emb/a.parquet"),
        ("articles", f"https://{bucket}.s3.us-east-1.amazonaws.com/emb/odd%20name%2B%C3%A9.parquet"),
        ("vectors", f"https://storage.googleapis.com/{gcs_bucket}/vec/x/1.parquet"),
        ("vectors", f"https://storage.googleapis.com/{gcs_bucket}/vec/sp%20ace%231.parquet"),
        ("natives", f"gs://{gcs_bucket}/nat/1.parquet"),
        ("local", (folder / "a/1.parquet").as_uri()),
        ("local", (folder / "b.parquet").as_uri()),
        ("local", (folder / "new.parquet").as_uri()),
        ("azure_2024", f"{azurite_endpoint}/{azure_container}/blobs/2024/a%20b%2B%C3%A9.parquet"),
        ("azure_2025", f"{azurite_endpoint}/{azure_container}/blobs/2025/1.parquet"),
    ])
    generation = str(gcs.bucket(gcs_bucket).get_blob("vec/x/1.parquet").generation)
    status = json.loads(invoke("status", str(manifest), "--json").stdout)
    by_url = {o["url"]: o for o in status["objects"]}
    assert by_url[f"gs://{gcs_bucket}/vec/x/1.parquet"]["etag"] == generation  # the ledger keeps native URLs
    assert f"s3://{bucket}/emb/odd name+é.parquet" in by_url
    blob = azure.get_blob_client(azure_container, "blobs/2024/a b+é.parquet").get_blob_properties()
    ledger_url = f"az://{AZURE_ACCOUNT}/{azure_container}/blobs/2024/a b+é.parquet"  # the account included
    assert by_url[ledger_url]["etag"] == blob.etag.strip('"')  # headers quote it, listings do not
    assert len(by_url) == 10

    again = invoke("run", str(manifest))
    assert again.exit_code == 0 and "submitted=0 " in again.stdout
    assert len(fake_api.creates()) == 10

    ls = invoke("ls", str(manifest), "--source", "4", "--json")
    listed = [json.loads(line) for line in ls.stdout.splitlines()]
    assert [(r["url"].rsplit("/", 2)[-2:], r["kept"]) for r in listed] == [
        (["2024", "a b+é.parquet"], True), (["2025", "1.parquet"], True), (["blobs", "_SUCCESS"], False)]
    assert all(r["version"] != r["checksum"] for r in listed)  # the ETag, and the MD5 Azure keeps
