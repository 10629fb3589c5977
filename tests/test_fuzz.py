"""Property-based tests: generated manifests and server replies (status codes, JSON shapes, headers
with Retry-After, body sizes). Whatever comes, the orchestrator ends with a classified error or a
result: no traceback, an exit code in {0, 1, 2, 75}, no duplicate job, no secret in any output.

Small example counts by default (the ``ci`` profile keeps ``make test`` fast); ``make fuzz`` runs the
``fuzz`` profile (ORCHESTRATOR_FUZZ=fuzz) with many more.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orchestrator import api
from orchestrator.cli.main import cli
from orchestrator.errors import MAX_RETRY_AFTER_S, OrchestratorError, TargetError, TransientError
from orchestrator.ledger.factory import open_ledger
from orchestrator.targets.http import FATAL_CODES, TRANSIENT_CODES, call, job_id_problem
from tests.conftest import API_KEY, FAKES, SECRETS
from tests.fakes.base import FakeImportAPI, OddReply
from tests.fakes.canned import Canned, CannedServer
from tests.fakes.milvus import FakeMilvus
from tests.fakes.zilliz import FakeZilliz
from tests.test_hostile_replies import BAD_VALUES, FIELDS, plausible_lie, put_field
from tests.test_preflight_e2e import ARTICLES

settings.register_profile("ci", max_examples=15, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PROFILE = os.environ.get("ORCHESTRATOR_FUZZ", "ci")
settings.load_profile(PROFILE)

SECRET_ENV = {"ZILLIZ_API_KEY": API_KEY, "IMPORT_ACCESS_KEY": SECRETS[1], "IMPORT_SECRET_KEY": SECRETS[2],
              "BAD_KEY": "k-with-a-newline\n", "EMPTY": "", "AREA": "emb"}
SECRET_VALUES = [v for v in SECRET_ENV.values() if len(v) > 8]

# -- manifests --------------------------------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
words = st.sampled_from(["${AREA}", "$${AREA}", "${UNSET}", "abc${EMPTY}", "${BAD_KEY}", "${EMPTY}",
                         "s3://lake/x/", "gs://b/", "file:///tmp/none", "lake", "http://h:1", "x" * 300,
                         "articles", "{coll}", "(?P<coll>[a-z]+)/", "COSINE", "skip", "reimport",
                         "la\x00ke", "x\x00.db", "milvus-lite", "milvus", "zilliz-v2", "a.db"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 12, 10 ** 12),
                    st.floats(allow_nan=True, allow_infinity=True), text, words)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.one_of(text, words), inner,
                                                                       max_size=4)), max_leaves=12)
PLACES = [("version",), ("target",), ("target", "type"), ("target", "region"), ("target", "cluster_id"),
          ("target", "api_key"), ("target", "endpoint"), ("credentials",), ("credentials", "access_key"),
          ("credentials", "secret_key"), ("credentials", "token"), ("sources",), ("sources", 0),
          ("sources", 0, "url"), ("sources", 0, "collection"), ("sources", 0, "pattern"),
          ("sources", 0, "include"), ("sources", 0, "credentials"), ("settings",),
          ("settings", "concurrency"), ("settings", "on_change"), ("settings", "timeout_s"),
          ("settings", "max_file_gb"), ("ledger",), ("schema_files",), ("sorces",), ("target", "colection"),
          ("target", "uri"), ("schema_files", "articles")]
SECRET_PLACES = {("target", "api_key"), ("credentials", "access_key"), ("credentials", "secret_key"),
                 ("credentials", "token")}


def base() -> dict[str, Any]:
    return {"version": 1,
            "target": {"type": "zilliz-v1", "region": "gcp-us-west1", "cluster_id": "c-1",
                       "api_key": "${ZILLIZ_API_KEY}"},
            "credentials": {"access_key": "${IMPORT_ACCESS_KEY}", "secret_key": "${IMPORT_SECRET_KEY}"},
            "sources": [{"url": "s3://lake/${AREA}/", "collection": "articles"}]}


def _has(node: Any, step: Any) -> bool:
    return (isinstance(node, dict) and step in node) or (
        isinstance(node, list) and isinstance(step, int) and step < len(node))


def put(doc: Any, place: tuple[Any, ...], value: Any) -> None:
    """Set ``value`` at ``place`` if the places above it are still there."""
    node = doc
    for step in place[:-1]:
        if not _has(node, step):
            return
        node = node[step]
    if isinstance(node, dict) or _has(node, place[-1]):
        node[place[-1]] = value


secret_values = st.sampled_from(["${ZILLIZ_API_KEY}", "${BAD_KEY}", "${EMPTY}", "${UNSET}", "pre${AREA}",
                                 "$${ZILLIZ_API_KEY}", "literal", 12, None, ["${ZILLIZ_API_KEY}"]])


@st.composite
def manifests(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "bytes", "text"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "text":
        return draw(text).encode("utf-8")
    doc = base()
    for place in draw(st.lists(st.sampled_from(PLACES), max_size=4)):
        put(doc, place, draw(secret_values if place in SECRET_PLACES else values))
    return yaml.safe_dump(doc, allow_unicode=True).encode("utf-8")


@given(manifest=manifests())
def test_any_manifest_validates_or_is_refused_with_lines(manifest: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.yaml"
        path.write_bytes(manifest)
        result = CliRunner().invoke(cli, ["validate", str(path)], env=SECRET_ENV)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 2), result.output
    assert not any(secret in result.output for secret in SECRET_VALUES), result.output
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert lines and all(line.startswith(f"error: {path}") for line in lines), result.stderr
        assert all(len(line) < 600 for line in lines), result.stderr


# -- server replies, one call ---------------------------------------------------------------------

retry_afters = st.one_of(st.sampled_from(["999999", "inf", "-inf", "nan", "-1", "1e400", "0", "2.5", "",
                                          "Fri, 31 Dec 9999 23:59:59 GMT", "Wed, 21 Oct 2015 07:28:00 GMT",
                                          "Mon, 99 Foo 2015"]),
                         st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=20))
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                     text), lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                    st.dictionaries(text, inner, max_size=3)),
                           max_leaves=8)
codes = st.one_of(st.sampled_from(sorted({0, 200, *TRANSIENT_CODES, *FATAL_CODES, 90144, 1100})),
                  st.integers(), st.text(max_size=5), st.none())
bodies = st.one_of(
    st.builds(lambda code, data, msg: json.dumps({"code": code, "data": data, "message": msg}),
              codes, json_values, json_values),
    json_values.map(json.dumps), text, st.sampled_from(["", "<html>502</html>", "{", "x" * (9 << 20)]))
statuses = st.one_of(st.sampled_from([200, 200, 400, 401, 403, 404, 409, 429, 500, 502, 503, 504]),
                     st.integers(200, 599))


@pytest.fixture(scope="module")
def server() -> Any:
    canned = CannedServer().start()
    yield canned
    canned.stop()


@given(status=statuses, body=bodies, retry_after=st.one_of(st.none(), retry_afters), creates=st.booleans())
def test_any_reply_to_one_call_is_classified(server: CannedServer, status: int, body: str,
                                              retry_after: str | None, creates: bool) -> None:
    server.reply = Canned(status, body, headers={} if retry_after is None else {"Retry-After": retry_after})
    with httpx.Client(timeout=10) as client:
        try:
            call(client, "POST", f"{server.url}/create", headers={}, json={}, success_codes=frozenset({0}),
                 creates=creates)
        except TransientError as exc:
            assert exc.retry_after is None or 0 <= exc.retry_after < float("inf")
            assert len(str(exc)) < 600
        except TargetError as exc:
            assert len(str(exc)) < 600


# -- server replies, whole runs -------------------------------------------------------------------

def runs(path: Path, urls: list[str], count: int, *, waits: list[float],
         before: Callable[[int], None] = lambda _run: None) -> tuple[list[int], list[Any], list[Any]]:
    """``count`` runs of the manifest through the Python API (``before(i)`` ahead of each), without
    sleeping: their exit codes (a classified error counts as the CLI's exit), then the ledger's rows
    and the events of ``urls``."""
    manifest = api.validate(path)
    codes = []
    for run in range(count):
        before(run)
        try:
            codes.append(api.run(manifest, sleep=waits.append, stop=threading.Event()).exit_code())
        except OrchestratorError as exc:  # a classified error: the CLI prints it, exit 1 or 75
            assert len(str(exc)) < 10_000
            codes.append(75 if "another run" in str(exc) else 1)
    with open_ledger(manifest.ledger_path) as ledger:
        return codes, list(ledger.records()), [e for url in urls for e in ledger.events(url)]


def assert_one_live_job_each(fake: FakeImportAPI, urls: list[str]) -> None:
    for url in urls:
        live = [j for j in fake.jobs_for(url) if j.fail_reason is None]
        assert len(live) <= 1, f"{url}: {len(live)} jobs"


ambiguous = st.builds(  # the server made the job, and the reply says nothing usable about it
    OddReply, status=st.one_of(st.sampled_from([500, 502, 504]), st.integers(505, 599)),
    body=st.one_of(st.binary(max_size=50), st.just(b"x" * (9 << 20))),
    headers=st.just({}), makes_job=st.just(True)) | st.builds(
    OddReply, status=st.just(200),
    body=st.sampled_from([b"", b"<html>oops</html>", b"[]", b'{"data": {"jobId": "x"}}', b"{",
                          b"\xff\xfe garbage", b"x" * (9 << 20)]),
    headers=st.just({}), makes_job=st.just(True))
refusals = st.builds(  # the server made nothing, and said so in some way
    OddReply, status=st.sampled_from([200, 400, 409, 429, 503, 500]),
    body=st.builds(lambda code, msg: json.dumps({"code": code, "message": msg}).encode(),
                   st.sampled_from(sorted({*TRANSIENT_CODES, 1100, 90144, 47036, 80001})), text),
    headers=st.one_of(st.just({}), retry_afters.map(lambda v: {"Retry-After": v})),
    makes_job=st.just(False))


@given(replies=st.lists(st.one_of(ambiguous, refusals), min_size=1, max_size=5))
def test_any_create_replies_never_duplicate_nor_leak(
    replies: list[OddReply], put_objects: Callable[..., list[str]], bucket: str, env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    urls = sorted(put_objects([f"fuzz/{i}.parquet" for i in range(3)]))
    fake = FakeZilliz(api_key=API_KEY, odd_replies=list(replies)).start()
    waits: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "fuzz.yaml"
            path.write_text(yaml.safe_dump({
                "version": 1, "target": fake.manifest_target(),
                "credentials": {"access_key": "${IMPORT_ACCESS_KEY}", "secret_key": "${IMPORT_SECRET_KEY}"},
                "sources": [{"url": f"s3://{bucket}/fuzz/", "collection": "articles"}],
                "settings": {"min_age_s": 0, "preflight": "off", "concurrency": 1, "max_attempts": 3,
                             "requests_per_second": 1000}}))
            caplog.set_level(logging.INFO, logger="orchestrator")
            codes, rows, events = runs(path, urls, 2, waits=waits)  # the second finds the odd replies used up
    finally:
        fake.stop()
    assert set(codes) <= {0, 1, 75}
    assert all(0 <= w <= MAX_RETRY_AFTER_S for w in waits), waits
    assert_one_live_job_each(fake, urls)
    recorded = {r.job_id for r in rows if r.job_id is not None}
    assert recorded <= {j.job_id for j in fake.all_jobs()}
    texts = [caplog.text, *(r.error or "" for r in rows), *(str(e[4]) for e in events)]
    assert not any(secret in t for t in texts for secret in SECRETS)


# -- any field of any reply, whole runs -----------------------------------------------------------

FIELD_CASES = [(name, route, path) for name, routes in FIELDS.items() for route, paths in routes.items()
               for path in paths]
hostile_values = st.one_of(
    json_values, st.sampled_from(BAD_VALUES),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(codec="utf-8"), max_size=40), st.lists(st.integers(), max_size=3))
charsets = st.sampled_from([None, "rot13", "utf-16", "latin-1", "no-such-charset", "utf-8"])


def hides_a_job(route: str, path: str, value: Any) -> bool:
    """A lie no client can see through that hides a job from the lookup after a lost create reply: a
    job id, collection or file name that is well-formed but another's, or a job list that says it has
    no jobs. Mixed with a create reply that breaks the protocol, each would make an honest client
    send the object again; alone, each is tried in ``tests/test_hostile_replies.py``. (A job-list
    record whose job id cannot be read is kept in the mix: it keeps the lookup from proving absence.)"""
    leaf = path.rsplit(".", 1)[-1]
    if leaf == "jobId":
        return job_id_problem(value) is None
    if leaf in ("collectionName", "fileName"):
        return isinstance(value, str) and value != "" and "\x00" not in value and len(value) <= 4096 \
            and value.encode("utf-8", "surrogatepass") == value.encode("utf-8", "replace")
    if route.endswith("list") and leaf in ("records", "tasks"):
        return value is None or value == []
    if route.endswith("list") and leaf == "data":
        return isinstance(value, dict) and not {"records", "tasks"} & set(value)
    return False


@st.composite
def hostile_servers(draw: st.DrawFn) -> tuple[str, list[tuple[str, str, Any]], str | None]:
    """A target, the fields its fake gets wrong (route, field, value) and the charset it declares."""
    name = draw(st.sampled_from(sorted(FIELDS)))
    cases = [(route, path) for n, route, path in FIELD_CASES if n == name]
    picks = draw(st.lists(st.tuples(st.sampled_from(cases), hostile_values), min_size=1, max_size=4))
    mutations = [(route, path, value) for (route, path), value in picks
                 if not plausible_lie(path, value) and not hides_a_job(route, path, value)]
    return name, mutations, draw(charsets)


@given(server=hostile_servers())
@example(server=("milvus", [("/create", "code", [0]), ("/import/describe", "data", {"x": 1})], None))
@example(server=("zilliz-v2", [("/create", "code", [0]), ("/list", "data.records.*.jobId", "bad\x00id")],
                 None))
@pytest.mark.timeout(120 if PROFILE == "ci" else 3600)
@settings(max_examples=15 if PROFILE == "ci" else 60)  # each example is 4 runs, and each run keeps
# ~15 MB of botocore models alive in this process (not found why): 400 would fill 24 GB
def test_any_field_of_any_reply_never_crashes_duplicates_nor_leaks(
    server: tuple[str, list[tuple[str, str, Any]], str | None], put_objects: Callable[..., list[str]],
    bucket: str, env: dict[str, str], caplog: pytest.LogCaptureFixture,
) -> None:
    name, mutations, charset = server
    caplog.clear()  # the fixture outlives an example: its records (and what their errors hold) would pile up
    urls = sorted(put_objects([f"fuzz/{i}.parquet" for i in range(2)]))
    fake = FAKES[name]()
    if isinstance(fake, FakeMilvus):
        fake.bucket = bucket
    fake.collections["articles"] = ARTICLES
    if charset is not None:
        fake.content_type = f"application/json; charset={charset}"

    def mutate(at: str, payload: Any) -> Any:
        for route, path, value in mutations:
            if at.endswith(route) and isinstance(payload, dict) and payload.get("code") in (0, 200):
                payload = copy.deepcopy(payload)
                put_field(payload, path, value)
        return payload

    fake.hostile = mutate
    fake.start()
    waits: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "fuzz.yaml"
            doc: dict[str, Any] = {
                "version": 1, "target": fake.manifest_target(),
                "sources": [{"url": f"s3://{bucket}/fuzz/", "collection": "articles"}],
                "settings": {"min_age_s": 0, "preflight": "warn", "concurrency": 1, "max_attempts": 2,
                             "requests_per_second": 1000, "job_list_lag_s": 0}}
            if fake.NEEDS_CREDENTIALS:
                doc["credentials"] = {"access_key": "${IMPORT_ACCESS_KEY}",
                                      "secret_key": "${IMPORT_SECRET_KEY}"}
            path.write_text(yaml.safe_dump(doc))
            caplog.set_level(logging.INFO, logger="orchestrator")

            def sane_from_the_third(run: int) -> None:  # two runs against the hostile server, two after
                if run == 2:
                    fake.hostile, fake.content_type = None, "application/json"

            codes, rows, events = runs(path, urls, 4, waits=waits, before=sane_from_the_third)
    finally:
        fake.stop()
    assert set(codes) <= {0, 1, 75}
    assert_one_live_job_each(fake, urls)
    texts = [*(r.getMessage() for r in caplog.records), *(r.error or "" for r in rows),
             *(str(e[4]) for e in events)]
    assert not any(secret in t for t in texts for secret in SECRETS)
    assert all(len(t) < 10_000 for t in texts), max(len(t) for t in texts)
