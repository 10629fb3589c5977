"""Wiring: real clients by default, replaceable by callers. How a manifest is read with every registered
target and store (:data:`PLUGINS`), and becomes an HTTP client, a target, a reader of objects, a ledger
held by one run, and a redacting logger."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from ..config import document
from ..config.manifest import Manifest, Settings, SourceConfig
from ..config.plugins import Plugins
from ..jobs.evidence import ServerClock
from ..ledger import factory
from ..ledger.store import Ledger
from ..models import PlanItem, Secret, StoredObject
from ..redact import Redactor, userinfo_secret
from ..sources.base import ObjectReader, Source
from ..sources.notices import EventQueue
from ..sources.registry import BY_SCHEME, STORES, make_source, source_key
from ..sources.registry import object_url as object_url_of
from ..targets.base import Target
from ..targets.deadline import Limits, bounded_client
from ..targets.pacing import RateLimiter
from ..targets.registry import BY_TYPE, TARGETS, target_identity

log = logging.getLogger("orchestrator")
PLUGINS = Plugins(targets=TARGETS, stores=STORES)  # every target API and store a manifest may name


SourceFactory = Callable[[SourceConfig, Settings], Source]
TargetFactory = Callable[[Manifest, httpx.Client, ObjectReader], Target]
QueueFactory = Callable[[SourceConfig, Settings], EventQueue]


def load_manifest(path: str | Path, environ: Mapping[str, str] | None = None) -> Manifest:
    """Read, substitute and validate a manifest with every registered target and store; raises
    :class:`ManifestError` naming every problem."""
    return document.load(path, environ, plugins=PLUGINS)


def parse_manifest(doc: Any, *, file: str, base_dir: Path, stem: str, environ: Mapping[str, str]) -> Manifest:
    """Validate a manifest already parsed from YAML (``doc``), as :func:`load_manifest` does."""
    return document.parse(doc, file=file, base_dir=base_dir, stem=stem, environ=environ, plugins=PLUGINS)


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


def manifest_ledger(manifest: Manifest, *, clock: Callable[[], float] = time.time,
                read_only: bool = False) -> Ledger:
    """The manifest's ledger; ``read_only`` for commands that only read it (nothing written)."""
    return factory.open_ledger(ledger_at(manifest), clock=clock, owner=target_identity(manifest.target),
                               sources=[source_key(s) for s in manifest.sources], read_only=read_only)


def ledger_at(manifest: Manifest) -> factory.Location:
    """Where the manifest's ledger is: its PostgreSQL URL, or its file."""
    return manifest.ledger_url or manifest.ledger_path


def ledger_name(manifest: Manifest) -> str:
    """How messages name the manifest's ledger: its path, or its URL without the password."""
    return factory.display(ledger_at(manifest))


def ledger_exists(manifest: Manifest) -> bool:
    """Whether reading the ledger can find anything (a PostgreSQL schema is asked when opened)."""
    where = ledger_at(manifest)
    return not factory.kind(where).missing(where)


@contextlib.contextmanager
def one_run(manifest: Manifest, *, wait_lock_s: float = 0.0,
            clock: Callable[[], float] = time.time) -> Iterator[Ledger]:
    """The ledger, held by this process alone: the run lock (:func:`factory.hold_ledger`), and a run record
    inside the database, so two runs never both write to one ledger, whatever paths reached it."""
    with factory.hold_ledger(ledger_at(manifest), wait_s=wait_lock_s) as (name, alive), \
            manifest_ledger(manifest, clock=clock) as ledger:
        ledger.claim_run(name, holder_alive=alive)
        try:
            yield ledger
        finally:
            ledger.end_run()


def make_target(manifest: Manifest, client: httpx.Client, read: ObjectReader | None = None) -> Target:
    """The target ``target.type`` names; ``read`` reads objects for targets that import them themselves
    (by default, through sources made by :func:`make_source`)."""
    t = manifest.target
    return BY_TYPE[t.type].build(t, client, read if read is not None else make_reader(manifest, make_source))


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
    """Every secret the manifest holds: the target's key, each store's own (an Azure SAS token), the
    credentials, the ledger's password and passwords in configured URLs."""
    found = [manifest.target.api_key] if manifest.target.api_key is not None else []
    for source in manifest.sources:
        found += BY_SCHEME[source.scheme].secrets(source)
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
    return object_url_of(item.obj, scheme=s.scheme, style=s.object_url_style, region=s.region,
                         endpoint_url=s.endpoint_url)


# -- ls -------------------------------------------------------------------------------------------
