"""The PostgreSQL ledger end to end: the manifest's URL (a password only as ${VAR}, never shown), a
connection killed mid-run, several manifests in one database, ``ledger copy`` both ways, the schema
version; and ``--metrics-push`` to a Pushgateway. A real server (tests/pgserver.py) and the fake
Zilliz API on real sockets."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator import api
from orchestrator.cli.main import cli
from orchestrator.errors import LedgerError, ManifestError
from orchestrator.ledger import copy
from orchestrator.ledger.factory import hold_ledger, open_ledger
from orchestrator.ledger.schema import TABLES
from orchestrator.models import ObjectState
from orchestrator.run.wiring import manifest_ledger
from tests.conftest import cli_child, fresh_schema
from tests.fakes.base import FakeImportAPI, Job
from tests.pgserver import SECURED, SECURED_PASSWORD, PgServer


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def secured_url(server: PgServer, schema: str = "secure") -> str:
    return f"postgresql://{SECURED}:${{LEDGER_PASSWORD}}@127.0.0.1:{server.port}/postgres?schema={schema}"


def dump(where: Path | Any) -> dict[str, list[tuple[Any, ...]]]:
    with open_ledger(where) as ledger:
        return {table: list(copy.dump(ledger, table)) for table in TABLES}


# -- the manifest's URL --------------------------------------------------------------------------

def test_the_url_takes_a_password_only_from_the_environment(
    write_manifest: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, pg_server: PgServer,
) -> None:
    literal = write_manifest(ledger=f"postgresql://{SECURED}:{SECURED_PASSWORD}@127.0.0.1/db")
    result = invoke("validate", str(literal))
    assert result.exit_code == 2 and "ledger: a password is not accepted literally" in result.stderr
    assert SECURED_PASSWORD not in result.output
    in_query = write_manifest(ledger="postgresql://u@127.0.0.1/db?password=hunter2")
    assert "not accepted in the URL's query" in invoke("validate", str(in_query)).stderr
    for bad, problem in (("postgresql://u@127.0.0.1/db?sslmode=always", "sslmode 'always' is not one of"),
                         ("postgresql://u@127.0.0.1/db?schema=Bad-Name", "is not a schema name"),
                         ("postgresql://u@127.0.0.1/db?pool=3", "unknown setting 'pool'"),
                         ("postgresql://u@127.0.0.1:99999/db", "the port is not a number"),
                         ("postgresql://u@127.0.0.1/", "names no database")):
        result = invoke("validate", str(write_manifest(ledger=bad)))
        assert result.exit_code == 2 and problem in result.stderr, (bad, result.stderr)

    monkeypatch.delenv("LEDGER_PASSWORD", raising=False)
    unset = invoke("validate", str(write_manifest(ledger=secured_url(pg_server))))
    assert unset.exit_code == 2 and "environment variable LEDGER_PASSWORD is not set" in unset.stderr
    monkeypatch.setenv("LEDGER_PASSWORD", SECURED_PASSWORD)  # with @ : / in it: no escaping needed
    manifest = write_manifest(ledger=secured_url(pg_server) + "&sslmode=disable")
    ok = invoke("validate", str(manifest))
    assert ok.exit_code == 0 and SECURED_PASSWORD not in ok.output
    shown = f"postgresql://{SECURED}@127.0.0.1:{pg_server.port}/postgres?sslmode=disable&schema=secure"
    assert f"ledger {shown}" in ok.stdout
    m = api.validate(manifest)
    assert m.ledger_url is not None and m.ledger_url.password is not None
    assert m.ledger_url.password.reveal() == SECURED_PASSWORD and SECURED_PASSWORD not in repr(m)
    default = api.validate(write_manifest(ledger=pg_server.url(), name="Night-2.yaml"))
    assert default.ledger_url is not None and default.ledger_url.schema == "night_2"  # named after the file


def test_the_password_reaches_no_log_error_or_ledger(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    monkeypatch: pytest.MonkeyPatch, pg_server: PgServer,
) -> None:
    put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    monkeypatch.setenv("LEDGER_PASSWORD", SECURED_PASSWORD)
    manifest = write_manifest(ledger=secured_url(pg_server))
    run = invoke("-v", "run", str(manifest))
    assert run.exit_code == 0 and "submitted=2" in run.stdout, run.output
    export = invoke("export", str(manifest))
    status = invoke("status", str(manifest))
    assert "ledger: postgresql://secured@127.0.0.1" in status.stdout
    stored = [pg_server.sql(f"SELECT string_agg(t::text, ' ') FROM secure.{table} AS t")
              for table in ("objects", "events", "job_progress")]
    meta = pg_server.sql("SELECT string_agg(key || value, ' ') FROM secure.meta")
    for text in (run.output, export.output, status.output, str(stored), str(meta)):
        assert SECURED_PASSWORD not in text
    assert "s3://" in str(stored)  # the ledger was read: the check above looked at real rows

    monkeypatch.setenv("LEDGER_PASSWORD", "wrong-" + SECURED_PASSWORD)
    refused = invoke("run", str(manifest))
    assert refused.exit_code == 1 and "cannot connect" in refused.stderr
    assert "password authentication failed" in refused.stderr and SECURED_PASSWORD not in refused.output
    assert "Traceback" not in refused.output


# -- a lost connection, and several manifests in one database ------------------------------------

def test_a_connection_killed_mid_run_stops_it_and_the_next_run_converges(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    pg_server: PgServer,
) -> None:
    urls = put_objects([f"embeddings/{i:02}.parquet" for i in range(12)])
    manifest = write_manifest(settings={"concurrency": 2}, ledger=fresh_schema(pg_server))
    proc = cli_child("run", str(manifest))
    killed: list[object] = []
    once = threading.Lock()

    def kill_the_ledger_session(job: Job) -> None:  # the job exists; its id is about to be recorded
        with once:
            if not killed and len(fake_api.creates()) >= 3:
                killed.extend(pg_server.sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                    (f"orchestrator ledger pid {proc.pid} on {_hostname()}"[:63],)))

    fake_api.before_reply = kill_the_ledger_session
    out, err = proc.communicate()
    fake_api.before_reply = None
    assert killed == [(True,)]
    assert proc.returncode == 1, err
    assert "the database refused or lost the ledger's statement" in err and "Traceback" not in err
    assert err.count("refused or lost the ledger's statement") == 1  # said once
    assert out.startswith("summary: ") and "exit=1" in out  # every run that ends says how
    made = len(fake_api.creates())
    assert made < 12  # submissions stopped

    again = invoke("run", str(manifest))
    assert again.exit_code == 0, again.output
    assert len(fake_api.creates()) == 12  # the rest, once each; the jobs of the cut run adopted
    with manifest_ledger(api.validate(manifest)) as ledger:
        recorded = {r.url: r.job_id for r in ledger.records()}
        assert sum(ledger.counts().values()) == 12
        assert set(ledger.counts()) <= {ObjectState.SUBMITTED.value, ObjectState.COMPLETED.value}
    for url in urls:
        jobs = fake_api.jobs_for(url)
        assert len(jobs) == 1 and recorded[url] == jobs[0].job_id


def _hostname() -> str:
    import socket
    return socket.gethostname()


@pytest.mark.parametrize(("query", "connect_timeout"), [("", "30"), ("&connect_timeout=5", "5")])
def test_every_ledger_session_bounds_its_waits_on_the_network(
    pg_server: PgServer, query: str, connect_timeout: str,
) -> None:
    """A server or network gone silent mid-statement is found by TCP keepalives and tcp_user_timeout
    (libpq waits forever without them); a connect_timeout in the URL wins over ours."""
    from orchestrator.config import pgurl
    from orchestrator.ledger import postgres as ledger_pg

    where = pgurl.parse(f"{fresh_schema(pg_server)}{query}", substitute=str, default_schema=None)
    with ledger_pg.connect(where, purpose="test") as conn:
        params = conn.info.get_parameters()
    assert {k: params.get(k) for k in ("keepalives", "keepalives_idle", "keepalives_interval",
                                       "keepalives_count", "tcp_user_timeout", "connect_timeout")} == {
        "keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10", "keepalives_count": "3",
        "tcp_user_timeout": "60000", "connect_timeout": connect_timeout}


def test_several_manifests_share_one_database_each_in_its_schema(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    pg_server: PgServer, bucket: str,
) -> None:
    put_objects(["embeddings/a.parquet", "other/b.parquet", "other/c.parquet"])
    database = pg_server.url()
    first = write_manifest(ledger=database, name="first.yaml")
    second = write_manifest(ledger=database, name="second.yaml",
                            sources=[{"url": f"s3://{bucket}/other/", "collection": "articles"}])
    m = api.validate(first)
    with hold_ledger(m.ledger_url or m.ledger_path):  # a run of the first does not hold the second
        assert invoke("run", str(first)).exit_code == 75
        assert "submitted=2" in invoke("run", str(second)).stdout
    assert "submitted=1" in invoke("run", str(first)).stdout
    counts = pg_server.sql("SELECT table_schema, COUNT(*) FROM information_schema.tables WHERE "
                           "table_name = 'objects' AND table_schema IN ('first', 'second') "
                           "GROUP BY 1 ORDER BY 1")
    assert counts == [("first", 1), ("second", 1)]
    assert json.loads(invoke("status", str(first), "--json").stdout)["counts"] == {"submitted": 1}
    assert json.loads(invoke("status", str(second), "--json").stdout)["counts"] == {"submitted": 2}


def test_a_newer_schema_version_is_refused(pg_server: PgServer) -> None:
    where = api.ledger_location(fresh_schema(pg_server))
    open_ledger(where).close()
    assert not isinstance(where, Path)
    pg_server.sql(f"UPDATE {where.schema}.meta SET value = '9' WHERE key = 'schema'")
    with pytest.raises(LedgerError, match=r"newer orchestrator \(ledger schema 9; this one reads up to 5\)"):
        open_ledger(where)
    pg_server.sql(f"CREATE SCHEMA {where.schema}_x; CREATE TABLE {where.schema}_x.things (x int)")
    with pytest.raises(LedgerError, match="this PostgreSQL schema is not an orchestrator ledger"):
        open_ledger(api.ledger_location(f"{pg_server.url()}?schema={where.schema}_x"))


# -- ledger copy --------------------------------------------------------------------------------------

def test_ledger_copy_moves_a_ledger_and_its_history_both_ways(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    pg_server: PgServer, tmp_path: Path,
) -> None:
    put_objects([f"embeddings/{i}.parquet" for i in range(5)])
    fake_api.refuse_objects = {"/4.parquet": (90001, "no such collection")}
    fake_api.complete_after = 0.2  # polled running at least once: job progress to copy
    manifest = write_manifest()
    done = invoke("run", str(manifest), "--wait", "--poll-interval", "0.05")
    assert done.exit_code == 1  # 4 completed, 1 refused
    sqlite = manifest.with_name("nightly.ledger.sqlite")
    url = fresh_schema(pg_server)

    copied = invoke("ledger", "copy", str(sqlite), url)
    assert copied.exit_code == 0, copied.output
    counts = dict(reversed(part.split()) for part in copied.stdout.removeprefix("copied ").split(", "))
    assert counts["objects"] == "5" and int(counts["events"]) >= 14 and counts["job_progress"] == "4"
    assert dump(api.ledger_location(url)) == dump(sqlite)  # every row, id and event alike

    again = invoke("ledger", "copy", str(sqlite), url)
    assert again.exit_code == 1 and "the destination ledger is not empty" in again.stderr
    assert dump(api.ledger_location(url)) == dump(sqlite)

    # the manifest, pointed at the copy, finds everything done, and goes on with new ids
    on_pg = write_manifest(ledger=url)
    put_objects(["embeddings/new.parquet"])
    run = invoke("run", str(on_pg))
    assert "submitted=1" in run.stdout and "failed=1" in run.stdout  # the new one; the refused one again
    assert all(len(fake_api.jobs_for(r.url)) == 1 for r in dump_records(url) if "/4." not in r.url)
    show = json.loads(invoke("show", str(on_pg), next(r.url for r in dump_records(url) if "/0." in r.url),
                             "--json").stdout)
    assert [e["state"] for e in show["versions"][0]["events"]] == ["submitting", "submitted", "completed"]

    back = tmp_path / "back.ledger.sqlite"
    result = invoke("ledger", "copy", url, str(back))
    assert result.exit_code == 0, result.output
    assert dump(back) == dump(api.ledger_location(url)) and len(dump(back)["objects"]) == 6

    missing = invoke("ledger", "copy", str(tmp_path / "nope.sqlite"), str(tmp_path / "x.sqlite"))
    assert missing.exit_code == 1 and "nope.sqlite: no such ledger" in missing.stderr
    same = invoke("ledger", "copy", url, url)
    assert same.exit_code == 1 and "the source and the destination are the same ledger" in same.stderr
    no_schema = invoke("ledger", "copy", str(sqlite), pg_server.url())
    assert no_schema.exit_code == 2 and "add ?schema=NAME" in no_schema.stderr


def dump_records(url: str) -> list[Any]:
    with open_ledger(api.ledger_location(url)) as ledger:
        return list(ledger.records())


def test_ledger_copy_refuses_a_literal_password(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="a password is not accepted literally"):
        api.ledger_location("postgresql://u:hunter2@127.0.0.1/db?schema=s")
    result = invoke("ledger", "copy", str(tmp_path / "a.sqlite"), "postgresql://u:hunter2@h/db?schema=s")
    assert result.exit_code == 2 and "hunter2" not in result.output


# -- metrics pushed to a Pushgateway ---------------------------------------------------------------

class Pushgateway:
    """A loopback HTTP server that records what is pushed to it and answers ``status``."""

    def __init__(self) -> None:
        self.pushes: list[tuple[str, str, str]] = []  # (method, path, body)
        self.auth: list[str | None] = []
        self.status = 200
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                gateway.pushes.append((self.command, self.path, body))
                gateway.auth.append(self.headers.get("Authorization"))
                self.send_response(gateway.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pushgateway() -> Iterator[Pushgateway]:
    gateway = Pushgateway()
    yield gateway
    gateway.stop()


def test_metrics_are_pushed_to_the_pushgateway(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
    pushgateway: Pushgateway, tmp_path: Path,
) -> None:
    put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    manifest = write_manifest()
    textfile = tmp_path / "orchestrator.prom"
    result = invoke("run", str(manifest), "--metrics-push", pushgateway.url, "--metrics-file", str(textfile))
    assert result.exit_code == 0, result.output
    [(method, path, body)] = pushgateway.pushes
    assert (method, path) == ("PUT", "/metrics/job/orchestrator/manifest/nightly.yaml")
    assert body == textfile.read_text()  # the same metrics, both ways
    assert '# TYPE orchestrator_run_submissions gauge' in body
    assert 'orchestrator_run_submissions{manifest="nightly.yaml",outcome="submitted"} 2.0' in body
    assert 'orchestrator_objects{manifest="nightly.yaml",state="submitted"} 2.0' in body

    pushgateway.status = 500
    failed = invoke("run", str(manifest), "--metrics-push", pushgateway.url.replace("http://", "http://u:pw@"))
    assert failed.exit_code == 1 and "the Pushgateway refused the metrics (HTTP 500)" in failed.stderr
    assert "exit=1" in failed.stdout and ":pw@" not in failed.output  # the summary's exit is the exit
    assert pushgateway.auth == [None, "Basic dTpwdw=="]  # u:pw, sent as basic auth
    bad = invoke("run", str(manifest), "--metrics-push", "ftp://x")
    assert bad.exit_code == 1 and "expected the Pushgateway as http(s)://host:port" in bad.stderr
