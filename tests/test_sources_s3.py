"""The S3 lister against moto's server: nested prefixes, fan-out on and off, options, ranged reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from orchestrator.config.manifest import Settings, SourceConfig
from orchestrator.errors import SourceError
from orchestrator.sources.registry import make_source
from orchestrator.sources.s3 import S3Source
from tests.fakes.canned import Canned, CannedServer

NESTED = [
    "emb/top.parquet", "emb/a.parquet", "emb/a/1.parquet", "emb/a/b/2.parquet", "emb/a/b/c/3.parquet",
    "emb/b/1.parquet", "emb/b/2.parquet", "emb/c d/é+#%.parquet", "emb/solo/x/y/1.parquet",
    "emb/z/_SUCCESS", *[f"emb/many/{i:02}/part.parquet" for i in range(12)],
]
MARKERS = ["emb/", "emb/a/", "emb/b/x/"]  # "folder" objects some tools write
OUTSIDE = ["embx/1.parquet", "other/emb/1.parquet", "em"]


def config(bucket: str, **options: Any) -> SourceConfig:
    return SourceConfig(index=3, url=f"s3://{bucket}/emb/", scheme="s3", bucket=bucket, prefix="emb/",
                        collection="c", partition=None, pattern=None, include=("**",), exclude=(),
                        endpoint_url=None, region="us-east-1", credentials=None, **options)


@pytest.fixture
def nested(s3: Any, bucket: str) -> str:
    for key in NESTED + MARKERS + OUTSIDE:
        s3.put_object(Bucket=bucket, Key=key, Body=b"" if key.endswith("/") else key.encode())
    return bucket


def test_fan_out_on_and_off_list_the_same_objects_in_the_same_order(s3: Any, nested: str) -> None:
    one = S3Source(s3, label="s", bucket=nested, prefix="emb/", concurrency=1, page_size=4)
    fanned = S3Source(s3, label="s", bucket=nested, prefix="emb/", concurrency=4, page_size=4)
    listed = list(one.list())
    assert [o.key for o in listed] == sorted(NESTED)
    assert list(fanned.list()) == listed
    objects = {o.key: o for o in listed}
    odd = objects["emb/c d/é+#%.parquet"]
    assert (odd.url, odd.relative_key, odd.bucket) == ("s3://" + nested + "/emb/c d/é+#%.parquet",
                                                       "c d/é+#%.parquet", nested)
    assert odd.size == len(odd.key.encode()) and odd.version == odd.checksum and len(odd.version) == 32
    assert odd.modified > 1.7e9


def test_a_prefix_with_a_single_sub_prefix_and_none(s3: Any, nested: str) -> None:
    solo = S3Source(s3, label="s", bucket=nested, prefix="emb/solo/", concurrency=4, page_size=2)
    assert [o.relative_key for o in solo.list()] == ["x/y/1.parquet"]
    empty = S3Source(s3, label="s", bucket=nested, prefix="nothing/", concurrency=4)
    assert list(empty.list()) == []


def test_ranged_reads_and_a_changed_object(s3: Any, nested: str) -> None:
    source = S3Source(s3, label="sources[3] s3://x/emb/", bucket=nested, prefix="emb/")
    obj = next(o for o in source.list() if o.key == "emb/a/1.parquet")
    data = b"emb/a/1.parquet"
    assert source.read(obj) == data
    assert source.read(obj, 4, 7) == data[4:7]
    assert source.read(obj, 10) == data[10:]
    assert source.read(obj, 5, 5) == b""
    s3.put_object(Bucket=nested, Key=obj.key, Body=b"rewritten")
    with pytest.raises(SourceError, match=r"^sources\[3\] s3://x/emb/: cannot read emb/a/1.parquet: "
                                          "the object changed since it was listed"):
        source.read(obj, 0, 4)


def test_requester_pays_is_sent_on_list_and_get(s3: Any, nested: str) -> None:
    seen: list[tuple[str, bytes | None]] = []

    def record(request: Any, **_: Any) -> None:
        seen.append((request.method, request.headers.get("x-amz-request-payer")))

    s3.meta.events.register("before-send.s3", record)
    source = S3Source(s3, label="s", bucket=nested, prefix="emb/b/", request_payer="requester")
    objects = list(source.list())
    source.read(objects[0], 0, 2)
    assert seen and all(payer == b"requester" for _, payer in seen)
    assert {method for method, _ in seen} == {"GET"}


def test_registry_builds_from_options(env: dict[str, str], nested: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config").write_text("[profile minio]\nregion = us-east-1\n")
    (tmp_path / "credentials").write_text("[minio]\naws_access_key_id = k\naws_secret_access_key = s\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    source = make_source(config(nested, path_style=True, profile="minio"), Settings(list_concurrency=3))
    assert isinstance(source, S3Source)
    assert source.client.meta.config.s3 == {"addressing_style": "path"}
    assert source.concurrency == 3
    assert len(list(source.list())) == len(NESTED)
    with pytest.raises(SourceError, match=r"^sources\[3\] s3://.*/emb/: AWS profile 'nope' not found"):
        make_source(config(nested, profile="nope"), Settings())


@pytest.mark.parametrize(("settings", "pool"), [(Settings(), 10), (Settings(list_concurrency=16), 17),
                                                (Settings(concurrency=32), 32)])
def test_the_client_keeps_a_connection_for_each_thread_that_may_use_it(
        env: dict[str, str], nested: str, settings: Settings, pool: int) -> None:
    """Fan-out streams (and the level's read-ahead), or pre-flight reads from the submitting workers:
    botocore's 10 connections made urllib3 drop one after each call beyond them (a new handshake for
    the next) and warn "Connection pool is full" each time."""
    source = make_source(config(nested, path_style=True), settings)
    assert isinstance(source, S3Source)
    assert source.client.meta.config.max_pool_connections == pool


# -- what the fast reading of replies must keep: odd keys, page boundaries, errors ---------------------

ODD = ["odd/sp ace.parquet", "odd/plus+plus.parquet", "odd/pct%41%2F%.parquet", "odd/amp&lt<gt>.parquet",
       "odd/quote\"'.parquet", "odd/ctl\x01\x07\x1f.parquet", "odd/tab\t.parquet",
       "odd/ünï/cödé/日本.parquet", "odd/emoji🙂.parquet", "odd/semi;colon=eq?q#h.parquet",
       "odd/&amp;literal&#13;.parquet", "odd/ends with space .parquet", "odd/~tilde,comma.parquet"]


@pytest.mark.parametrize("concurrency", [1, 4])
def test_odd_keys_come_back_exactly(s3: Any, bucket: str, concurrency: int) -> None:
    for key in ODD:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    source = S3Source(s3, label="s", bucket=bucket, prefix="odd/", concurrency=concurrency, page_size=3)
    listed = list(source.list())
    assert [o.key for o in listed] == sorted(ODD)  # code point order is UTF-8 byte order, as S3 sorts
    assert all(o.size == len(o.key.encode()) and o.url == f"s3://{bucket}/{o.key}" for o in listed)
    heads = {k: s3.head_object(Bucket=bucket, Key=k)["ETag"].strip('"') for k in ODD}
    assert {o.key: o.version for o in listed} == heads


@pytest.fixture(scope="module")
def thousand(s3_endpoint: str) -> str:
    """1,000 keys under ``k/`` and one more under ``l/``: a listing of exactly one page and one of a
    page and a key."""
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="k", aws_secret_access_key="s")
    client.create_bucket(Bucket="thousand")
    for i in range(1000):
        client.put_object(Bucket="thousand", Key=f"k/{i:04}.parquet", Body=b"")
    client.put_object(Bucket="thousand", Key="l/1000.parquet", Body=b"")
    return "thousand"


@pytest.mark.parametrize(("prefix", "count"), [("k/", 1000), ("", 1001), ("k/09", 100), ("none/", 0)])
def test_page_boundaries(s3: Any, thousand: str, prefix: str, count: int) -> None:
    seen: list[str] = []
    s3.meta.events.register("before-send.s3.ListObjectsV2", lambda request, **_: seen.append(request.url))
    one = S3Source(s3, label="s", bucket=thousand, prefix=prefix)
    keys = [o.key for o in one.list()]
    assert len(keys) == count and keys == sorted(keys) and len(set(keys)) == count
    assert len(seen) == max(1, -(-count // 1000))  # no empty page asked for after a full last one
    assert list(S3Source(s3, label="s", bucket=thousand, prefix=prefix, concurrency=4).list()) == \
        list(one.list())


def test_a_listing_error_in_a_200_is_retried_then_named(canned: CannedServer) -> None:
    client = boto3.client("s3", endpoint_url=canned.url, region_name="us-east-1", aws_access_key_id="k",
                          aws_secret_access_key="s", config=Config(retries={"mode": "standard",
                                                                            "total_max_attempts": 2}))
    canned.reply = Canned(200, '<?xml version="1.0"?><Error><Code>InternalError</Code>'
                               "<Message>try again</Message></Error>", "application/xml")
    source = S3Source(client, label="s3 src", bucket="lake", prefix="emb/")
    with pytest.raises(SourceError, match=r"^s3 src: InternalError: try again$"):
        list(source.list())
    assert len(canned.paths) == 2  # botocore's check of 200 replies still runs, and retries


def test_a_reply_cut_short_is_not_read_as_a_listing(canned: CannedServer) -> None:
    client = boto3.client("s3", endpoint_url=canned.url, region_name="us-east-1", aws_access_key_id="k",
                          aws_secret_access_key="s", config=Config(retries={"total_max_attempts": 1}))
    canned.reply = Canned(200, '<?xml version="1.0"?><ListBucketResult><Contents><Key>emb/a</Key>',
                          "application/xml")
    with pytest.raises(SourceError, match=r"^s3 src: "):
        list(S3Source(client, label="s3 src", bucket="lake", prefix="emb/").list())


def test_no_such_bucket_is_one_line(s3: Any) -> None:
    source = S3Source(s3, label="sources[3] s3://gone/emb/", bucket="gone-bucket", prefix="emb/",
                      concurrency=4)
    with pytest.raises(SourceError, match=r"^sources\[3\] s3://gone/emb/: bucket not found$"):
        list(source.list())


def test_a_key_range_is_walked_without_asking_past_its_end(s3: Any, thousand: str) -> None:
    seen: list[str] = []
    s3.meta.events.register("before-send.s3.ListObjectsV2", lambda request, **_: seen.append(request.url))
    source = S3Source(s3, label="s", bucket=thousand, prefix="", page_size=100)
    keys = [o.key for page in source._walk("k/", "k/0500.parquet", "k/0700.parquet") for o in page]
    assert keys == [f"k/{i:04}.parquet" for i in range(500, 700)]
    assert len(seen) == 3 and "start-after=k%2F0500.parques" in seen[0]


def test_half_set_credentials_are_one_line(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SourceError) as raised:
        make_source(config("lake"), Settings())
    assert str(raised.value) == (
        "sources[3] s3://lake/emb/: incomplete AWS credentials in the environment: AWS_SECRET_ACCESS_KEY is "
        "missing (set the access key and the secret key together, or neither)")
