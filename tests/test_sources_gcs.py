"""The GCS lister against gcp-storage-emulator: listing, fields, fan-out, ranged reads, credentials."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from orchestrator.config.manifest import Settings, SourceConfig
from orchestrator.errors import SourceError
from orchestrator.sources.base import Lookup
from orchestrator.sources.gcs import GcsSource, Reply
from orchestrator.sources.registry import make_source
from tests.fakes.canned import Canned, CannedServer

NESTED = [
    "emb/top.parquet", "emb/a.parquet", "emb/a/1.parquet", "emb/a/b/2.parquet", "emb/b/1.parquet",
    "emb/c d/é+#%.parquet", "emb/solo/x/1.parquet", *[f"emb/many/{i:02}/part.parquet" for i in range(10)],
]
OTHERS = ["emb/", "emb/a/", "embx/1.parquet", "other/1.parquet"]


def config(bucket: str, **options: Any) -> SourceConfig:
    return SourceConfig(index=1, url=f"gs://{bucket}/emb/", scheme="gs", bucket=bucket, prefix="emb/",
                        collection="c", partition=None, pattern=None, include=("**",), exclude=(),
                        endpoint_url=None, region=None, credentials=None, **options)


@pytest.fixture
def nested(gcs: storage.Client, gcs_bucket: str) -> str:
    bucket = gcs.bucket(gcs_bucket)
    for key in NESTED + OTHERS:
        bucket.blob(key).upload_from_string(b"" if key.endswith("/") else key.encode())
    return gcs_bucket


def test_lists_every_object_under_the_prefix_with_its_generation(gcs: storage.Client, nested: str) -> None:
    source = make_source(config(nested), Settings(list_concurrency=1))
    assert isinstance(source, GcsSource)
    listed = list(source.list())
    assert [o.key for o in listed] == sorted(NESTED)
    odd = next(o for o in listed if o.relative_key == "c d/é+#%.parquet")
    blob = gcs.bucket(nested).get_blob(odd.key)
    assert odd.url == f"gs://{nested}/emb/c d/é+#%.parquet" and odd.bucket == nested
    assert odd.version == str(blob.generation) and odd.checksum == blob.md5_hash
    assert odd.size == len(odd.key.encode()) and odd.modified == blob.updated.timestamp()


def test_fan_out_on_and_off_give_the_same_listing(gcs: storage.Client, nested: str) -> None:
    one = GcsSource(gcs, label="g", bucket=nested, prefix="emb/", concurrency=1)
    fanned = GcsSource(gcs, label="g", bucket=nested, prefix="emb/", concurrency=4)
    assert list(fanned.list()) == list(one.list())
    solo = GcsSource(gcs, label="g", bucket=nested, prefix="emb/solo/", concurrency=4)
    assert [o.relative_key for o in solo.list()] == ["x/1.parquet"]


def test_ranged_reads(gcs: storage.Client, nested: str) -> None:
    source = GcsSource(gcs, label="g", bucket=nested, prefix="emb/a/")
    obj = next(o for o in source.list() if o.key == "emb/a/1.parquet")
    data = b"emb/a/1.parquet"
    assert source.read(obj) == data
    assert source.read(obj, 4, 7) == data[4:7]
    assert source.read(obj, 10) == data[10:]
    assert source.read(obj, 3, 3) == b""


def test_bucket_not_found_names_the_source(gcs: storage.Client) -> None:
    source = make_source(config("no-such-bucket"), Settings())
    with pytest.raises(SourceError, match=r"^sources\[1\] gs://no-such-bucket/emb/: bucket not found$"):
        list(source.list())


def test_head_gives_what_the_listing_gives_found_by_an_event(gcs: storage.Client, nested: str,
                                                            canned: CannedServer) -> None:
    """``discovery: events`` looks an announced object up: the same object its listing gives (so the
    ledger sees one version), found by the event; None for an object that is not there."""
    source = make_source(config(nested), Settings())
    assert isinstance(source, GcsSource) and isinstance(source, Lookup)
    for listed in source.list():
        assert source.head(listed.key) == listed._replace(found="event")
    assert source.head("emb/never-written.parquet") is None
    canned.reply = Canned(403, '{"error": {"code": 403, "message": "no storage.objects.get"}}')
    refused = GcsSource(storage.Client(project="t", credentials=AnonymousCredentials(),
                                       client_options={"api_endpoint": canned.url}),
                        label=source.label, bucket=nested, prefix="emb/")
    with pytest.raises(SourceError) as info:
        refused.head("emb/a.parquet")
    assert str(info.value) == (f"sources[1] gs://{nested}/emb/: cannot look emb/a.parquet up: access denied "
                               "(the listing credentials need storage.objects.list and .get here)")


def test_a_key_file_that_cannot_be_read(env: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"^sources\[1\] gs://lake/emb/: cannot use service_account_file"):
        make_source(config("lake", service_account_file=tmp_path / "missing.json"), Settings())
    (tmp_path / "bad.json").write_text('{"type": "service_account"}')
    with pytest.raises(SourceError, match="cannot use service_account_file"):
        make_source(config("lake", service_account_file=tmp_path / "bad.json"), Settings())


def test_a_key_range_is_walked(gcs: storage.Client, nested: str) -> None:
    source = GcsSource(gcs, label="g", bucket=nested, prefix="emb/")
    keys = [o.key for page in source._walk("emb/", "emb/a/", "emb/b/") for o in page]
    assert keys == ["emb/a/1.parquet", "emb/a/b/2.parquet"]


@pytest.fixture(scope="module")
def paged() -> Iterator[str]:
    """The benchmark's listing server (it pages as GCS does, unlike the emulator): 2,500 objects under
    ``data/p0/`` to ``data/p2/``, answered at once."""
    server = subprocess.Popen([sys.executable, "-m", "bench.list_fanout", "serve", "2500", "3", "0"],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    yield server.stdout.readline().strip()
    server.terminate()
    server.wait()


@pytest.mark.parametrize("concurrency", [1, 3])
def test_pages_and_ranges_against_a_server_that_pages(paged: str, concurrency: int,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", paged)
    client = storage.Client(project="p", credentials=AnonymousCredentials())
    source = GcsSource(client, label="g", bucket="bench", prefix="data/", concurrency=concurrency)
    listed = list(source.list())
    assert [o.key for o in listed] == sorted(f"data/p{i % 3:02}/part-{i:07}.parquet" for i in range(2500))
    assert len({o.version for o in listed}) == 2500 and all(o.checksum and o.size == 1 << 20 for o in listed)


@pytest.mark.parametrize(("text", "problem"), [
    ("not json at all", "not a JSON key file"),
    ("[1, 2]", "expected a JSON object (a service account key), found a JSON list"),
    ('{"type": "authorized_user", "client_id": "a", "client_secret": "b", "refresh_token": "c"}',
     "a key of type 'authorized_user', not 'service_account'"),
])
def test_a_key_file_of_the_wrong_kind_is_named(env: dict[str, str], tmp_path: Path, text: str,
                                               problem: str) -> None:
    key = tmp_path / "key.json"
    key.write_text(text)
    with pytest.raises(SourceError) as raised:
        make_source(config("lake", service_account_file=key), Settings())
    assert str(raised.value).startswith(f"sources[1] gs://lake/emb/: cannot use service_account_file {key}: ")
    assert problem in str(raised.value)
    assert "client_secret" not in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(("body", "token"), [
    (b'{"nextPageToken": "Q2FiYw==", "items": [{"name": "a"}]}', "Q2FiYw=="),
    (b'{"items":[{"name":"a"}],"nextPageToken":"xyz"}', "xyz"),
    (b'{"items": [{"name": "a"}]}', None),
    (b'{"nextPageToken": "", "items": []}', None),
    (b'{"nextPageToken": "a\\"b\\u00e9", "items": []}', 'a"b\u00e9'),  # escapes: read as JSON
    (b'{"items": [{"name": "x\\"nextPageToken\\":\\"no"}]}', None),  # in a name: escaped quotes
])
def test_the_next_page_token_is_found_without_reading_the_reply(body: bytes, token: str | None) -> None:
    assert Reply(body).next_token() == token


def test_the_session_keeps_a_connection_for_each_thread_that_may_use_it(
        gcs: storage.Client, nested: str) -> None:
    """requests keeps 10: with 16 streams urllib3 dropped a connection after each call beyond them and
    warned "Connection pool is full" each time (the same as S3's client did)."""
    source = make_source(config(nested), Settings(list_concurrency=16))
    assert isinstance(source, GcsSource)
    adapter = source.client._http.get_adapter("https://storage.googleapis.com/")
    assert adapter.poolmanager.connection_pool_kw["maxsize"] == 17
    assert [o.key for o in source.list()] == sorted(NESTED)
