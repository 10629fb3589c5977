"""Wiring: real clients by default, replaceable by callers. How a manifest becomes an HTTP client, a
target, a reader of objects, a ledger held by one run, and a redacting logger."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from ..config import extras, urls
from ..config.manifest import Manifest, Settings, SourceConfig, TargetConfig
from ..config.pgurl import PostgresLedger
from ..errors import (
    FatalTargetError,
    ManifestError,
)
from ..jobs.evidence import ServerClock
from ..ledger import lock
from ..ledger.store import Ledger
from ..models import PlanItem, Secret, StoredObject
from ..redact import Redactor, userinfo_secret
from ..sources.base import ObjectReader, Source
from ..sources.registry import make_source
from ..targets.base import Target
from ..targets.deadline import Limits, bounded_client
from ..targets.milvus import MilvusTarget
from ..targets.pacing import RateLimiter
from ..targets.zilliz_v1 import ZillizV1Target
from ..targets.zilliz_v2 import ZillizV2Target

log = logging.getLogger("orchestrator")


SourceFactory = Callable[[SourceConfig, Settings], Source]
TargetFactory = Callable[[Manifest, httpx.Client, ObjectReader], Target]


def make_http_client(manifest: Manifest, limiter: RateLimiter | None = None,
                     server_clock: ServerClock | None = None,
                     clock: Callable[[], float] = time.monotonic,
                     stop: threading.Event | None = None) -> httpx.Client:
    """The client of the import API: each call bounded as a whole by ``settings.timeout_s``, and cut
    soon after ``stop`` is set (:mod:`orchestrator.targets.deadline`); paced by ``limiter``."""
    hooks: dict[str, list[Callable[..., object]]] = {"request": [], "response": []}
    if limiter is not None:
        hooks["request"].append(lambda _request: limiter.acquire())
    hooks["request"].append(lambda request: request.extensions.update(orchestrator_sent=clock()))
    hooks["response"].append(lambda response: log_http(response, clock()))
    if server_clock is not None:
        hooks["response"].append(lambda response: server_clock.observe(response.headers.get("Date")))
    return bounded_client(Limits(manifest.settings.timeout_s, stop), timeout=manifest.settings.timeout_s,
                          event_hooks=hooks, headers={"User-Agent": "orchestrator/0.1"})


def log_http(response: httpx.Response, now: float) -> None:
    """One DEBUG line (``-v``) per HTTP call: method, path, status, time to the headers, and the
    server's Retry-After when it gives one. Never the query, the headers or the body (secrets)."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    request = response.request
    sent = request.extensions.get("orchestrator_sent")
    elapsed_ms = round((now - sent) * 1000) if isinstance(sent, float) else None
    retry_after = response.headers.get("Retry-After")
    log.debug("HTTP %s %s -> %d in %s ms%s", request.method, request.url.path, response.status_code,
              elapsed_ms, f" (Retry-After: {retry_after})" if retry_after else "",
              extra={"event": "http", "method": request.method, "path": request.url.path,
                     "status": response.status_code, "elapsed_ms": elapsed_ms,
                     "retry_after": retry_after})


def target_identity(t: TargetConfig) -> str:
    """Where imports land, as the ledger records it: the API, the cluster or endpoint, the database.
    Jobs are only ever polled or judged by the target that owns them."""
    db = t.db_name or "default"
    if t.type in ("zilliz-v1", "zilliz-v2"):
        return f"{t.type} cluster={t.cluster_id} db={db}"
    if t.uri is not None:
        return f"{t.type} {t.uri.resolve()}"
    url = httpx.URL(t.base_url)
    return f"{t.type} {url.scheme}://{url.netloc.decode().lower()} db={db}"


def source_key(source: SourceConfig) -> str:
    """A source as the ledger names it: its URL, which stays when sources are reordered."""
    if source.root is not None:
        return urls.file_url(source.root) + "/"
    return f"{source.scheme}://{source.bucket}/{source.prefix}"


def open_ledger(manifest: Manifest, *, clock: Callable[[], float] = time.time,
                read_only: bool = False) -> Ledger:
    """The manifest's ledger; ``read_only`` for commands that only read it (nothing written)."""
    return Ledger(manifest.ledger_url or manifest.ledger_path, clock=clock,
                  owner=target_identity(manifest.target), sources=[source_key(s) for s in manifest.sources],
                  read_only=read_only)


def ledger_name(manifest: Manifest) -> str:
    """How messages name the manifest's ledger: its path, or its URL without the password."""
    return manifest.ledger_url.display if manifest.ledger_url else str(manifest.ledger_path)


def ledger_exists(manifest: Manifest) -> bool:
    """Whether reading the ledger can find anything (a PostgreSQL schema is asked when opened)."""
    return manifest.ledger_url is not None or manifest.ledger_path.exists()


@contextlib.contextmanager
def hold_ledger(where: Path | PostgresLedger, *,
                wait_s: float = 0.0) -> Iterator[tuple[str, Callable[[str], bool]]]:
    """The one-run lock of a ledger: ``<ledger>.lock`` beside a SQLite file's real path (symlinks
    resolved), or PostgreSQL's advisory lock. Yields the lock's name and how to tell whether the run
    a run record names still holds its lock (under an advisory lock, no other run can)."""
    if isinstance(where, Path):
        with lock.hold(where.resolve(), wait_s=wait_s) as lock_path:
            yield str(lock_path), lock.is_held
    else:
        from ..ledger import postgres as ledger_pg  # psycopg is loaded only for a PostgreSQL ledger
        with ledger_pg.hold(where, wait_s=wait_s) as name:
            yield name, lambda _other: False


@contextlib.contextmanager
def one_run(manifest: Manifest, *, wait_lock_s: float = 0.0,
            clock: Callable[[], float] = time.time) -> Iterator[Ledger]:
    """The ledger, held by this process alone: the run lock (:func:`hold_ledger`), and a run record
    inside the database, so two runs never both write to one ledger, whatever paths reached it."""
    with hold_ledger(manifest.ledger_url or manifest.ledger_path, wait_s=wait_lock_s) as (name, alive), \
            open_ledger(manifest, clock=clock) as ledger:
        ledger.claim_run(name, holder_alive=alive)
        try:
            yield ledger
        finally:
            ledger.end_run()


# One line per import API: how its manifest section becomes a target. Milvus Lite is imported on use,
# since it needs the optional ``milvus`` extra.
TARGETS: dict[str, Callable[[TargetConfig, httpx.Client, ObjectReader], Target]] = {
    "zilliz-v1": lambda t, client, _read: ZillizV1Target(
        client, base_url=t.base_url, cluster_id=t.cluster_id, api_key=_key(t),
        cluster_endpoint=t.cluster_endpoint),
    "zilliz-v2": lambda t, client, _read: ZillizV2Target(
        client, base_url=t.base_url, cluster_id=t.cluster_id, api_key=_key(t), db_name=t.db_name,
        cluster_endpoint=t.cluster_endpoint),
    "milvus": lambda t, client, _read: MilvusTarget(
        client, base_url=t.base_url, token=t.api_key, db_name=t.db_name, two_phase=t.two_phase),
    "milvus-lite": lambda t, _client, read: _milvus_lite(t, read),
    "milvus-grpc": lambda t, client, _read: _milvus_grpc(t, client),
}


def make_target(manifest: Manifest, client: httpx.Client, read: ObjectReader | None = None) -> Target:
    """The target ``target.type`` names; ``read`` reads objects for targets that import them themselves
    (by default, through sources made by :func:`make_source`)."""
    t = manifest.target
    return TARGETS[t.type](t, client, read if read is not None else make_reader(manifest, make_source))


def make_reader(manifest: Manifest, source_factory: SourceFactory) -> ObjectReader:
    """Reads objects through the manifest's sources, each made once, on first use."""
    made: dict[int, Source] = {}
    lock = threading.Lock()

    def read(index: int, obj: StoredObject, start: int, end: int | None) -> bytes:
        with lock:
            if index not in made:
                made[index] = source_factory(manifest.sources[index], manifest.settings)
            source = made[index]
        return source.read(obj, start, end)

    return read


def _key(t: TargetConfig) -> Secret:
    if t.api_key is None:
        raise ManifestError("", "target.api_key", f"the {t.type} target needs an API key")
    return t.api_key


def _milvus_lite(t: TargetConfig, read: ObjectReader) -> Target:
    try:
        from ..targets.milvus_lite import MilvusLiteTarget
    except ImportError as exc:
        raise FatalTargetError(f"the milvus-lite target needs pymilvus and milvus-lite ({exc}): install "
                               f"them with {extras.install_hint('milvus')}") from exc
    if t.uri is None:
        raise ManifestError("", "target.uri", "the milvus-lite target needs a database path")
    return MilvusLiteTarget(t.uri, read=read, create_collection=t.create_collection, metric=t.metric)


def _milvus_grpc(t: TargetConfig, client: httpx.Client) -> Target:
    try:
        from ..targets.milvus_grpc import MilvusGrpcTarget
    except ImportError as exc:
        raise FatalTargetError(f"the milvus-grpc target needs pymilvus ({exc}): install it with "
                               f"{extras.install_hint('milvus')}") from exc
    return MilvusGrpcTarget(t.base_url, token=t.api_key, db_name=t.db_name,
                            timeout_s=client.timeout.read or 30.0)  # settings.timeout_s, as for HTTP


@contextlib.contextmanager
def redacting(manifest: Manifest) -> Iterator[Redactor]:
    """While it lasts, every record of the ``orchestrator`` logger is cleaned of the manifest's
    secrets, whichever code logged it; the redactor is also for texts bound for the ledger."""
    redact = Redactor(secrets_of(manifest))
    log.addFilter(redact)
    try:
        yield redact
    finally:
        log.removeFilter(redact)


def secrets_of(manifest: Manifest) -> list[Secret]:
    found = [manifest.target.api_key] if manifest.target.api_key is not None else []
    for source in manifest.sources:
        found += [s for s in (source.connection_string, source.sas_token) if s is not None]
    for creds in [manifest.credentials, *(s.credentials for s in manifest.sources)]:
        if creds is not None:
            found += [creds.access_key, creds.secret_key, *([creds.token] if creds.token else [])]
    if manifest.ledger_url is not None:
        found += [Secret(s) for s in manifest.ledger_url.secrets()]
    configured = [manifest.target.base_url, manifest.target.cluster_endpoint,
                  *(s.endpoint_url for s in manifest.sources)]
    found += [Secret(secret) for url in configured if url and (secret := userinfo_secret(url))]
    return found


def object_url(item: PlanItem, manifest: Manifest) -> str:
    """The URL the import call names for ``item``, in its source's ``object_url_style``."""
    s = manifest.sources[item.source]
    return urls.object_url(item.obj, scheme=s.scheme, style=s.object_url_style, region=s.region,
                           endpoint_url=s.endpoint_url)


# -- ls -------------------------------------------------------------------------------------------
