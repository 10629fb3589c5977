"""Hostile files, names and ledgers (issue 24): nothing but a regular file is ever replaced, names and
lists in one-line output are bounded, CSV carries no control character, and a ledger that is not a
plain orchestrator ledger (a folder, a symlink loop, a state unknown here, foreign triggers) is refused
with one clear line."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import stat
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from orchestrator.sources.registry import BY_SCHEME
from tests.conftest import LEDGERS
from tests.fakes.zilliz import FakeZilliz
from tests.pgserver import PgServer
from tests.test_operator_logs import unstamped


def invoke(*args: str) -> Any:
    from orchestrator.cli.main import cli
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# -- the metrics file: written through a symlink, never renamed over anything but a regular file ------

def test_metrics_file_through_a_symlink_writes_the_file_it_names(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    tmp_path: Path,
) -> None:
    put_objects(["embeddings/a.parquet"])
    (tmp_path / "textfile").mkdir()
    real = tmp_path / "textfile" / "orchestrator.prom"
    real.write_text("old\n")
    link = tmp_path / "current.prom"
    link.symlink_to(real)
    result = invoke("run", str(write_manifest()), "--metrics-file", str(link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(real)  # old code: the link became a file
    assert "orchestrator_run_exit_code" in real.read_text()
    assert sorted(os.listdir(real.parent)) == ["orchestrator.prom"]  # no temp file left behind


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _device(path: Path) -> Path:
    """A character device node like /dev/null (1, 3), made in the test's folder (never a real /dev)."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("cannot make a device node here (not root)")
    return path


def _loop(path: Path) -> Path:
    path.symlink_to(path.name)
    return path


def _dir(path: Path) -> Path:
    path.mkdir()
    return path


def _link_to_fifo(path: Path) -> Path:
    path.symlink_to(_fifo(path.with_name("real-fifo")))
    return path


@pytest.mark.parametrize(("make", "kind", "test"), [
    (_fifo, ": a FIFO (named pipe), not a regular file", stat.S_ISFIFO),
    (_link_to_fifo, ": a FIFO (named pipe), not a regular file", stat.S_ISFIFO),
    (_device, ": a character device, not a regular file", stat.S_ISCHR),
    (_dir, "is a directory", stat.S_ISDIR),  # click's own check
    (_loop, ": a symlink loop", None),
], ids=["fifo", "symlink-to-fifo", "device", "folder", "symlink-loop"])
def test_metrics_file_that_is_not_a_regular_file_is_refused_before_the_run(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    tmp_path: Path, make: Callable[[Path], Path], kind: str, test: Callable[[int], bool] | None,
) -> None:
    put_objects(["embeddings/a.parquet"])
    target = make(tmp_path / "metrics.prom")
    result = invoke("run", str(write_manifest()), "--metrics-file", str(target))
    # old code: exit 0, and the FIFO, the device and the link became a 3.6 KB regular file
    assert result.exit_code == 2, result.output
    assert str(target) in result.stderr and kind in result.stderr
    if make is not _dir:
        assert result.stderr.startswith(f"error: --metrics-file: {target}{kind}")
        assert "leave out --metrics-file" in result.stderr and len(result.stderr.splitlines()) == 1
    assert fake_api.creates() == []  # refused before anything was submitted
    if test is not None:
        assert test(os.stat(target).st_mode)  # still what it was
    else:
        assert target.is_symlink()


def test_export_writes_in_place_through_a_symlink_and_into_a_fifo(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    tmp_path: Path,
) -> None:
    """``export --output`` writes the file it is given (no temp file, no rename): a symlink stays one,
    a FIFO is streamed into (a reader gets every row), and neither is replaced."""
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest()
    assert invoke("run", str(manifest)).exit_code == 0
    real = tmp_path / "real.jsonl"
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    assert invoke("export", str(manifest), "--output", str(link)).exit_code == 0
    assert link.is_symlink() and '"state": "submitted"' in real.read_text()
    fifo = _fifo(tmp_path / "pipe")
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    assert invoke("export", str(manifest), "--output", str(fifo), "--format", "csv").exit_code == 0
    reader.join(timeout=60)
    assert not reader.is_alive() and got[0].startswith("url,") and stat.S_ISFIFO(os.stat(fifo).st_mode)


# -- names and lists in one-line output are bounded ---------------------------------------------------

ARTICLES = {"collectionName": "articles", "autoID": False, "enableDynamicField": False, "fields": [
    {"name": "id", "type": "Int64", "primaryKey": True},
    {"name": "vector", "type": "FloatVector", "params": [{"key": "dim", "value": "4"}]}]}


def _wide_parquet(extra: int, long_name: int) -> bytes:
    columns: dict[str, Any] = {"id": pa.array([1], pa.int64()), "vector": pa.array([[0.5] * 4],
                                                                                  pa.list_(pa.float32()))}
    columns["x" * long_name] = pa.array([1], pa.int8())
    columns.update({f"extra_{i:05}": pa.array([1], pa.int8()) for i in range(extra)})
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


def test_thousands_of_extra_columns_and_a_huge_name_make_bounded_lines(
    s3: Any, bucket: str, write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    fake_api.collections["articles"] = ARTICLES
    s3.put_object(Bucket=bucket, Key="embeddings/wide.parquet", Body=_wide_parquet(2000, 100_000))
    manifest = write_manifest()
    checked = invoke("check", str(manifest))
    assert checked.exit_code == 1
    line = next(x for x in checked.stdout.splitlines() if x.startswith("invalid"))
    # old code: one line of 230 KB naming every column, the 100,000-character one whole
    assert len(line) < 6000, len(line)
    assert "and 1,991 more (check --json lists them all)" in line and "more characters)" in line
    assert len(json.loads(invoke("check", str(manifest), "--json").stdout)["problems"]) == 2001  # all there

    assert invoke("run", str(manifest)).exit_code == 1  # left invalid
    status = invoke("status", str(manifest))
    assert status.exit_code == 0 and "1 invalid" in status.stdout
    assert max(len(x) for x in status.stdout.splitlines()) < 2000  # old code: a 230 KB line
    planned = invoke("plan", str(manifest))
    assert "hold" in planned.stdout and max(len(x) for x in planned.stdout.splitlines()) < 2000
    shown = invoke("show", str(manifest), "wide.parquet")
    assert shown.exit_code == 0, shown.output
    assert max(len(x) for x in shown.stdout.splitlines()) < 2000


# -- CSV carries no control character, and no formula ---------------------------------------------------

def test_csv_export_escapes_control_characters_and_guards_formulas(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
) -> None:
    put_objects(["embeddings/a.parquet"])
    fake_api.refuse_objects = {"/a.parquet": (90001, "=HYPERLINK(\"x\")\x1b[2J\r\u202eevil")}
    manifest = write_manifest()
    assert invoke("run", str(manifest)).exit_code == 1
    out = invoke("export", str(manifest), "--format", "csv").stdout
    # old code: the raw ESC, CR and right-to-left override reached the file
    assert not any(c in out for c in "\x1b\r\u202e"), repr(out)
    assert "\\x1b[2J\\r\\u202eevil" in out
    row = next(csv.DictReader(io.StringIO(out)))
    assert not row["error"].startswith(("=", "+", "-", "@")) and "HYPERLINK" in row["error"]
    assert row["size"].isdigit()  # numbers stay numbers


# -- manifests: duplicate keys, mistyped URLs, YAML's booleans, shell forms of ${} ---------------------

TARGET = """target:
  type: zilliz-v2
  cluster_id: inxx-1
  api_key: ${KEY}
credentials:
  access_key: ${AK}
  secret_key: ${SK}
"""
ENV = {"KEY": "k", "AK": "a", "SK": "s"}


def _manifest(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text("version: 1\n" + TARGET + body)
    return path


def _problem(path: Path, environ: dict[str, str] | None = None) -> str:
    from orchestrator import api
    from orchestrator.errors import ManifestError
    with pytest.raises(ManifestError) as caught:
        api.validate(path, {**ENV, **(environ or {})})
    return str(caught.value)


def test_a_key_written_twice_is_refused_naming_both_lines(tmp_path: Path) -> None:
    two_lists = _manifest(tmp_path, "sources:\n  - url: s3://lake/a/\n    collection: a\n"
                                    "sources:\n  - url: s3://lake/b/\n    collection: b\n")
    # old code: valid, and only s3://lake/b/ was ever listed
    assert _problem(two_lists) == f"{tmp_path / 'm.yaml'}: line 12: key 'sources' is also on line 9 of the " \
        "same mapping; " \
        "YAML would keep only the last one, silently: keep one (merge the two, or fix the indentation)"
    result = invoke("validate", str(two_lists))
    assert result.exit_code == 2 and "line 12" in result.stderr and "line 9" in result.stderr

    two_collections = _manifest(tmp_path, "sources:\n  - url: s3://lake/a/\n    collection: a\n"
                                          "    collection: b\n")
    assert "line 12: key 'collection' is also on line 11" in _problem(two_collections)

    from orchestrator import api
    merged = _manifest(tmp_path, "sources:\n  - &first\n    url: s3://lake/a/\n    collection: a\n"
                                 "  - <<: *first\n    collection: b\n")
    assert [s.collection for s in api.validate(merged, ENV).sources] == ["a", "b"]  # a merge may override


@pytest.mark.parametrize("scheme", [s for s in BY_SCHEME if s != "file"])  # every store (file: below)
def test_a_store_url_with_a_mistyped_scheme_is_refused_with_what_was_meant(tmp_path: Path,
                                                                           scheme: str) -> None:
    for typed in (f"{scheme}:/lake/x", f"{scheme}:lake/x", f"{scheme}:///lake/x", f"{scheme.upper()}://lake/x"):
        path = _manifest(tmp_path, f"sources:\n  - url: {typed}\n    collection: a\n")
        # old code: valid, as a folder named "s3:" beside the manifest; the run found no folder
        assert f"sources[0].url: '{typed}' is neither a store's URL nor a folder: did you mean " \
               f"'{scheme}://lake/x'?" in _problem(path), typed
        assert invoke("validate", str(path)).exit_code == 2


@pytest.mark.parametrize("typed", ["s3:/u:${PW}@lake/x", "s3a://u:${PW}@lake/x", "gcs://u:${PW}@b/x"])
def test_a_mistyped_url_with_a_password_in_it_never_shows_the_password(tmp_path: Path, typed: str) -> None:
    path = _manifest(tmp_path, f"sources:\n  - url: '{typed}'\n    collection: a\n")
    problem = _problem(path, {"PW": "hunter2-secret"})
    # old code: "'s3:/u:hunter2-secret@lake/x' is neither a store's URL nor a folder: did you mean ..."
    assert "did you mean" in problem and "***" in problem and "hunter2" not in problem
    from orchestrator.cli.main import cli
    done = CliRunner().invoke(cli, ["validate", str(path)], env={**ENV, "PW": "hunter2-secret"})
    assert done.exit_code == 2 and "hunter2" not in done.output


def test_a_source_with_literal_credentials_and_a_bad_s3_key_names_the_credentials(tmp_path: Path) -> None:
    """The order the manifest reader had before the stores declared their keys (issue 26: unchanged)."""
    path = _manifest(tmp_path, "sources:\n  - url: s3://lake/x\n    collection: a\n    path_style: maybe\n"
                               "    credentials: {access_key: AKIA1, secret_key: plain}\n")
    assert "credentials.access_key" in _problem(path)


@pytest.mark.parametrize(("typed", "meant"), [("s3a://lake/x", "s3://lake/x"), ("gcs://b/x", "gs://b/x"),
                                              ("azure://c/x", "az://c/x"), ("file:/data/x", "file:///data/x")])
def test_other_spellings_of_a_scheme_get_a_did_you_mean(tmp_path: Path, typed: str, meant: str) -> None:
    path = _manifest(tmp_path, f"sources:\n  - url: {typed}\n    collection: a\n")
    assert f"did you mean '{meant}'?" in _problem(path)


def test_a_folder_named_like_a_scheme_is_still_a_folder(tmp_path: Path) -> None:
    from orchestrator import api
    path = _manifest(tmp_path, "sources:\n  - url: ./s3:lake\n    collection: a\n")
    assert api.validate(path, ENV).sources[0].root == tmp_path / "s3:lake"


def test_yaml_booleans_are_read_as_the_word_meant_or_explained(tmp_path: Path) -> None:
    from orchestrator import api
    from orchestrator.config.manifest import PreflightMode
    source = "sources:\n  - url: s3://lake/a/\n    collection: a\n"
    path = _manifest(tmp_path, source + "settings:\n  preflight: off\n")
    # old code: "expected one of off, warn, enforce, got False"
    assert api.validate(path, ENV).settings.preflight is PreflightMode.OFF
    path = _manifest(tmp_path, "sources:\n  - url: s3://lake/a/\n    collection: no\n")
    assert "sources[0].collection: expected a non-empty string, got a boolean (false; YAML reads unquoted " \
           "off/no/false as one: quote the word if you meant it, as 'off')" in _problem(path)
    path = _manifest(tmp_path, source + "    partition: 2024-01-01\n")
    assert "sources[0].partition: expected a non-empty string, got date datetime.date(2024, 1, 1): YAML " \
           "read the unquoted text as one; quote it" in _problem(path)
    path = _manifest(tmp_path, source + "settings:\n  on_change: yes\n")
    assert "settings.on_change: expected one of skip, reimport, got a boolean (true; YAML reads" \
        in _problem(path)


@pytest.mark.parametrize("body", [
    "sources:\n  - url: s3://${BUCKET:-lake}/x/\n    collection: a\n",
    "sources:\n  - url: s3://lake/x/\n    collection: a\nledger: postgresql://u@${PGHOST:-localhost}/db\n",
    "sources:\n  - url: s3://lake/x/\n    collection: a\nledger: ${DIR-/var/lib}/x.sqlite\n",
])
def test_a_shell_default_in_a_reference_is_refused_at_validate(tmp_path: Path, body: str) -> None:
    # old code: kept literally (then "no objects under this prefix", or a ledger in a folder named "${DIR-")
    problem = _problem(_manifest(tmp_path, body))
    assert "only ${NAME} is substituted, with no default or other shell form" in problem
    assert "localhost" not in problem and "/var/lib" not in problem  # what follows the name may be secret
    from orchestrator import api
    from orchestrator.errors import ManifestError
    with pytest.raises(ManifestError, match="only"):
        api.ledger_location("postgresql://u@${H:-x}/db?schema=s", {})


def test_a_postgresql_host_is_substituted_as_written(tmp_path: Path) -> None:
    from orchestrator import api
    path = _manifest(tmp_path, "sources:\n  - url: s3://lake/x/\n    collection: a\n"
                               "ledger: postgresql://u@${PGHOST_A}:5433/db\n")
    # old code: "environment variable pghost_a is not set" (the host lower-cased first)
    where = api.validate(path, {**ENV, "PGHOST_A": "db.internal"}).ledger_url
    assert where is not None and (where.host, where.port) == ("db.internal", 5433)
    location = api.ledger_location("postgresql://u@${PGHOST_A}/db?schema=s", {"PGHOST_A": "10.0.0.7"})
    assert not isinstance(location, Path) and location.host == "10.0.0.7"


# -- local folders: what cannot be listed is skipped with a warning naming it -------------------------------

def test_a_dangling_symlink_and_a_loop_are_skipped_and_the_rest_is_listed(
    write_manifest: Callable[..., Path], fake_api: FakeZilliz, tmp_path: Path,
) -> None:
    folder = tmp_path / "lake"
    (folder / "day=01").mkdir(parents=True)
    (folder / "day=01" / "a.parquet").write_bytes(b"x")
    (folder / "b.parquet").write_bytes(b"y")
    (folder / "day=01" / "gone.parquet").symlink_to(folder / "deleted.parquet")
    (folder / "loop.parquet").symlink_to("loop.parquet")
    manifest = write_manifest(sources=[{"url": str(folder), "collection": "articles"}])
    result = invoke("ls", str(manifest))
    # old code: exit 1, "No such file or directory" for the whole source, nothing listed
    assert result.exit_code == 0, result.output
    assert [line.split()[1].rsplit("/", 1)[1] for line in result.stdout.splitlines()] == \
        ["b.parquet", "a.parquet"]
    warnings = [line for line in unstamped(result.stderr) if line.startswith("warning:")]
    assert warnings == [
        f"warning: sources[0] {folder.as_uri()}/: skipped loop.parquet: a symlink loop",
        f"warning: sources[0] {folder.as_uri()}/: skipped day=01/gone.parquet: a symlink to nothing "
        f"(no {folder / 'deleted.parquet'})"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a folder whatever its mode")
def test_an_unreadable_sub_folder_is_skipped_with_a_warning(
    write_manifest: Callable[..., Path], fake_api: FakeZilliz, tmp_path: Path,
) -> None:
    folder = tmp_path / "lake"
    (folder / "lost+found").mkdir(parents=True)
    (folder / "a.parquet").write_bytes(b"x")
    (folder / "lost+found").chmod(0)
    try:
        result = invoke("ls", str(write_manifest(sources=[{"url": str(folder), "collection": "articles"}])))
    finally:
        (folder / "lost+found").chmod(0o755)
    assert result.exit_code == 0 and "a.parquet" in result.stdout
    assert "skipped lost+found/: cannot be read (Permission denied)" in result.stderr


def test_a_sub_folder_that_cannot_be_listed_is_skipped_even_for_root(
    write_manifest: Callable[..., Path], fake_api: FakeZilliz, tmp_path: Path,
) -> None:
    """A sub-folder whose path is longer than the system takes (ENAMETOOLONG, which root meets too):
    what cannot be listed under a source is skipped with a warning, whoever runs."""
    folder = tmp_path / "lake"
    folder.mkdir()
    (folder / "a.parquet").write_bytes(b"x")
    fd = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(20):  # 20 levels of 250 characters: past PATH_MAX (4,096)
            os.mkdir("d" * 250, dir_fd=fd)
            deeper = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = deeper
    finally:
        os.close(fd)
    result = invoke("ls", str(write_manifest(sources=[{"url": str(folder), "collection": "articles"}])))
    # old code: exit 1, "File name too long" for the whole source, nothing listed
    assert result.exit_code == 0, result.output
    assert [line.split()[1].rsplit("/", 1)[1] for line in result.stdout.splitlines()] == ["a.parquet"]
    (warning,) = [line for line in unstamped(result.stderr) if line.startswith("warning:")]
    assert warning.endswith("/: cannot be read (File name too long)") and len(warning) < 1000


# -- ledgers that are not plain orchestrator ledgers are refused -----------------------------------------

@pytest.mark.parametrize("make", [_dir, _loop, _fifo], ids=["folder", "symlink-loop", "fifo"])
def test_a_ledger_path_that_is_not_a_file_is_refused_by_every_command(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    tmp_path: Path, make: Callable[[Path], Path],
) -> None:
    put_objects(["embeddings/a.parquet"])
    ledger = make(tmp_path / "l.sqlite")
    manifest = write_manifest(ledger=str(ledger))
    # old code: "the ledger file has 2 hard links" (a folder); a RuntimeError traceback in run and
    # "empty ledger" in status (a symlink loop)
    for command in (["run"], ["status"], ["status", "--json"], ["export"], ["plan"], ["retry"]):
        result = invoke(*command, str(manifest))
        assert result.exit_code == 2, (command, result.output)
        assert result.stderr.startswith(f"error: {manifest}: ledger: {ledger}: a ") and \
            "not a ledger file: name a file (the first run makes it)" in result.stderr, result.stderr
        assert len(result.stderr.splitlines()) == 1
    assert fake_api.creates() == []
    copy = CliRunner().invoke(cli_group(), ["ledger", "copy", str(ledger), str(tmp_path / "new.sqlite")])
    assert copy.exit_code == 2 and "not a ledger file" in copy.stderr


def cli_group() -> Any:
    from orchestrator.cli.main import cli
    return cli


def _sql(ledger_url: str | None, manifest: Path, statement: str) -> None:
    if ledger_url is None:
        with sqlite3.connect(manifest.with_name("nightly.ledger.sqlite")) as db:
            db.executescript(statement)
        return
    base, _, query = ledger_url.partition("?")
    schema = dict(urllib.parse.parse_qsl(query))["schema"]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}")
        conn.execute(statement)


@pytest.mark.parametrize("ledger_url", LEDGERS, indirect=True)
def test_a_row_in_a_state_unknown_here_is_refused_by_every_command(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    ledger_url: str | None,
) -> None:
    put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    manifest = write_manifest(ledger=ledger_url)
    assert invoke("run", str(manifest)).exit_code == 0
    _sql(ledger_url, manifest, "UPDATE objects SET state = 'archived' WHERE url LIKE '%/a.parquet'")
    # old code: KeyError in status --json, export and run; plain status left the row out
    for command in (["run"], ["status"], ["status", "--json"], ["export"], ["export", "--format", "csv"],
                    ["plan"], ["show", "b.parquet"], ["retry"]):
        result = invoke(command[0], str(manifest), *command[1:])
        assert result.exit_code == 1, (command, result.output)
        assert "1 row(s) in state 'archived', which this orchestrator does not know (pending, submitting, " \
               "submitted, completed, failed, uncertain, invalid): refused" in result.stderr, result.stderr
        assert "retry --uncertain" in result.stderr and len(result.stderr.splitlines()) == 1
    assert len(fake_api.creates()) == 2  # nothing resubmitted


@pytest.mark.parametrize("ledger_url", LEDGERS, indirect=True)
def test_a_ledger_with_a_foreign_trigger_is_refused(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    ledger_url: str | None,
) -> None:
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest(ledger=ledger_url)
    assert invoke("run", str(manifest)).exit_code == 0
    if ledger_url is None:
        _sql(ledger_url, manifest, "CREATE TRIGGER forget AFTER UPDATE ON objects BEGIN "
                                   "DELETE FROM objects WHERE id = NEW.id; END; "
                                   "CREATE VIEW report AS SELECT url FROM objects")
        shown = "(trigger forget, view report)"
    else:
        _sql(ledger_url, manifest, "CREATE FUNCTION forget() RETURNS trigger LANGUAGE plpgsql AS "
                                   "$$ BEGIN DELETE FROM objects WHERE id = NEW.id; RETURN NULL; END $$; "
                                   "CREATE TRIGGER forget AFTER UPDATE ON objects FOR EACH ROW "
                                   "EXECUTE FUNCTION forget(); CREATE VIEW report AS SELECT url FROM objects")
        shown = "(trigger forget on objects, view report)"
    # old code: every run resubmitted everything (the trigger deleted each row as it was updated)
    for command in (["run"], ["status"], ["export"]):
        result = invoke(*command, str(manifest))
        assert result.exit_code == 1, (command, result.output)
        assert f"holds what orchestrator did not make {shown}, which could change what the ledger says: " \
               "refused" in result.stderr, result.stderr
    assert len(fake_api.creates()) == 1


# -- a PostgreSQL ledger over a Unix socket, as libpq writes it -------------------------------------------

@pytest.fixture(scope="module")
def socket_pg() -> Iterator[PgServer]:
    """A real PostgreSQL that listens on a Unix socket in its folder and on no TCP port at all."""
    server = PgServer(socket_only=True).start()
    yield server
    server.stop()


def test_a_postgresql_ledger_over_a_unix_socket(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    socket_pg: PgServer,
) -> None:
    put_objects(["embeddings/a.parquet", "embeddings/b.parquet"])
    url = f"{socket_pg.url()}&schema=nightly"
    assert url == f"postgresql://orchestrator@/postgres?host={socket_pg.dir}&schema=nightly"
    manifest = write_manifest(ledger=url)
    result = invoke("run", str(manifest))
    # old code: "the URL names no host"
    assert result.exit_code == 0, result.output
    status = invoke("status", str(manifest))
    shown = f"postgresql://orchestrator@:5432/postgres?host={socket_pg.dir}&schema=nightly"
    assert f"ledger: {shown}" in status.stdout
    assert "status: 2 submitted" in status.stdout
    assert socket_pg.sql("SELECT count(*) FROM nightly.objects") == [(2,)]

    # the lock is the database's: a run reaching it through another spelling of the socket meets it
    from orchestrator import api
    other = api.ledger_location(f"postgresql://orchestrator@%2F{str(socket_pg.dir)[1:].replace('/', '%2F')}"
                                "/postgres?schema=nightly")
    assert not isinstance(other, Path) and other.host == str(socket_pg.dir)
    from orchestrator.ledger.factory import hold_ledger
    with hold_ledger(other):
        held = invoke("run", str(manifest))
        assert held.exit_code == 75, held.output
    assert len(fake_api.creates()) == 2


@pytest.mark.parametrize(("make", "kind"), [
    (_dir, "a folder"), (_loop, "a symlink loop (it never reaches a file)"), (_fifo, "a FIFO (named pipe)"),
], ids=["folder", "symlink-loop", "fifo"])
def test_a_lock_file_that_is_not_a_file_is_refused(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    make: Callable[[Path], Path], kind: str,
) -> None:
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest()
    lock = make(manifest.with_name("nightly.ledger.sqlite.lock"))
    result = invoke("run", str(manifest))
    # old code: a traceback (ftruncate of a FIFO), or "cannot create the lock file (Is a directory)"
    assert result.exit_code == 1, result.output
    assert unstamped(result.stderr) == \
        [f"error: {lock}: {kind}, not a lock file: remove it (each run makes its own)"]
    assert fake_api.creates() == []


def test_ledger_copy_refuses_a_fifo_and_writes_through_a_symlink(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeZilliz,
    tmp_path: Path,
) -> None:
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest()
    assert invoke("run", str(manifest)).exit_code == 0
    source = str(manifest.with_name("nightly.ledger.sqlite"))
    fifo = _fifo(tmp_path / "copy.sqlite")
    refused = invoke("ledger", "copy", source, str(fifo))
    assert refused.exit_code == 2
    assert refused.stderr == f"error: ledger: {fifo}: a FIFO (named pipe), not a ledger file: name a file " \
        "(the first run makes it)\n"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    (tmp_path / "store").mkdir()
    link = tmp_path / "link.sqlite"
    link.symlink_to(tmp_path / "store" / "copy.sqlite")
    copied = invoke("ledger", "copy", source, str(link))
    assert copied.exit_code == 0, copied.output
    assert link.is_symlink() and (tmp_path / "store" / "copy.sqlite").stat().st_size > 0


def test_libpq_host_and_port_parameters_are_read_as_libpq_reads_them() -> None:
    from orchestrator import api
    from orchestrator.errors import ManifestError
    where = api.ledger_location("postgresql://u@/db?host=/run/Postgres&port=5433&schema=s", {})
    assert not isinstance(where, Path)
    assert (where.host, where.port) == ("/run/Postgres", 5433)  # a socket's folder keeps its case
    assert where.connect_kwargs()["host"] == "/run/Postgres"
    assert where.display == "postgresql://u@:5433/db?host=/run/Postgres&schema=s"
    encoded = api.ledger_location("postgresql://u@%2Frun%2FPostgres:5433/db?schema=s", {})
    assert encoded == where
    for bad in ("postgresql://u@/db?host=/a&host=/b&schema=s", "postgresql://u@/db?host=/a&port=x&schema=s",
                "postgresql://u@h:5432/db?port=5433&schema=s"):
        with pytest.raises(ManifestError):
            api.ledger_location(bad, {})


@pytest.mark.parametrize(("first", "second"), [
    ("url: s3://lake/day=01/", "url: s3://lake/\n    endpoint_url: http://minio:9000"),
    ("url: s3://lake/a/\n    endpoint_url: http://minio-a:9000", "url: s3://lake/a/b/\n    endpoint_url: http://minio-b:9000"),
])
def test_one_bucket_on_two_endpoints_is_refused_where_their_keys_could_meet(tmp_path: Path, first: str,
                                                                           second: str) -> None:
    """The ledger names an object s3://bucket/key, whatever the endpoint: the same bucket and key on two
    endpoints would be one row, and the second object taken for the first (old code: valid)."""
    path = _manifest(tmp_path, f"sources:\n  - {first}\n    collection: a\n  - {second}\n    collection: a\n")
    assert "sources[1].url: bucket 'lake' on another endpoint than sources[0]'s" in _problem(path)
    apart = _manifest(tmp_path, "sources:\n  - url: s3://lake/a/\n    collection: a\n  - url: s3://lake/b/\n"
                                "    endpoint_url: http://minio:9000\n    collection: a\n")
    assert api_validate(apart).sources[1].endpoint_url == "http://minio:9000"  # prefixes that never meet
    accounts = _manifest(tmp_path, "sources:\n  - url: az://lake/\n    account: one\n    collection: a\n"
                                   "  - url: az://lake/\n    account: two\n    endpoint_url: http://127.0.0.1:1/two\n"
                                   "    collection: a\n")
    assert len(api_validate(accounts).sources) == 2  # an Azure object's URL names its account


def api_validate(path: Path) -> Any:
    from orchestrator import api
    return api.validate(path, ENV)
