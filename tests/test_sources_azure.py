"""The Azure lister against Azurite: listing, fields, fan-out, ranged reads, each kind of credentials,
and the errors a user meets, one line each."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import (
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    generate_container_sas,
)

from orchestrator.config.manifest import Settings, SourceConfig
from orchestrator.errors import SourceError
from orchestrator.models import Secret
from orchestrator.sources.azure import NO_CREDENTIALS, AzureSource, _PooledTransport, make_client
from orchestrator.sources.base import Lookup
from orchestrator.sources.registry import make_source
from tests.conftest import AZURE_ACCOUNT, AZURE_KEY, free_port
from tests.fakes.canned import Canned, CannedServer

NESTED = [
    "emb/top.parquet", "emb/a.parquet", "emb/a-b.parquet", "emb/a/1.parquet", "emb/a/b/2.parquet",
    "emb/b/1.parquet", "emb/c d/é+#%.parquet", "emb/solo/x/1.parquet",
    *[f"emb/many/{i:02}/part.parquet" for i in range(10)],
]
OTHERS = ["emb/", "emb/a/", "embx/1.parquet", "other/1.parquet"]
DIRECTORY = "emb/spark.parquet"  # a Data Lake Gen2 directory, as a hierarchical namespace lists it


def config(container: str, **options: Any) -> SourceConfig:
    return SourceConfig(index=2, url=f"az://{container}/emb/", scheme="az", bucket=container, prefix="emb/",
                        collection="c", partition=None, pattern=None, include=("**",), exclude=(),
                        region=None, credentials=None,
                        **{"account": AZURE_ACCOUNT, "endpoint_url": None, **options})


def sas(container: str, **permissions: bool) -> str:
    return generate_container_sas(AZURE_ACCOUNT, container, account_key=AZURE_KEY,
                                  permission=ContainerSasPermissions(**permissions),
                                  expiry=datetime.now(UTC) + timedelta(hours=1))


@pytest.fixture
def nested(azure: BlobServiceClient, azure_container: str) -> ContainerClient:
    container = azure.get_container_client(azure_container)
    for key in NESTED + OTHERS:
        container.upload_blob(key, b"" if key.endswith("/") else key.encode())
    container.upload_blob(DIRECTORY, b"", metadata={"hdi_isfolder": "true"})
    return container


def test_lists_every_object_under_the_prefix_with_its_etag(nested: ContainerClient) -> None:
    source = AzureSource(nested, label="a", account=AZURE_ACCOUNT, prefix="emb/", page_size=4)
    listed = list(source.list())
    assert [o.key for o in listed] == sorted(NESTED)  # no markers, no directory, nothing outside
    odd = next(o for o in listed if o.relative_key == "c d/é+#%.parquet")
    props = nested.get_blob_client(odd.key).get_blob_properties()
    assert odd.url == f"az://{AZURE_ACCOUNT}/{nested.container_name}/emb/c d/é+#%.parquet"
    assert odd.bucket == nested.container_name and odd.version == props.etag.strip('"')
    assert odd.checksum == base64.b64encode(props.content_settings.content_md5).decode()
    assert odd.size == len(odd.key.encode()) and odd.modified == props.last_modified.timestamp()


def test_fan_out_on_and_off_give_the_same_listing(nested: ContainerClient) -> None:
    one = AzureSource(nested, label="a", account=AZURE_ACCOUNT, prefix="emb/", concurrency=1, page_size=3)
    fanned = AzureSource(nested, label="a", account=AZURE_ACCOUNT, prefix="emb/", concurrency=4, page_size=3)
    assert list(fanned.list()) == list(one.list())
    solo = AzureSource(nested, label="a", account=AZURE_ACCOUNT, prefix="emb/solo/", concurrency=4)
    assert [o.relative_key for o in solo.list()] == ["x/1.parquet"]
    empty = AzureSource(nested, label="a", account=AZURE_ACCOUNT, prefix="nothing/", concurrency=4)
    assert list(empty.list()) == []


def test_ranged_reads_and_a_changed_object(nested: ContainerClient, azure_connection_string: str) -> None:
    ranges: list[str | None] = []
    client = ContainerClient.from_connection_string(
        azure_connection_string, nested.container_name,
        raw_request_hook=lambda pipeline: ranges.append(pipeline.http_request.headers.get("x-ms-range")))
    source = AzureSource(client, label="sources[2] az://x/emb/", account=AZURE_ACCOUNT, prefix="emb/a/")
    obj = next(o for o in source.list() if o.key == "emb/a/1.parquet")
    data = b"emb/a/1.parquet"
    ranges.clear()
    assert source.read(obj, 4, 7) == data[4:7]
    assert ranges == ["bytes=4-6"]  # only the bytes asked for are asked for
    assert source.read(obj) == data
    assert source.read(obj, 10) == data[10:]
    assert source.read(obj, 3, 3) == b""
    nested.upload_blob(obj.key, b"rewritten", overwrite=True)
    with pytest.raises(SourceError, match=r"^sources\[2\] az://x/emb/: cannot read emb/a/1.parquet: "
                                          "the object changed since it was listed$"):
        source.read(obj, 0, 4)


def test_each_kind_of_listing_credentials(nested: ContainerClient, azure_connection_string: str,
                                          azurite_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    name = nested.container_name
    for options in ({"connection_string": Secret(azure_connection_string)},
                    {"sas_token": Secret(sas(name, read=True, list=True)), "endpoint_url": azurite_endpoint},
                    {"sas_token": Secret("?" + sas(name, read=True, list=True)),
                     "endpoint_url": azurite_endpoint}):
        source = make_source(config(name, **options), Settings(list_concurrency=3))
        assert isinstance(source, AzureSource) and source.concurrency == 3
        assert len(list(source.list())) == len(NESTED), options

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_connection_string)
    for endpoint in (None, azurite_endpoint):
        assert len(list(make_source(config(name, endpoint_url=endpoint), Settings()).list())) == len(NESTED)
    # a connection string for another account (or endpoint) is left alone: DefaultAzureCredential it is,
    # which sends tokens only over https
    for other in (config(name, account="another", endpoint_url=azurite_endpoint),
                  config(name, endpoint_url=azurite_endpoint.replace("127.0.0.1", "localhost"))):
        with pytest.raises(SourceError, match=r"^sources\[2\] az://.*/emb/: DefaultAzureCredential needs an "
                                              r"https endpoint, and endpoint_url is http://[a-z0-9.]+:\d+: "
                                              "set connection_string or sas_token$"):
            make_source(other, Settings())


def test_connection_strings_that_cannot_be_used(azure_connection_string: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SourceError) as info:
        make_source(config("lake", account="another", connection_string=Secret(azure_connection_string)),
                    Settings())
    assert str(info.value) == (f"sources[2] az://lake/emb/: the connection string is for storage account "
                               f"'{AZURE_ACCOUNT}', this source reads 'another'")
    with pytest.raises(SourceError, match=r"^sources\[2\] az://lake/emb/: the endpoint is for storage "
                                          f"account 'another', this source reads '{AZURE_ACCOUNT}'$"):
        make_source(config("lake", sas_token=Secret("sig=x"), endpoint_url="http://127.0.0.1:9/another"),
                    Settings())
    broken = "AccountKey=" + AZURE_KEY  # no account, no endpoint
    with pytest.raises(SourceError) as info:
        make_source(config("lake", connection_string=Secret(broken)), Settings())
    assert str(info.value) == "sources[2] az://lake/emb/: connection_string is not a valid Azure Storage " \
                              "connection string"
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", broken)
    with pytest.raises(SourceError) as info:
        make_source(config("lake"), Settings())
    assert str(info.value) == "sources[2] az://lake/emb/: AZURE_STORAGE_CONNECTION_STRING is not a valid " \
                              "Azure Storage connection string"
    assert AZURE_KEY not in str(info.value)


def test_container_missing_and_permissions_refused(nested: ContainerClient, azurite_endpoint: str,
                                                  azure_connection_string: str) -> None:
    missing = make_source(config("no-such-container", connection_string=Secret(azure_connection_string)),
                          Settings())
    with pytest.raises(SourceError, match=r"^sources\[2\] az://no-such-container/emb/: container not found$"):
        list(missing.list())
    token = sas(nested.container_name, read=True)  # no list permission
    no_list = make_source(config(nested.container_name, sas_token=Secret(token),
                                 endpoint_url=azurite_endpoint), Settings())
    with pytest.raises(SourceError, match=r": access denied \(AuthorizationPermissionMismatch\): the listing "
                                          "identity needs Storage Blob Data Reader here") as info:
        list(no_list.list())
    assert token.split("sig=")[1][:10] not in str(info.value)
    wrong_key = azure_connection_string.replace(AZURE_KEY, base64.b64encode(b"k" * 64).decode())
    with pytest.raises(SourceError, match=r": access denied \(AuthorizationFailure\)"):
        list(make_source(config(nested.container_name, connection_string=Secret(wrong_key)),
                         Settings()).list())


def test_head_gives_what_the_listing_gives_found_by_an_event(nested: ContainerClient,
                                                            azure_connection_string: str) -> None:
    """``discovery: events`` looks an announced blob up: the same object its listing gives (so the ledger
    sees one version), found by the event; None for a blob that is not there or is a directory."""
    source = make_source(config(nested.container_name, connection_string=Secret(azure_connection_string)),
                         Settings())
    assert isinstance(source, Lookup)
    for listed in source.list():
        assert source.head(listed.key) == listed._replace(found="event")
    assert source.head("emb/never-written.parquet") is None
    assert source.head(DIRECTORY) is None
    token = sas(nested.container_name, list=True)  # no read permission: its properties are refused
    refused = make_source(config(nested.container_name, sas_token=Secret(token),
                                 endpoint_url=nested.url.rsplit("/", 1)[0]), Settings())
    with pytest.raises(SourceError) as info:
        refused.head("emb/a.parquet")  # type: ignore[attr-defined]
    assert str(info.value) == (f"sources[2] az://{nested.container_name}/emb/: cannot look emb/a.parquet up: "
                               "access denied (AuthorizationPermissionMismatch): the listing identity needs "
                               "Storage Blob Data Reader here (a SAS token: read and list permissions)")


def test_an_endpoint_that_is_down() -> None:
    port = free_port()
    token = "sv=2024-08-04&sr=c&sp=rl&sig=SECRETSIGNATURE%3D"
    down = make_source(config("lake", sas_token=Secret(token), endpoint_url=f"http://127.0.0.1:{port}/{AZURE_ACCOUNT}"),
                       Settings())
    with pytest.raises(SourceError) as info:
        list(down.list())
    assert str(info.value) == f"sources[2] az://lake/emb/: cannot reach the endpoint (http://127.0.0.1:{port})"


def test_default_azure_credential_is_what_is_left() -> None:
    """DefaultAzureCredential is what is left, for the account's https endpoint (no token is asked for
    until a listing)."""
    made: list[str] = []

    class Credential:
        def __init__(self) -> None:
            made.append("made")

        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise AssertionError("no call is made")

    client = make_client(account="lakeacct", container="lake", endpoint_url=None, connection_string=None,
                         sas_token=None, environ={}, label="a", credential=Credential)
    assert client.url == "https://lakeacct.blob.core.windows.net/lake" and made == ["made"]


def test_default_azure_credential_that_finds_nothing(
        env: dict[str, str], canned: CannedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real chain, kept on this host: its managed identity asks the canned server (App Service style),
    which refuses; no CLI is on PATH, no token cache in HOME. One line, and the token is asked for once."""
    canned.reply = Canned(400, json.dumps({"error": "invalid_request", "error_description": "no identity"}))
    for name, value in {"IDENTITY_ENDPOINT": f"{canned.url}/msi/token", "IDENTITY_HEADER": "h",
                        "HOME": str(tmp_path), "PATH": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    source = make_source(config("lake", endpoint_url=f"https://127.0.0.1:{free_port()}/{AZURE_ACCOUNT}"),
                         Settings())
    with pytest.raises(SourceError) as info:
        list(source.list())
    assert str(info.value) == f"sources[2] az://lake/emb/: {NO_CREDENTIALS}"
    assert [p.split("?")[0] for p in canned.paths] == ["/msi/token"]


def test_the_transport_keeps_a_connection_for_each_thread_that_may_use_it(
        nested: ContainerClient, azure_connection_string: str) -> None:
    """requests keeps 10: with 16 streams urllib3 dropped a connection after each call beyond them and
    warned "Connection pool is full" each time (the same as S3's client did)."""
    transport = _PooledTransport(17)
    transport.open()
    try:
        adapter = transport.session.get_adapter("https://lakeacct.blob.core.windows.net/")
        assert adapter.poolmanager.connection_pool_kw["maxsize"] == 17
    finally:
        transport.close()
    source = make_source(config(nested.container_name, connection_string=Secret(azure_connection_string)),
                         Settings(list_concurrency=16))
    assert len(list(source.list())) == len(NESTED)
