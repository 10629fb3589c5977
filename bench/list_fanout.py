"""Benchmark 3: listing fan-out, through our real S3Source (boto3, ListObjectsV2) against an
S3-compatible listing server written here (moto is too slow to measure listing: ~0.7 s per page).

The server runs in a process of its own (so that it does not share our GIL) and serves 200,000 keys
under 64 sub-prefixes, answering every page after 50 ms, like a store across a network. It honours
prefix, delimiter, max-keys, continuation-token, start-after and encoding-type as boto3 sends them.
  single:  settings.list_concurrency 1, one paginated stream
  fan-out: settings.list_concurrency N, the sub-prefixes walked N at a time (sources/fanout.py)
  ceiling: one stream with no page latency: how fast this machine parses listings at all
Both must list the same objects in the same order; the figure is the ratio of their times. Parsing
is CPU work under the GIL, so fan-out can hide the pages' latency but not the parsing: the best ratio
is (parsing + latency) / parsing, i.e. single / ceiling.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from xml.sax.saxutils import escape

import httpx

from orchestrator.manifest import Settings, SourceConfig
from orchestrator.sources.s3 import build

BUCKET = "bench"
KEYS, PREFIXES, LATENCY = 200_000, 64, 0.05
MODIFIED = "2024-01-01T00:00:00.000Z"


# -- the server -----------------------------------------------------------------------------------

def make_keys(count: int, prefixes: int) -> list[str]:
    return sorted(f"data/p{i % prefixes:02}/part-{i:07}.parquet" for i in range(count))


def etag(key: str) -> str:
    return f"{zlib.crc32(key.encode()):08x}" * 4


def list_page(keys: list[str], *, prefix: str, delimiter: str, max_keys: int, after: str | None,
              ) -> tuple[list[str], list[str], str | None]:
    """One ListObjectsV2 page: keys, common prefixes, and where the next page starts (None: done).
    ``after`` and the position returned are ``K<key>`` (start after that key) or ``P<prefix>`` (after
    every key under a common prefix that was rolled up)."""
    start = bisect.bisect_left(keys, prefix)
    if after is not None:
        kind, value = after[0], after[1:]
        start = max(start, _past(keys, value) if kind == "P" else bisect.bisect_right(keys, value))
    contents: list[str] = []
    prefixes: list[str] = []
    i, last = start, ""
    while i < len(keys) and keys[i].startswith(prefix):
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
            if parts.path.strip("/") != BUCKET or query.get("list-type") != "2":
                return self._send(404, b"<Error><Code>NoSuchBucket</Code></Error>", "application/xml")
            time.sleep(delay[0])
            with lock:
                pages[0] += 1
            return self._send(200, page_xml(keys, query), "application/xml")

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
def listing_credentials() -> Iterator[None]:
    """Dummy keys for boto3 to sign with (the server ignores them), whatever the environment holds."""
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
    saved = {k: os.environ.pop(k, None) for k in names}
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


def list_all(url: str, concurrency: int) -> tuple[float, int, list[tuple[str, str, int]]]:
    """Seconds, pages served, and every (key, etag, size), listing s3://bench/data/ as a run would."""
    config = SourceConfig(index=0, url=f"s3://{BUCKET}/data/", scheme="s3", bucket=BUCKET, prefix="data/",
                          collection="bench", partition=None, pattern=None, include=("**/*.parquet",),
                          exclude=(), endpoint_url=url, region="us-east-1", credentials=None, path_style=True)
    source = build(config, Settings(list_concurrency=concurrency))
    before = pages_served(url)
    start = time.perf_counter()
    listed = [(o.key, o.version, o.size) for o in source.list()]
    seconds = time.perf_counter() - start
    return seconds, pages_served(url) - before, listed


def pages_served(url: str) -> int:
    return int(httpx.get(f"{url}/_pages").json()["pages"])


def main(count: int = KEYS, prefixes: int = PREFIXES, latency: float = LATENCY,
         concurrencies: tuple[int, ...] = (Settings().list_concurrency,)) -> dict[str, Any]:
    server = subprocess.Popen([sys.executable, "-m", "bench.list_fanout", "serve", str(count), str(prefixes),
                               str(latency)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        with listing_credentials():
            single_s, single_pages, expected = list_all(url, 1)
            assert len(expected) == count and expected == sorted(expected), "the single stream is wrong"
            fanned: dict[str, Any] = {}
            for n in concurrencies:
                seconds, pages, listed = list_all(url, n)
                assert listed == expected, f"fan-out at {n} listed different objects"
                fanned[str(n)] = {"seconds": round(seconds, 2), "objects_per_s": round(count / seconds),
                                  "pages": pages, "speedup": round(single_s / seconds, 2)}
            httpx.get(f"{url}/_latency", params={"s": "0"})
            ceiling_s, _, listed = list_all(url, 1)
            assert listed == expected
    finally:
        server.terminate()
        server.wait()
    return {
        "keys": count, "prefixes": prefixes, "page_latency_s": latency, "identical": True,
        "single": {"seconds": round(single_s, 2), "objects_per_s": round(count / single_s),
                   "pages": single_pages, "latency_s": round(single_pages * latency, 2)},
        "fanout": fanned,
        "ceiling_no_latency": {"seconds": round(ceiling_s, 2), "objects_per_s": round(count / ceiling_s)},
        "best_possible_speedup": round(single_s / ceiling_s, 2),
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    else:
        print(json.dumps(main(), indent=2))
