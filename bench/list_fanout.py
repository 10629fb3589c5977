"""Benchmark 3: listing, S3 and GCS, through our real sources against listing servers written here
(moto and the GCS emulator are too slow to measure listing: ~0.7 s per page), beside rclone and
beside the way we listed before (boto3's paginator; google-cloud-storage's ``list_blobs``).

The server runs in a process of its own (so that it does not share our GIL) and serves 200,000 keys
under 64 sub-prefixes, answering every page after 50 ms, like a store across a network: S3's
ListObjectsV2 (prefix, delimiter, max-keys, continuation-token, start-after, encoding-type) and GCS's
JSON ``objects.list`` (prefix, delimiter, maxResults, pageToken, fields).
  one stream:  settings.list_concurrency 1, one paginated stream
  fan-out:     settings.list_concurrency N, the sub-prefixes walked N at a time (sources/fanout.py)
  no latency:  the same with pages answered at once: how fast this machine lists at all
Every listing must give the same objects in the same order. Fan-out can hide the pages' latency but
not the CPU work, so its bound is min(N, one stream / no latency).
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from xml.sax.saxutils import escape

import boto3
import botocore.session
import httpx
from botocore.config import Config
from botocore.parsers import RestXMLParser

from orchestrator.config.manifest import Settings, SourceConfig
from orchestrator.models import StoredObject
from orchestrator.sources import gcs
from orchestrator.sources.registry import make_source
from orchestrator.sources.s3_listing import parse_page

BUCKET = "bench"
KEYS, PREFIXES, LATENCY = 200_000, 64, 0.05
MODIFIED = "2024-01-01T00:00:00.000Z"
Listed = list[tuple[str, str, int]]


# -- the server -----------------------------------------------------------------------------------

def keys(count: int, prefixes: int) -> Iterator[str]:
    """The keys served, unsorted."""
    return (f"data/p{i % prefixes:02}/part-{i:07}.parquet" for i in range(count))


def make_keys(count: int, prefixes: int) -> list[str]:
    return sorted(keys(count, prefixes))


def keys_in_order(count: int, prefixes: int) -> Iterator[str]:
    """The keys served, in key order (as ``make_keys``), made one at a time."""
    return (f"data/p{p:02}/part-{i:07}.parquet" for p in range(prefixes) for i in range(p, count, prefixes))


def etag(key: str) -> str:
    return f"{zlib.crc32(key.encode()):08x}" * 4


def list_page(keys: list[str], *, prefix: str, delimiter: str, max_keys: int, after: str | None,
              first: str = "", end: str | None = None) -> tuple[list[str], list[str], str | None]:
    """One ListObjectsV2 page: keys, common prefixes, and where the next page starts (None: done).
    ``after`` and the position returned are ``K<key>`` (start after that key) or ``P<prefix>`` (after
    every key under a common prefix that was rolled up). ``first`` and ``end`` bound the keys (GCS's
    startOffset and endOffset)."""
    start = bisect.bisect_left(keys, max(prefix, first))
    if after is not None:
        kind, value = after[0], after[1:]
        start = max(start, _past(keys, value) if kind == "P" else bisect.bisect_right(keys, value))
    contents: list[str] = []
    prefixes: list[str] = []
    i, last = start, ""
    while i < len(keys) and keys[i].startswith(prefix) and (end is None or keys[i] < end):
        if len(contents) + len(prefixes) >= max_keys:
            return contents, prefixes, last
        key = keys[i]
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut >= 0:
            rolled = key[:cut + len(delimiter)]
            prefixes.append(rolled)
            last = "P" + rolled
            i = _past(keys, rolled)
        else:
            contents.append(key)
            last = "K" + key
            i += 1
    return contents, prefixes, None


def _past(keys: list[str], rolled: str) -> int:
    """The index of the first key not under ``rolled``."""
    return bisect.bisect_left(keys, rolled[:-1] + chr(ord(rolled[-1]) + 1))


def page_xml(keys: list[str], query: dict[str, str]) -> bytes:
    prefix = query.get("prefix", "")
    delimiter = query.get("delimiter", "")
    max_keys = min(int(query.get("max-keys", "1000")), 1000)
    token = query.get("continuation-token")
    start_after = query.get("start-after")
    after = base64.urlsafe_b64decode(token).decode() if token else "K" + start_after if start_after else None
    contents, prefixes, next_after = list_page(keys, prefix=prefix, delimiter=delimiter, max_keys=max_keys,
                                               after=after)
    url = query.get("encoding-type") == "url"

    def enc(text: str) -> str:
        return escape(quote(text, safe="/") if url else text)

    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n'
             '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
             f"<Name>{BUCKET}</Name><Prefix>{enc(prefix)}</Prefix>",
             f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>",
             f"<IsTruncated>{'true' if next_after is not None else 'false'}</IsTruncated>"]
    if delimiter:
        parts.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
    if url:
        parts.append("<EncodingType>url</EncodingType>")
    if token:
        parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
    elif query.get("start-after"):
        parts.append(f"<StartAfter>{enc(query['start-after'])}</StartAfter>")
    if next_after is not None:
        parts.append("<NextContinuationToken>"
                     f"{base64.urlsafe_b64encode(next_after.encode()).decode()}</NextContinuationToken>")
    parts += [f"<Contents><Key>{enc(k)}</Key><LastModified>{MODIFIED}</LastModified>"
              f"<ETag>&quot;{etag(k)}&quot;</ETag><Size>1048576</Size><StorageClass>STANDARD</StorageClass>"
              "</Contents>" for k in contents]
    parts += [f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>" for p in prefixes]
    parts.append("</ListBucketResult>")
    return "".join(parts).encode()


def gcs_generation(key: str) -> int:
    return 1_700_000_000_000_000 + zlib.crc32(key.encode())


GCS_FIELDS: dict[str, Callable[[str], str]] = {
    "kind": lambda k: "storage#object", "id": lambda k: f"{BUCKET}/{k}/{gcs_generation(k)}",
    "selfLink": lambda k: f"https://www.googleapis.com/storage/v1/b/{BUCKET}/o/{quote(k, safe='')}",
    "name": lambda k: k, "bucket": lambda k: BUCKET, "generation": lambda k: str(gcs_generation(k)),
    "metageneration": lambda k: "1", "contentType": lambda k: "application/octet-stream",
    "storageClass": lambda k: "STANDARD", "size": lambda k: "1048576",
    "md5Hash": lambda k: base64.b64encode(bytes.fromhex(etag(k))).decode(), "crc32c": lambda k: "AAAAAA==",
    "etag": lambda k: "CAE=", "timeCreated": lambda k: MODIFIED, "updated": lambda k: MODIFIED,
    "timeStorageClassUpdated": lambda k: MODIFIED}


_ITEMS: dict[tuple[str, str], bytes] = {}  # (fields, key) -> the item's JSON: the server's time stays small


def page_json(keys: list[str], query: dict[str, str]) -> bytes:
    """One GCS ``objects.list`` page; ``fields`` picks the item fields as GCS does (all otherwise)."""
    token = query.get("pageToken")
    contents, prefixes, next_after = list_page(
        keys, prefix=query.get("prefix", ""), delimiter=query.get("delimiter", ""),
        max_keys=min(int(query.get("maxResults", "1000")), 1000),
        after=base64.urlsafe_b64decode(token).decode() if token else None,
        first=query.get("startOffset", ""), end=query.get("endOffset"))
    fields = query.get("fields", "")
    wanted = [(f, GCS_FIELDS[f]) for f in (fields[fields.index("items(") + 6:fields.index(")")].split(",")
                                           if "items(" in fields else GCS_FIELDS)]
    items = []
    for k in contents:
        item = _ITEMS.get((fields, k))
        if item is None:
            item = _ITEMS[fields, k] = json.dumps({f: value(k) for f, value in wanted}).encode()
        items.append(item)
    page: dict[str, Any] = {"kind": "storage#objects"}
    if prefixes:
        page["prefixes"] = prefixes
    if next_after is not None:
        page["nextPageToken"] = base64.urlsafe_b64encode(next_after.encode()).decode()
    head = json.dumps(page)[:-1].encode()
    return head + (b',"items":[' + b",".join(items) + b"]}" if items else b"}")


def serve(count: int, prefixes: int, latency: float) -> None:
    """Serve the listing on 127.0.0.1 and print its URL. ``GET /_pages`` says how many pages were
    served; ``GET /_latency?s=0.05`` sets the latency per page."""
    keys = make_keys(count, prefixes)
    pages = [0]
    delay = [latency]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            if parts.path == "/_latency":
                delay[0] = float(query["s"])
            if parts.path in ("/_pages", "/_latency"):
                return self._send(200, json.dumps({"pages": pages[0]}).encode(), "application/json")
            if parts.path == f"/storage/v1/b/{BUCKET}/o":
                self._page()
                return self._send(200, page_json(keys, query), "application/json")
            if parts.path.strip("/") != BUCKET or query.get("list-type") != "2":
                return self._send(404, b"<Error><Code>NoSuchBucket</Code></Error>", "application/xml")
            self._page()
            return self._send(200, page_xml(keys, query), "application/xml")

        def _page(self) -> None:
            time.sleep(delay[0])
            with lock:
                pages[0] += 1

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

    server = Server(("127.0.0.1", 0), Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


# -- the measurement ------------------------------------------------------------------------------

@contextlib.contextmanager
def listing_credentials(url: str) -> Iterator[None]:
    """Dummy keys for boto3 to sign with (the server ignores them), whatever the environment holds,
    and the GCS client pointed at the server (anonymous, as for an emulator)."""
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
             "STORAGE_EMULATOR_HOST")
    saved = {k: os.environ.pop(k, None) for k in names}
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", STORAGE_EMULATOR_HOST=url)
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


def config(scheme: str, url: str) -> SourceConfig:
    return SourceConfig(index=0, url=f"{scheme}://{BUCKET}/data/", scheme=scheme, bucket=BUCKET,
                        prefix="data/", collection="bench", partition=None, pattern=None,
                        include=("**/*.parquet",), exclude=(), endpoint_url=url if scheme == "s3" else None,
                        region="us-east-1" if scheme == "s3" else None, credentials=None,
                        path_style=scheme == "s3")


Listing = Callable[[], Iterator[StoredObject]]
Lister = Callable[[str], Listing]  # the server's URL -> a client built, ready to list


def ours(scheme: str, concurrency: int) -> Lister:
    """Our source for ``scheme``, built from a manifest entry as a run builds it."""
    def built(url: str) -> Listing:
        return make_source(config(scheme, url), Settings(list_concurrency=concurrency)).list
    return built


def boto3_paginator(url: str) -> Listing:
    """How S3Source listed before: boto3's paginator, botocore's parser (with its timestamps read by
    ``datetime.fromisoformat``, as S3Source then did)."""
    session = botocore.session.get_session()
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=datetime.fromisoformat)
    client = boto3.session.Session(botocore_session=session).client(
        "s3", endpoint_url=url, region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))

    def listing() -> Iterator[StoredObject]:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="data/",
                                                                     PaginationConfig={"PageSize": 1000}):
            yield from map(from_botocore, page.get("Contents", []))
    return listing


def from_botocore(entry: dict[str, Any]) -> StoredObject:
    """An object from one entry of botocore's parsed listing, as S3Source made them before."""
    key, etag = entry["Key"], entry["ETag"].strip('"')
    return StoredObject(url=f"s3://{BUCKET}/{key}", bucket=BUCKET, key=key, relative_key=key[5:],
                        size=entry["Size"], version=etag, modified=entry["LastModified"].timestamp(),
                        checksum=etag)


def list_blobs(url: str) -> Listing:
    """How GcsSource listed before: google-cloud-storage's ``list_blobs``, a ``Blob`` per item."""
    client = gcs.make_client(None, os.environ)

    def listing() -> Iterator[StoredObject]:
        for blob in client.list_blobs(BUCKET, prefix="data/", page_size=1000):
            yield StoredObject(url=f"gs://{BUCKET}/{blob.name}", bucket=BUCKET, key=blob.name,
                               relative_key=blob.name[5:], size=blob.size, version=str(blob.generation),
                               modified=blob.updated.timestamp(), checksum=blob.md5_hash)
    return listing


def timed(lister: Lister, url: str) -> tuple[dict[str, Any], Listed]:
    """Seconds, objects/s and pages served for one listing, and every (key, version, size) it gave.
    The clock starts once the client is built (boto3 takes 0.06-0.2 s, once per source in a run,
    the same whether it then lists in one stream or fans out): it times the listing."""
    listing = lister(url)
    before = pages_served(url)
    start = time.perf_counter()
    listed = [(o.key, o.version, o.size) for o in listing()]
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "objects_per_s": round(len(listed) / seconds),
            "pages": pages_served(url) - before}, listed


def rclone(url: str, count: int, *, fast_list: bool) -> dict[str, Any] | None:
    """rclone listing the same prefix (every key, recursively), or None when it is not installed.
    ``--fast-list`` lists in one stream; without it rclone walks the directories --checkers 8 at a time."""
    if shutil.which("rclone") is None:
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env.update(RCLONE_CONFIG_B_TYPE="s3", RCLONE_CONFIG_B_PROVIDER="Other", RCLONE_CONFIG_B_ENDPOINT=url,
               RCLONE_CONFIG_B_ACCESS_KEY_ID="bench", RCLONE_CONFIG_B_SECRET_ACCESS_KEY="bench",
               RCLONE_CONFIG_B_FORCE_PATH_STYLE="true", RCLONE_CONFIG_B_LIST_VERSION="2",
               RCLONE_CONFIG="/dev/null")
    args = ["rclone", "lsf", "-R", "--files-only", "--checkers", "8", *(["--fast-list"] if fast_list else []),
            f"B:{BUCKET}/data"]
    before = pages_served(url)
    start = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    listed = len(done.stdout.splitlines())
    assert listed == count, f"rclone listed {listed} objects"
    return {"seconds": round(seconds, 2), "objects_per_s": round(count / seconds),
            "pages": pages_served(url) - before}


def parse_only(keys: list[str], rounds: int = 20) -> dict[str, Any]:
    """Keys read per second from one 1,000-key reply held in memory, objects made: botocore's parser
    (as the paginator uses it) against ``parse_page``. No network, no threads: the parsing alone."""
    body = page_xml(keys, {"prefix": "data/", "max-keys": "1000", "encoding-type": "url"})
    shape = botocore.session.get_session().get_service_model("s3").operation_model(
        "ListObjectsV2").output_shape
    parser = RestXMLParser(timestamp_parser=datetime.fromisoformat)
    reply = {"body": body, "headers": {}, "status_code": 200}

    def botocore_page() -> int:
        return len(list(map(from_botocore, parser.parse(reply, shape)["Contents"])))

    def our_page() -> int:
        return len(parse_page(body, bucket=BUCKET, prefix="data/").objects)

    rates = {}
    for name, parse in (("botocore", botocore_page), ("ours", our_page)):
        best = float("inf")
        for _ in range(5):  # the best of five: other work on the machine only ever slows a round
            start = time.perf_counter()
            parsed = sum(parse() for _ in range(rounds))
            best = min(best, time.perf_counter() - start)
        rates[name] = round(parsed / best)
    return {"botocore_keys_per_s": rates["botocore"], "ours_keys_per_s": rates["ours"],
            "ratio": round(rates["ours"] / rates["botocore"], 2)}


def pages_served(url: str) -> int:
    return int(httpx.get(f"{url}/_pages").json()["pages"])


def set_latency(url: str, seconds: float) -> None:
    httpx.get(f"{url}/_latency", params={"s": str(seconds)})


@contextlib.contextmanager
def server(count: int, prefixes: int, latency: float) -> Iterator[str]:
    """The listing server in a process of its own; its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.list_fanout", "serve", str(count), str(prefixes),
                             str(latency)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait()


def store(url: str, scheme: str, concurrency: int, latency: float, count: int,
          before: Lister) -> dict[str, Any]:
    """Every measurement of one store: one stream and fan-out with and without page latency, the way
    we listed before (no latency), rclone for S3. All must list the same objects in the same order."""
    out: dict[str, Any] = {"latency": {}, "no_latency": {}}
    expected: Listed | None = None
    for phase, delay in (("latency", latency), ("no_latency", 0.0)):
        set_latency(url, delay)
        runs: list[tuple[str, Lister]] = [
            ("one_stream", ours(scheme, 1)), (f"fan_out_{concurrency}", ours(scheme, concurrency))]
        if phase == "no_latency":
            runs.append(("before", before))
        for name, listing in runs:
            figures, listed = timed(listing, url)
            expected = expected if expected is not None else listed
            assert len(listed) == count and listed == expected, f"{scheme} {name} listed other objects"
            out[phase][name] = figures
        if scheme == "s3":
            out[phase]["rclone_one_stream"] = rclone(url, count, fast_list=True)
            out[phase][f"rclone_checkers_{concurrency}"] = rclone(url, count, fast_list=False)
    one, fanned = out["latency"]["one_stream"]["seconds"], out["latency"][f"fan_out_{concurrency}"]["seconds"]
    bound = min(concurrency, one / out["no_latency"]["one_stream"]["seconds"])
    out.update(identical=True, fan_out_speedup=round(one / fanned, 2), bound=round(bound, 2),
               fraction_of_bound=round(one / fanned / bound, 2),
               vs_before=round(out["no_latency"]["one_stream"]["objects_per_s"]
                               / out["no_latency"]["before"]["objects_per_s"], 2))
    return out


def main(count: int = KEYS, prefixes: int = PREFIXES, latency: float = LATENCY,
         concurrency: int = Settings().list_concurrency) -> dict[str, Any]:
    with server(count, prefixes, latency) as url, listing_credentials(url):
        results = {"keys": count, "prefixes": prefixes, "page_latency_s": latency, "concurrency": concurrency,
                   "rclone": shutil.which("rclone") is not None,
                   "s3": store(url, "s3", concurrency, latency, count, boto3_paginator),
                   "gcs": store(url, "gs", concurrency, latency, count, list_blobs),
                   "parse_only": parse_only(make_keys(count, prefixes))}
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    else:
        print(json.dumps(main(), indent=2))
