"""Servers the tests talk to, started once per session where they can be shared."""

from __future__ import annotations

import fcntl
import io
import itertools
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from azure.storage.blob import BlobServiceClient
from gcp_storage_emulator.server import create_server
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from moto.server import ThreadedMotoServer

from tests import forkserver
from tests.fakes.base import FakeImportAPI
from tests.fakes.canned import Canned, CannedServer
from tests.fakes.milvus import FakeMilvus
from tests.fakes.zilliz import FakeZilliz
from tests.fakes.zilliz_v2 import FakeZillizV2
from tests.pgserver import PgServer

API_KEY = "zk-test-API-KEY-do-not-leak-4f2a9c"
ACCESS_KEY = "AKTESTIMPORTACCESS77"
SECRET_KEY = "import-SECRET-key-do-not-leak-9d8e7f"
MILVUS_TOKEN = "root:milvus-PASSWORD-do-not-leak-1b3c"
SECRETS = (API_KEY, ACCESS_KEY, SECRET_KEY, MILVUS_TOKEN)
# Every HTTP import API, each with its fake: parametrize a test over them with
# ``@pytest.mark.parametrize("fake_api", HTTP_TARGETS, indirect=True)``.
FAKES: dict[str, Callable[[], FakeImportAPI]] = {
    "zilliz-v1": lambda: FakeZilliz(api_key=API_KEY),
    "zilliz-v2": lambda: FakeZillizV2(api_key=API_KEY),
    "milvus": lambda: FakeMilvus(api_key=MILVUS_TOKEN),
}
HTTP_TARGETS = tuple(FAKES)
# The ledgers a suite runs over: ``@pytest.mark.parametrize("ledger_url", LEDGERS, indirect=True)``.
LEDGERS = ("sqlite", "postgresql")
_buckets = itertools.count(1)
AZURITE = Path(__file__).parent.parent / ".azurite" / "node_modules" / ".bin" / "azurite-blob"
AZURE_ACCOUNT = "devstoreaccount1"  # Azurite's well-known development account and its published key
AZURE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
PUBSUB_EMULATOR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
ROOT = Path(__file__).resolve().parent.parent
MILVUS_PYTHON = ROOT / ".milvus-venv" / "bin" / "python"  # made by `make install-server`
_schemas = itertools.count(1)


# -- command lines in subprocesses --------------------------------------------------------------

CLI_DEADLINE_S = 120.0  # the most a CLI subprocess of a test may take: then it is killed, the test failed
# The child's signal dispositions are set here, not inherited: a suite run under `nohup` (SIGHUP
# ignored) or in a background job of a script (SIGINT ignored) must test what a terminal user gets.
_LAUNCH = """\
import runpy, signal, sys
hup, root, module = sys.argv[1:4]
del sys.argv[1:4]
signal.signal(signal.SIGHUP, signal.SIG_IGN if hup == "ignore" else signal.SIG_DFL)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, root)
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


class Child:
    """A command in a subprocess with a deadline: :meth:`finish` waits for it at most until then, and
    on expiry kills it and fails the test with the command and its output. Every CLI subprocess of
    the suite goes through here, so that no `run` or `run --wait` can hang the suite. ``forked``
    (module, arguments, SIGHUP disposition): the same command forked by :mod:`tests.forkserver`."""

    def __init__(self, argv: list[str], *, deadline_s: float = CLI_DEADLINE_S, shown: str | None = None,
                 forked: tuple[str, list[str], str] | None = None, **popen: Any) -> None:
        self.shown = shown or " ".join(argv)
        self.deadline_s = deadline_s
        self._deadline = time.monotonic() + deadline_s
        popen.setdefault("stdout", subprocess.PIPE)
        popen.setdefault("stderr", subprocess.PIPE)
        self.proc: subprocess.Popen[str] | forkserver.Forked = \
            forkserver.Forked(*forked, **popen) if forked else subprocess.Popen(argv, text=True, **popen)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send_signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def poll(self) -> int | None:
        return self.proc.poll()

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def wait(self, timeout: float | None = None) -> int:
        """The exit code, within the deadline (and ``timeout`` seconds from now, if given)."""
        return self.finish(timeout).returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """stdout and stderr, within the deadline (and ``timeout`` seconds from now, if given)."""
        done = self.finish(timeout)
        return done.stdout, done.stderr

    def finish(self, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Wait for the end (its output collected); past the deadline (or ``timeout`` seconds from
        now, whichever comes first), kill it and fail."""
        if timeout is not None:
            self._deadline = min(self._deadline, time.monotonic() + timeout)
        try:
            out, err = self.proc.communicate(timeout=max(0.0, self._deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            pytest.fail(f"`{self.shown}` did not end within its deadline of {self.deadline_s:g} s: killed\n"
                        f"--- stdout\n{out}\n--- stderr\n{err}", pytrace=False)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)


def cli_child(*args: str, module: str = "orchestrator", ignore_hup: bool = False, **kwargs: Any) -> Child:
    """``python -m orchestrator ARGS`` (or ``-m MODULE``), started: SIGINT, SIGTERM and SIGHUP as a
    terminal gives them (SIGHUP ignored with ``ignore_hup``, as under `nohup`), whatever this process
    inherited. The command line itself is forked from a warm interpreter (:mod:`tests.forkserver`)
    where it would start the same way: a real process, without a second of imports."""
    hup = "ignore" if ignore_hup else "default"
    argv = [sys.executable, "-c", _LAUNCH, hup, str(ROOT), module, *args]
    popen = {k: v for k, v in kwargs.items() if k != "deadline_s"}
    forked = (module, list(args), hup) if forkserver.can_fork(module, popen) else None
    return Child(argv, shown=f"python -m {module} {' '.join(args)}", forked=forked, **kwargs)


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``python -m orchestrator ARGS`` to its end, within its deadline (see :class:`Child`)."""
    return cli_child(*args, **kwargs).finish()


class Clock:
    """A clock the test moves: ``clock.now += 3``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, s3_endpoint: str) -> dict[str, str]:
    """The environment a user would have: listing credentials, the import keys, the API key."""
    values = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "listing-key",
        "AWS_SECRET_ACCESS_KEY": "listing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "ZILLIZ_API_KEY": API_KEY,
        "IMPORT_ACCESS_KEY": ACCESS_KEY,
        "IMPORT_SECRET_KEY": SECRET_KEY,
        "MILVUS_TOKEN": MILVUS_TOKEN,
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    # GCS tests set STORAGE_EMULATOR_HOST or a key file: none reaches Application Default Credentials,
    # whose search would probe a cloud metadata server
    # nor does any Azure test reach DefaultAzureCredential's managed identity probe (it would leave the host)
    for k in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_MAX_ATTEMPTS",
              "GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "AZURE_STORAGE_CONNECTION_STRING",
              "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "IDENTITY_ENDPOINT",
              "IDENTITY_HEADER", "MSI_ENDPOINT"):
        monkeypatch.delenv(k, raising=False)
    return values


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    """gcp-storage-emulator in this process (in memory). It answers every listing in one page and
    re-saves its metadata on each upload: seed a few dozen blobs, not thousands."""
    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def gcs(env: dict[str, str], gcs_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> storage.Client:
    """A client of the emulator; STORAGE_EMULATOR_HOST points the code under test at it too."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    return storage.Client(project="test", credentials=AnonymousCredentials())


@pytest.fixture
def gcs_bucket(gcs: storage.Client) -> str:
    name = f"gcs-lake-{next(_buckets)}"
    gcs.create_bucket(name)
    return name


def _azurite(service: str, workdir: Path) -> Iterator[str]:
    """One Azurite service (``blob``, ``queue``) on a port it picks, in memory, until the generator is
    closed; the account's endpoint URL."""
    binary = AZURITE.with_name(f"azurite-{service}")
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `make install`")
    process = subprocess.Popen(
        [str(binary), f"--{service}Host", "127.0.0.1", f"--{service}Port", "0", "--inMemoryPersistence",
         "--extentMemoryLimit", "256", "--silent", "--skipApiVersionCheck", "--loose"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # it says where it listens once it does
        seen.append(line)
        found = re.search(r"successfully listens on (http://127\.0\.0\.1:\d+)", line)
        if found:
            break
    else:
        process.wait()
        pytest.fail("Azurite did not start:\n" + "".join(seen))
    yield f"{found.group(1)}/{AZURE_ACCOUNT}"
    process.kill()  # in memory: nothing to flush, and a graceful stop waits for idle keep-alive connections
    process.wait()
    process.stdout.close()


@pytest.fixture(scope="session")
def azurite_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's blob service; the account's endpoint URL."""
    yield from _azurite("blob", tmp_path_factory.mktemp("azurite"))


@pytest.fixture(scope="session")
def azurite_queue_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's queue service (the Storage Queues Event Grid delivers to); the account's endpoint URL."""
    yield from _azurite("queue", tmp_path_factory.mktemp("azurite-queue"))


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Google's Pub/Sub emulator (Java; about 1 s to start), in memory; its ``host:port`` for
    PUBSUB_EMULATOR_HOST. Skipped where the Debian package is not installed (`make install` installs it
    where its apt repository is configured)."""
    if not PUBSUB_EMULATOR.exists():
        pytest.skip(f"the Pub/Sub emulator is not installed ({PUBSUB_EMULATOR} is missing: apt-get install "
                    "google-cloud-cli-pubsub-emulator)")
    port = free_port()
    log = tmp_path_factory.mktemp("pubsub") / "emulator.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(PUBSUB_EMULATOR), "--host=127.0.0.1", f"--port={port}"],
                                   stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)  # a subprocess starting: no clock of ours to inject
    else:
        process.kill()
        process.wait()
        pytest.fail("the Pub/Sub emulator did not start:\n" + log.read_text(errors="replace"))
    yield f"127.0.0.1:{port}"
    process.kill()  # in memory: nothing to flush
    process.wait()


@pytest.fixture
def azure_connection_string(env: dict[str, str], azurite_endpoint: str) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURE_ACCOUNT};AccountKey={AZURE_KEY};"
            f"BlobEndpoint={azurite_endpoint};")


@pytest.fixture
def azure(azure_connection_string: str) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(azure_connection_string)


@pytest.fixture
def azure_container(azure: BlobServiceClient) -> str:
    name = f"lake-{next(_buckets)}"
    azure.create_container(name)
    return name


@pytest.fixture(scope="session")
def milvus_uri() -> Iterator[str]:
    """A real Milvus 2.3.5 server (``tests/milvus_server.py``), one per test session: under
    pytest-xdist the first worker to ask starts it, under a file lock in a folder named after the
    session's main process, and the others find its port there. It stops (and removes the folder's
    server data) when that process ends. Not under pytest's temp root: other sessions prune that."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    owner = os.getppid() if worker else os.getpid()  # xdist's controller, or this process
    root = Path(tempfile.gettempdir()) / f"orchestrator-milvus-{owner}"
    root.mkdir(exist_ok=True)
    state = root / "milvus-server.json"
    started: subprocess.Popen[bytes] | None = None
    with open(root / "milvus-server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if state.exists() and not Path(f"/proc/{json.loads(state.read_text())['pid']}").exists():
            state.unlink()  # a server that died: start another
        if not state.exists():
            if not MILVUS_PYTHON.exists():
                pytest.fail(f"{MILVUS_PYTHON} is missing: run `make install-server` (part of `make test`)")
            with open(root / "milvus-server.log", "wb") as log:
                started = subprocess.Popen(
                    [str(MILVUS_PYTHON), str(ROOT / "tests" / "milvus_server.py"), str(root / "milvus"),
                     str(state), str(owner)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + 90
            while not state.exists():
                if started.poll() is not None or time.monotonic() > deadline:
                    started.terminate()
                    started.wait(30)
                    pytest.fail(f"the Milvus server did not start: see {root / 'milvus-server.log'}")
                time.sleep(0.2)
        port = json.loads(state.read_text())["port"]
    yield f"http://127.0.0.1:{port}"
    if started is not None and not worker:  # alone: stop it now (under xdist it outlives this worker)
        started.send_signal(signal.SIGTERM)
        started.wait(30)


@pytest.fixture(scope="session")
def canned_server() -> Iterator[CannedServer]:
    server = CannedServer().start()
    yield server
    server.stop()


@pytest.fixture
def canned(canned_server: CannedServer) -> CannedServer:
    """The canned server, reset: set ``reply`` to the error a store should send."""
    canned_server.reply = Canned(200, "{}")
    canned_server.by_path.clear()
    canned_server.paths.clear()
    return canned_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server per test process, on a free loopback port in a temp dir."""
    server = PgServer().start()
    yield server
    server.stop()


@pytest.fixture
def ledger_url(request: pytest.FixtureRequest) -> str | None:
    """None (the manifest's default SQLite ledger) or, parametrized with "postgresql", a URL to a
    schema of its own on the session's server."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    return fresh_schema(request.getfixturevalue("pg_server"))


def fresh_schema(server: PgServer) -> str:
    """A ledger URL on ``server`` whose schema no other test uses."""
    return f"{server.url()}?schema=t{next(_schemas)}"


@pytest.fixture
def s3(env: dict[str, str]) -> Any:
    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"lake-{next(_buckets)}"
    s3.create_bucket(Bucket=name)
    return name


def parquet_bytes(rows: int = 3, dim: int = 4, start: int = 0) -> bytes:
    table = pa.table({
        "id": pa.array(range(start, start + rows), pa.int64()),
        "vector": pa.array([[float(i)] * dim for i in range(rows)], pa.list_(pa.float32())),
    })
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


@pytest.fixture
def put_objects(s3: Any, bucket: str) -> Callable[..., list[str]]:
    def put(keys: list[str], body: bytes | None = None) -> list[str]:
        data = body if body is not None else parquet_bytes()
        for key in keys:
            s3.put_object(Bucket=bucket, Key=key, Body=data)
        return [f"s3://{bucket}/{k}" for k in keys]

    return put


@pytest.fixture
def fake_api(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The fake import API: Zilliz v1 unless parametrized (indirectly) with a name from HTTP_TARGETS."""
    fake = FAKES[getattr(request, "param", "zilliz-v1")]().start()
    yield fake
    fake.stop()


@pytest.fixture
def write_manifest(tmp_path: Path, bucket: str, fake_api: FakeImportAPI) -> Callable[..., Path]:
    """Write a valid manifest over ``bucket`` and ``fake_api``; keyword arguments override parts."""
    if isinstance(fake_api, FakeMilvus):
        fake_api.bucket = bucket  # Milvus reads the bucket it is configured with: this one

    def write(*, sources: list[dict[str, Any]] | None = None, settings: dict[str, Any] | None = None,
              target: dict[str, Any] | None = None, name: str = "nightly.yaml",
              ledger: str | None = None) -> Path:
        doc: dict[str, Any] = {
            "version": 1,
            "target": {**fake_api.manifest_target(), **(target or {})},
            "sources": sources or [{"url": f"s3://{bucket}/embeddings/", "collection": "articles"}],
            "settings": {"requests_per_second": 1000, "max_attempts": 4, "min_age_s": 0, "job_list_lag_s": 0,
                         **(settings or {})},
        }
        if fake_api.NEEDS_CREDENTIALS:
            doc["credentials"] = {"access_key": "${IMPORT_ACCESS_KEY}", "secret_key": "${IMPORT_SECRET_KEY}"}
        if ledger is not None:
            doc["ledger"] = ledger
        path = tmp_path / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return write
