"""Misbehaving servers: a Retry-After of days (or of nothing), and replies that never end. Each is a
bounded wait or a classified error, on a real socket."""

from __future__ import annotations

import copy
import itertools
import resource
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from click.testing import CliRunner
from pymilvus.client.types import BulkInsertState

from orchestrator import api
from orchestrator.cli.main import cli
from orchestrator.errors import MAX_RETRY_AFTER_S, AmbiguousError, TargetError, TransientError
from orchestrator.models import JobInfo
from orchestrator.preflight.schema import SchemaError
from orchestrator.run.submitter import backoff
from orchestrator.run.wiring import manifest_ledger
from orchestrator.targets.http import MAX_BODY_BYTES, call, job_id_problem, retry_after
from orchestrator.targets.milvus_grpc import MilvusGrpcTarget
from orchestrator.targets.reply import MAX_TEXT
from tests.conftest import HTTP_TARGETS, SECRETS
from tests.fakes.base import STOP_POLL_S, FakeImportAPI, OddReply, SocketExchange
from tests.fakes.canned import Canned, CannedServer
from tests.test_exactly_once import assert_exactly_once
from tests.test_preflight_e2e import ARTICLES
from tests.test_targets_edges import create, target_of

OK = frozenset({0})


@pytest.mark.parametrize(("value", "seconds"), [
    ("999999", 999999.0), ("1e400", None), ("inf", None), ("-inf", None), ("nan", None),
    ("-5", None), ("3.5", 3.5), ("0", 0.0), ("", None), ("soon", None), ("Wed, 99 Foo 2015", None),
    ("Fri, 31 Dec 9999 23:59:59 GMT", 253402300799.0 - 1445412480.0), ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
    ("Wed, 21 Oct 2015 07:27:10 GMT", 0.0),
])
def test_retry_after_is_read_as_the_server_says_and_nonsense_ignored(value: str,
                                                                    seconds: float | None) -> None:
    assert retry_after(value, now=1445412480.0) == seconds


def test_backoff_never_waits_past_the_cap_nor_on_nonsense() -> None:
    assert backoff(1, retry_after=10 ** 9, rng=lambda: 0.5) == MAX_RETRY_AFTER_S
    assert backoff(1, retry_after=10 ** 9, rng=lambda: 0.5, max_retry_after_s=7.0) == 7.0
    assert backoff(1, retry_after=float("inf"), rng=lambda: 1.0) == 0.5
    assert backoff(1, retry_after=float("nan"), rng=lambda: 1.0) == 0.5
    assert backoff(1, retry_after=-3.0, rng=lambda: 1.0) == 0.5


@pytest.mark.parametrize("header", ["999999", "inf", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_429_over_http_gives_a_finite_hint_or_none(canned: CannedServer, header: str) -> None:
    canned.reply = Canned(429, '{"message": "slow down"}', headers={"Retry-After": header})
    with httpx.Client() as client, pytest.raises(TransientError) as info:
        call(client, "POST", f"{canned.url}/create", headers={}, success_codes=OK, creates=True)
    assert info.value.retry_after is None or 0 <= info.value.retry_after < float("inf")


@pytest.mark.parametrize(("setting", "cap"), [({}, MAX_RETRY_AFTER_S), ({"max_retry_after_s": 7}, 7.0)])
def test_settings_max_retry_after_s_caps_every_pause_a_server_asks_for(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    setting: dict[str, Any], cap: float,
) -> None:
    """A Retry-After of 11 days answering creates: each pause is the setting's cap (300 s by default)."""
    put_objects([f"embeddings/{i}.parquet" for i in range(2)])
    fake_api.odd_replies = [OddReply(429, b"{}", headers={"Retry-After": "999999", "Connection": "close"})
                            for _ in range(2)]
    manifest = write_manifest(settings={"concurrency": 1, "max_attempts": 3, **setting})
    waits: list[float] = []
    report = api.run(api.validate(manifest), sleep=waits.append, stop=threading.Event())
    assert report.exit_code() == 0, report.summary()
    assert waits == [cap, cap], waits


@pytest.mark.parametrize("value", [-1, "soon", 86401, True])
def test_settings_max_retry_after_s_is_validated(write_manifest: Callable[..., Path], value: Any) -> None:
    result = CliRunner().invoke(cli, ["validate", str(write_manifest(settings={"max_retry_after_s": value}))])
    assert result.exit_code == 2 and "settings.max_retry_after_s" in result.output, result.output


@pytest.mark.parametrize("creates", [True, False])
def test_an_endless_reply_is_cut_at_the_bound_and_classified_like_garbage(creates: bool) -> None:
    fake = FakeImportAPI.__new__(FakeImportAPI)  # only its endless reply: any route answers it

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            FakeImportAPI.endless(fake, SocketExchange(self))  # the request's body read first

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(STOP_POLL_S,), daemon=True).start()
    try:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with httpx.Client(timeout=30) as client, pytest.raises(TransientError) as info:
            call(client, "POST", f"http://127.0.0.1:{server.server_address[1]}/create", headers={},
                 json={}, success_codes=OK, creates=creates)
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    finally:
        server.shutdown()
        server.server_close()
    assert (type(info.value) is AmbiguousError) is creates
    assert f"longer than {MAX_BODY_BYTES // 2 ** 20} MiB" in str(info.value) and len(str(info.value)) < 300
    assert grown_mb < 3 * MAX_BODY_BYTES / 2 ** 20


@pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)
def test_an_endless_create_reply_is_adopted_not_resubmitted(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(3)])
    fake_api.faults = ["endless"]
    manifest = write_manifest(settings={"concurrency": 1})
    result = CliRunner().invoke(cli, ["run", str(manifest)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "adopted=1" in result.stdout and "submitted=2" in result.stdout
    assert "Traceback" not in result.output and not any(s in result.output for s in SECRETS)
    assert_exactly_once(fake_api, manifest, urls)


# -- every field of every reply the targets read --------------------------------------------------

def put_field(payload: Any, path: str, value: Any) -> bool:
    """Set the field at ``path`` (``data.details.*.importedRows``: dots, ``*`` for every element of a
    list) to ``value`` where the reply has the places above it; True when something was set."""
    steps = path.split(".")
    nodes = [payload]
    for step in steps[:-1]:
        if step == "*":
            nodes = [item for node in nodes if isinstance(node, list) for item in node]
        else:
            nodes = [node[step] for node in nodes if isinstance(node, dict) and step in node]
    hit = False
    for node in nodes:
        if isinstance(node, dict):
            node[steps[-1]] = copy.deepcopy(value)
            hit = True
    return hit


def hostile_field(route: str, path: str, values: list[Any]) -> Callable[[str, Any], Any]:
    """Each reply of the routes ending in ``route`` gets the next of ``values`` at ``path``."""
    turn = itertools.count()

    def mutate(at: str, payload: Any) -> Any:
        if at.endswith(route) and isinstance(payload, dict) and payload.get("code") in (0, 200):
            payload = copy.deepcopy(payload)
            if put_field(payload, path, values[next(turn) % len(values)]) or path == "code":
                return payload
        return payload

    return mutate


def run_twice(manifest: Path, *extra: str) -> list[Any]:
    """Two runs (the second sees what the first left), each through the CLI."""
    return [CliRunner().invoke(cli, ["run", str(manifest), *extra]) for _ in range(2)]


def assert_clean(results: list[Any], *, most_bytes: int = 64 * 1024) -> None:
    """No traceback, a classified exit, no secret, bounded output."""
    for result in results:
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        assert result.exit_code in (0, 1), result.output
        assert "Traceback" not in result.output
        assert not any(s in result.output for s in SECRETS)
        assert len(result.output) < most_bytes, len(result.output)


@pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)
def test_an_unknown_charset_is_read_as_json_not_a_traceback(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    """``Content-Type: application/json; charset=rot13`` on every reply: a LookupError traceback before."""
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(3)])
    fake_api.content_type = "application/json; charset=rot13"
    manifest = write_manifest(settings={"concurrency": 1})
    results = run_twice(manifest)
    assert_clean(results)
    assert results[0].exit_code == 0 and "submitted=3" in results[0].stdout, results[0].output
    assert_exactly_once(fake_api, manifest, urls)


@pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)
def test_a_code_that_is_a_list_is_a_protocol_error_and_the_job_is_looked_up(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    """``{"code": [0]}`` answering a create that made its job: TypeError (unhashable list) before, on
    every rerun; now the job is found by the list and adopted, never sent twice."""
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(3)])
    fake_api.hostile = lambda at, payload: {**payload, "code": [0]} if at == fake_api.CREATE_PATH else payload
    manifest = write_manifest(settings={"concurrency": 1})
    results = run_twice(manifest)
    assert_clean(results)
    assert "protocol error" in results[0].output or "adopted=3" in results[0].stdout, results[0].output
    assert len(fake_api.creates()) == 3
    assert_exactly_once(fake_api, manifest, urls)


@pytest.mark.parametrize("fake_api", ["zilliz-v2", "milvus"], indirect=True)
@pytest.mark.parametrize("rows", [2 ** 63, 2 ** 64, -1])
def test_imported_rows_out_of_range_never_poison_the_ledger(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    rows: int,
) -> None:
    """``importedRows`` of 2**63: OverflowError writing the ledger before, on every rerun, the objects
    stuck ``submitted``. Now a protocol error naming the field; the ledger stays readable."""
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(2)])
    fake_api.hostile = hostile_field("/import/describe", "data.importedRows", [rows])
    manifest = write_manifest(settings={"concurrency": 1, "max_attempts": 2})
    results = run_twice(manifest)
    assert_clean(results)
    assert "data.importedRows" in results[1].output, results[1].output
    status = CliRunner().invoke(cli, ["status", str(manifest)])
    assert status.exit_code == 0 and "Traceback" not in status.output, status.output
    fake_api.hostile = None  # a sane server again: the jobs complete, none was sent twice
    assert CliRunner().invoke(cli, ["run", str(manifest)]).exit_code == 0
    assert_exactly_once(fake_api, manifest, urls)
    assert {r.state.value for r in rows_of(manifest)} == {"completed"}


@pytest.mark.parametrize(("fake_api", "key"), [("zilliz-v1", "data.tasks"), ("zilliz-v2", "data.records"),
                                               ("milvus", "data.records")], indirect=["fake_api"])
def test_a_job_list_whose_records_are_a_number_is_a_protocol_error(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    key: str,
) -> None:
    """``records: 5`` in the job list: a TypeError through the server-clock probe before (its guard
    caught only target errors)."""
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(3)])
    fake_api.hostile = hostile_field("list", key, [5])
    manifest = write_manifest(settings={"concurrency": 1, "preflight": "off"})  # a create is the 1st call
    results = run_twice(manifest)
    assert_clean(results)
    assert results[0].exit_code == 0 and "submitted=3" in results[0].stdout, results[0].output
    assert_exactly_once(fake_api, manifest, urls)


def rows_of(manifest: Path) -> list[Any]:
    with manifest_ledger(api.validate(manifest)) as ledger:
        return list(ledger.records())


# Every field each target reads, by the route whose reply carries it (``*``: every element of a list).
JOB_FIELDS = ["data", "data.jobId"]
LIST_V2 = ["data", "data.records", "data.records.*", "data.records.*.jobId", "data.records.*.state",
           "data.records.*.collectionName"]
PROGRESS_V2 = ["data", "data.state", "data.collectionName", "data.fileName", "data.reason", "data.progress",
               "data.importedRows", "data.totalRows", "data.details", "data.details.*",
               "data.details.*.fileName", "data.details.*.importedRows", "data.details.*.state",
               "data.details.*.reason"]
DESCRIBE = ["data", "data.fields", "data.fields.*", "data.fields.*.name", "data.fields.*.type",
            "data.fields.*.params", "data.fields.*.primaryKey", "data.autoID", "data.enableDynamicField"]
FIELDS = {
    "zilliz-v1": {"/import": ["code", *JOB_FIELDS],
                  "/import/get": ["data", "data.errorMessage", "data.completeTime", "data.collectionName",
                                  "data.fileName", "data.readyPercentage"],
                  "/import/list": ["data", "data.tasks", "data.tasks.*", "data.tasks.*.jobId",
                                   "data.tasks.*.state", "data.tasks.*.collectionName", "data.count"],
                  "/collections/describe": DESCRIBE},
    "zilliz-v2": {"/create": ["code", *JOB_FIELDS], "/import/describe": PROGRESS_V2,
                  "/list": [*LIST_V2, "data.count"], "/collections/describe": DESCRIBE},
    "milvus": {"/create": ["code", *JOB_FIELDS], "/import/describe": PROGRESS_V2, "/list": LIST_V2,
               "/collections/describe": DESCRIBE},
}
# Wrong types, sizes, ranges and encodings; each reply of the route gets the next one.
BAD_VALUES: list[Any] = [[0], {"x": 1}, "x", True, 1.5, -1, 2 ** 63, 2 ** 64, 1e308, float("nan"), "\ud800",
                         "x" * 3_000_000, "a\x00b", "\u202e\x1b[31m", None, 0, "", [], {}]


def plausible_lie(path: str, value: Any) -> bool:
    """A value no client can tell from the truth: any string as v1's ``errorMessage`` ("this job
    failed: ..."), any whole number as a success reply's ``code`` (an error code after the job was
    made). Such lies are left out: they test the server, not the client."""
    if path == "code":
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2 ** 63
    return path == "data.errorMessage" and isinstance(value, str)


CASES = [(name, route, path) for name, routes in FIELDS.items() for route, paths in routes.items()
         for path in paths]


@pytest.mark.parametrize(("fake_api", "route", "path"), CASES, indirect=["fake_api"],
                         ids=[f"{n}{r}:{p}" for n, r, p in CASES])
def test_every_field_of_every_reply_read_is_checked(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    route: str, path: str,
) -> None:
    """Each field the targets read gets every kind of wrong value, one per reply: each run ends with a
    classified exit, no traceback, no secret, bounded output; no object gets two jobs; the ledger
    stays readable; with a sane server again, every object is imported exactly once."""
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(2)])
    fake_api.collections["articles"] = ARTICLES
    values = [v for v in BAD_VALUES if not plausible_lie(path, v)]
    fake_api.hostile = hostile_field(route, path, values)
    manifest = write_manifest(settings={"concurrency": 1, "max_attempts": 2, "preflight": "warn"})
    results = run_twice(manifest)
    results.append(CliRunner().invoke(cli, ["status", str(manifest)]))
    assert_clean(results)
    for url in urls:
        assert len([j for j in fake_api.jobs_for(url) if j.fail_reason is None]) <= 1, url
    fake_api.hostile = None
    for _ in range(2):  # adopt or poll, and look again at what the hostile runs left unsure
        assert CliRunner().invoke(cli, ["run", str(manifest)]).exit_code in (0, 1)
    assert_accounted(fake_api, manifest, urls)


def storable(info: JobInfo) -> None:
    """What a reply gave is what the ledger and a line of output can hold."""
    assert info.imported_rows is None or 0 <= info.imported_rows < 2 ** 63, info.imported_rows
    assert all(0 <= r < 2 ** 63 for r in info.file_rows if r is not None), info.file_rows
    assert info.progress is None or 0 <= info.progress <= 100, info.progress
    assert info.reason is None or len(info.reason) <= MAX_TEXT + 40, len(info.reason)
    for text in (info.job_id, info.collection, info.file_name, info.reason, *info.file_names):
        if text is not None:
            assert len(text) <= MAX_TEXT + 40 and "\x00" not in text, text[:80]
            text.encode("utf-8")  # a lone surrogate raises: the ledger could not store it


@pytest.mark.parametrize(("fake_api", "route", "path"), CASES, indirect=["fake_api"],
                         ids=[f"{n}{r}:{p}" for n, r, p in CASES])
def test_every_wrong_value_of_every_field_is_a_target_error_or_a_value_the_ledger_holds(
    fake_api: FakeImportAPI, route: str, path: str,
) -> None:
    """Every value of BAD_VALUES at each field, through the target call that reads it over HTTP: a
    :class:`TargetError` (a protocol error: never another exception) or a result the ledger holds.
    The whole-run test above gives a field as many wrong values as its run has replies; this one gives
    it all of them."""
    fake_api.collections["c"] = ARTICLES
    creates = route == "/import" or route.endswith("/create")
    with httpx.Client(timeout=10) as http:
        target = target_of(fake_api, http)
        job_id = create(target, fake_api, "emb/sane.parquet")
        for i, value in enumerate(v for v in BAD_VALUES if not plausible_lie(path, v)):
            fake_api.hostile = hostile_field(route, path, [value])
            try:
                if creates:
                    assert job_id_problem(create(target, fake_api, f"emb/{i}.parquet")) is None
                elif route.endswith("/collections/describe"):
                    target.describe("c")
                elif route.endswith("list"):
                    for info in target.list_jobs():
                        storable(info)
                else:
                    storable(target.progress(job_id))
            except (TargetError, SchemaError) as exc:
                assert len(str(exc)) < 10_000 and "\x00" not in str(exc), len(str(exc))
            finally:
                fake_api.hostile = None


def assert_accounted(fake: FakeImportAPI, manifest: Path, urls: list[str]) -> None:
    """No object has two live jobs; the ledger holds each live job under its object, or holds the
    object ``uncertain`` for a person (a server that answered a well-formed job id of no job lied in a
    way no client can see through: that job id is trusted, then found unknown)."""
    by_url = {r.url: r for r in rows_of(manifest)}
    for url in urls:
        live = [j.job_id for j in fake.jobs_for(url) if j.fail_reason is None]
        assert len(live) <= 1, f"{url}: {len(live)} live jobs"
        row = by_url[url]
        if row.state.value in ("submitted", "completed"):
            assert [row.job_id] == live, (url, row)
        else:
            assert row.state.value == "uncertain" or not live, (url, row)


@pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)
def test_a_failed_jobs_huge_reason_is_stored_and_printed_bounded(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    """A failure reason of 3 MB for 5 objects: 15 MB of stderr, of ``status`` and of ledger before.
    Now each stored or printed reason is cut at 4,096 characters, its length noted."""
    put_objects([f"embeddings/{i}.parquet" for i in range(5)])
    fake_api.fail_objects = {"embeddings/": "R" * 3_000_000}
    manifest = write_manifest(settings={"concurrency": 1, "max_job_failures": 1})
    results = run_twice(manifest)
    results.append(CliRunner().invoke(cli, ["status", str(manifest)]))
    results.append(CliRunner().invoke(cli, ["export", str(manifest)]))
    assert_clean(results, most_bytes=200_000)
    assert "(3000000 characters in all)" in results[1].output, results[1].output[-2000:]
    ledger = api.validate(manifest).ledger_path
    assert ledger.stat().st_size < 2_000_000, ledger.stat().st_size


@pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)
def test_a_redirect_says_where_it_pointed_and_is_never_followed(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    canned: CannedServer,
) -> None:
    """HTTP 307 from the import API: "refused: HTTP 307:" with nothing after it before, the objects
    counted failed. Now the run stops naming where it pointed (its query hidden) and that redirects are
    not followed; nothing is counted failed, and the API key never reaches the other server."""
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(2)])
    elsewhere = f"{canned.url}/v2/moved?sig=SIGNATURE-do-not-print"
    fake_api.odd_replies = [OddReply(307, b"", headers={"Location": elsewhere, "Connection": "close"})]
    manifest = write_manifest(settings={"concurrency": 1})
    result = CliRunner().invoke(cli, ["run", str(manifest)])
    assert_clean([result])
    assert result.exit_code == 1 and "failed=0" in result.stdout, result.output
    assert f"a redirect to {canned.url}/v2/moved?sig=***" in result.output, result.output
    assert "redirects are not followed" in result.output and "SIGNATURE" not in result.output
    assert canned.paths == []  # nothing, the API key least of all, went where it pointed
    assert CliRunner().invoke(cli, ["run", str(manifest)]).exit_code == 0
    assert_exactly_once(fake_api, manifest, urls)


@pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)
def test_a_job_described_without_its_files_is_never_taken_for_absence(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    """A create answered ``{"code": [0]}`` after making its job, and every job described as ``{"x": 1}``:
    the job list showed the job, its description named no file, and the object was taken for absent
    and sent again (the reply fuzz test found 5 jobs for one object in 4 runs). Now it waits, unsure,
    until the server names the job's files."""
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(2)])
    progress = "/import/get" if fake_api.CREATE_PATH.endswith("/import") else "/import/describe"

    def mutate(at: str, payload: Any) -> Any:
        if at == fake_api.CREATE_PATH:
            return {**payload, "code": [0]}
        return {**payload, "data": {"x": 1}} if at.endswith(progress) and "data" in payload else payload

    fake_api.hostile = mutate
    manifest = write_manifest(settings={"concurrency": 1, "max_attempts": 2, "preflight": "off"})
    assert_clean(run_twice(manifest))
    assert len(fake_api.creates()) == 2
    fake_api.hostile = None
    assert_clean(run_twice(manifest))
    assert_exactly_once(fake_api, manifest, urls)


@pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)
def test_a_job_listed_without_a_readable_id_is_never_taken_for_absence(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    """A create answered ``{"code": [0]}`` after making its job, and the job list shows every job with
    an id no server hands out (a NUL inside): the record was skipped, the object taken for absent and
    sent again (old code: 8 jobs for 2 objects in two runs). Now it waits, unsure, while such a
    record is listed, and is adopted once the list is readable."""
    urls = put_objects([f"embeddings/{i}.parquet" for i in range(2)])

    def mutate(at: str, payload: Any) -> Any:
        if at == fake_api.CREATE_PATH:
            return {**payload, "code": [0]}
        data = payload.get("data") if isinstance(payload, dict) else None
        if at.endswith("/list") and isinstance(data, dict):
            return {**payload, "data": {**data, **{key: [{**job, **{k: "bad\x00id" for k in job if k.lower()
                                                                   in ("jobid", "taskid")}}
                                                          for job in data[key]]
                                                    for key in ("records", "tasks") if key in data}}}
        return payload

    fake_api.hostile = mutate
    manifest = write_manifest(settings={"concurrency": 1, "max_attempts": 2, "preflight": "off",
                                        "job_list_lag_s": 0})
    assert_clean(run_twice(manifest))
    assert len(fake_api.creates()) == 2
    fake_api.hostile = None
    assert_clean(run_twice(manifest))
    assert_exactly_once(fake_api, manifest, urls)


# -- milvus-grpc: the task fields pymilvus hands over ---------------------------------------------

class _Info(NamedTuple):  # a KeyValuePair of the task's infos, as the protobuf reply carries it
    key: str
    value: str


class _Connection:
    """What pymilvus' connection answers about tasks: one task, as a hostile server would describe it."""

    def __init__(self, task: BulkInsertState) -> None:
        self.task = task

    def get_bulk_insert_state(self, task_id: int, timeout: float | None = None) -> BulkInsertState:
        return self.task

    def list_bulk_insert_tasks(self, limit: int, collection: str, timeout: float | None = None) -> list[Any]:
        return [self.task]


class _Client:  # the pymilvus client, passed in as the target takes it
    def __init__(self, task: BulkInsertState) -> None:
        self.connection = _Connection(task)

    def _get_connection(self) -> _Connection:
        return self.connection


def grpc_target(*, state: int = BulkInsertState.ImportStarted, rows: int = 3,
                **infos: str) -> MilvusGrpcTarget:
    task = BulkInsertState(7, state, rows, [], [_Info(k, v) for k, v in infos.items()], 0)
    return MilvusGrpcTarget("http://127.0.0.1:9", client=_Client(task))


@pytest.mark.parametrize(("fields", "named"), [
    ({"infos": {"progress_percent": "abc"}}, "task.infos.progress_percent"),
    ({"infos": {"progress_percent": "nan"}}, "task.infos.progress_percent"),
    ({"infos": {"progress_percent": "1e400"}}, "task.infos.progress_percent"),
    ({"infos": {"progress_percent": "250"}}, "task.infos.progress_percent"),
    ({"infos": {"collection": "c" * 10_000}}, "task.infos.collection"),
    ({"infos": {"files": "a\x00b"}}, "task.infos.files"),
    ({"state": BulkInsertState.ImportCompleted, "rows": -1}, "task.rowCount"),
])
def test_a_grpc_tasks_fields_are_checked_like_any_reply(fields: dict[str, Any], named: str) -> None:
    """A task's progress, names and row count are protobuf strings and int64s, any of them: before,
    ``progress_percent: abc`` was a ValueError traceback and the others were taken as they came."""
    target = grpc_target(state=fields.get("state", BulkInsertState.ImportStarted), rows=fields.get("rows", 3),
                         **fields.get("infos", {}))
    with pytest.raises(TargetError, match=named.replace(".", r"\.")):
        target.progress("7")
    with pytest.raises(TargetError, match=named.replace(".", r"\.")):
        list(target.list_jobs())


def test_a_grpc_tasks_huge_failure_reason_is_bounded() -> None:
    target = grpc_target(state=BulkInsertState.ImportFailed, failed_reason="R" * 6_000_000)
    for info in (target.progress("7"), *target.list_jobs()):
        assert info.reason is not None and len(info.reason) < 4200, len(info.reason or "")
        assert info.reason.endswith("(6000000 characters in all)"), info.reason[-60:]
