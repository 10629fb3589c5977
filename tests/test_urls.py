"""Object URL styles: each form, with keys that need percent-encoding in https and none in native."""

from __future__ import annotations

import pytest

from orchestrator.models import StoredObject
from orchestrator.sources.registry import BY_SCHEME, object_url

ODD_KEY = "emb/day 1/a+b#c%d/café-😀.parquet"
ODD_ENCODED = "emb/day%201/a%2Bb%23c%25d/caf%C3%A9-%F0%9F%98%80.parquet"


def stored(scheme: str, key: str = ODD_KEY, bucket: str = "lake") -> StoredObject:
    return StoredObject(url=f"{scheme}://{bucket}/{key}", bucket=bucket, key=key, relative_key=key,
                        size=1, version="v", modified=0.0)


@pytest.mark.parametrize(("scheme", "style", "expected"), [
    ("s3", "native", f"s3://lake/{ODD_KEY}"),
    ("s3", "https-virtual", f"https://lake.s3.eu-west-3.amazonaws.com/{ODD_ENCODED}"),
    ("s3", "https-path", f"https://s3.eu-west-3.amazonaws.com/lake/{ODD_ENCODED}"),
    ("gs", "native", f"gs://lake/{ODD_KEY}"),
    ("gs", "https-path", f"https://storage.googleapis.com/lake/{ODD_ENCODED}"),
])
def test_each_style(scheme: str, style: str, expected: str) -> None:
    region = "eu-west-3" if scheme == "s3" else None
    assert BY_SCHEME[scheme].problem(style=style, bucket="lake", region=region, endpoint_url=None) is None
    assert object_url(stored(scheme), scheme=scheme, style=style, region=region) == expected


def test_azure_objects_are_named_by_their_https_url() -> None:
    obj = StoredObject(url=f"az://lakeacct/lake/{ODD_KEY}", bucket="lake", key=ODD_KEY, relative_key=ODD_KEY,
                       size=1, version="0x8DC", modified=0.0)
    assert BY_SCHEME["az"].problem(style="native", bucket="lake", region=None, endpoint_url=None) is None
    assert object_url(obj, scheme="az", style="native") == \
        f"https://lakeacct.blob.core.windows.net/lake/{ODD_ENCODED}"
    assert object_url(obj, scheme="az", style="native", endpoint_url="http://127.0.0.1:10000/lakeacct/") == \
        f"http://127.0.0.1:10000/lakeacct/lake/{ODD_ENCODED}"


def test_plain_keys_stay_readable() -> None:
    obj = stored("s3", "emb/year=2024/part-0001_a.b~c.parquet")
    assert object_url(obj, scheme="s3", style="https-path", region="us-east-1") == \
        "https://s3.us-east-1.amazonaws.com/lake/emb/year%3D2024/part-0001_a.b~c.parquet"


def test_endpoint_url_gives_path_style_on_that_host() -> None:
    url = object_url(stored("s3"), scheme="s3", style="https-path", endpoint_url="https://minio.local:9000/")
    assert url == f"https://minio.local:9000/lake/{ODD_ENCODED}"


def test_local_files_keep_their_file_url() -> None:
    obj = StoredObject(url="file:///data/a%20b.parquet", bucket="", key="/data/a b.parquet",
                       relative_key="a b.parquet", size=1, version="v", modified=0.0)
    assert object_url(obj, scheme="file", style="native") == "file:///data/a%20b.parquet"


@pytest.mark.parametrize(("scheme", "style", "bucket", "region", "endpoint", "words"), [
    ("gs", "https-virtual", "lake", None, None, "GCS objects take native or https-path"),
    ("s3", "https-virtual", "lake", None, None, "needs the bucket's region"),
    ("s3", "https-path", "lake", "nowhere", None, "needs the bucket's region"),
    ("s3", "https-virtual", "my.lake", "us-east-1", None, "bucket names with dots"),
    ("s3", "https-virtual", "lake", None, "http://minio:9000", "with endpoint_url use https-path"),
    ("file", "https-path", "", None, None, "keep their file:// URL"),
    ("az", "https-path", "lake", None, None, "Azure objects are always sent as https://"),
    ("az", "https-virtual", "lake", None, None, "leave object_url_style out"),
])
def test_styles_that_cannot_work_are_refused(scheme: str, style: str, bucket: str, region: str | None,
                                             endpoint: str | None, words: str) -> None:
    why = BY_SCHEME[scheme].problem(style=style, bucket=bucket, region=region, endpoint_url=endpoint)
    assert why is not None and words in why
