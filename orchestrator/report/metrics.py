"""Prometheus metrics through ``prometheus_client``: the exposition for node_exporter's textfile
collector, written atomically (temp file in the same folder, fsync, rename, so the collector never
reads half a file), and the same metrics pushed to a Pushgateway, the convention for batch jobs
(a PUT that replaces the group ``job="orchestrator", manifest=<file name>``)."""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest, push_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler

from ..errors import OutputError
from ..paths import real_file
from ..redact import shown_url

JOB = "orchestrator"


@dataclass(frozen=True, slots=True)
class Metric:
    """One gauge and its samples, each a set of labels and a value."""

    name: str
    help: str
    samples: list[tuple[Mapping[str, str], float]]


def registry(metrics: Iterable[Metric]) -> CollectorRegistry:
    """A registry of its own (never the process-wide one) holding these gauges."""
    reg = CollectorRegistry(auto_describe=True)
    for m in metrics:
        names = list(dict.fromkeys(k for labels, _ in m.samples for k in labels))
        gauge = Gauge(m.name, m.help, names, registry=reg)
        for labels, value in m.samples:
            (gauge.labels(**labels) if names else gauge).set(value)
    return reg


def render(metrics: Iterable[Metric]) -> str:
    return generate_latest(registry(metrics)).decode("utf-8")


NO_METRICS = " (leave out --metrics-file for no metrics)"


def target(path: Path, *, what: str = "the metrics file", hint: str = NO_METRICS) -> Path:
    """The file ``what`` goes to: ``path`` itself, or the regular file a symlink there names (the
    symlink stays). A folder, a FIFO, a device (``/dev/null``), a socket or a symlink loop is refused
    with :class:`OutputError`: a rename over it would replace it with a regular file."""
    try:
        return real_file(path)
    except ValueError as exc:
        raise OutputError(f"{path}: {exc}: {what} is replaced whole at each write, so it must be a "
                          f"regular file or a new name in an existing folder{hint}") from None


def write_atomic(path: Path, text: str, *, what: str = "the metrics file", hint: str = NO_METRICS) -> None:
    """Replace ``path`` (or the file its symlink names) with ``text`` in one rename; raises
    :class:`OutputError` (naming ``what``)."""
    real = target(path, what=what, hint=hint)
    tmp = real.with_name(f".{real.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, real)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"{path}: cannot write {what} ({exc.strerror or exc})") from exc


def push(url: str, metrics: Iterable[Metric], *, grouping: Mapping[str, str],
         timeout_s: float = 10.0) -> None:
    """PUT the metrics to the Pushgateway at ``url`` (``user:password@`` in it: HTTP basic auth);
    raises :class:`OutputError`, the URL shown as :func:`orchestrator.redact.shown_url` shows it."""
    shown = shown_url(url)  # for messages: no user, password or query values
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here, not in the push
    except ValueError:
        raise OutputError(f"{shown}: expected the Pushgateway as http(s)://host:port") from None
    gateway = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # the user goes by basic auth
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutputError(f"{shown}: expected the Pushgateway as http(s)://host:port")
    user, password = urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or "")

    def handler(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]],
                data: bytes) -> Callable[[], None]:
        if parts.username is None:
            return default_handler(url, method, timeout, headers, data)
        return basic_auth_handler(url, method, timeout, headers, data, user, password)

    try:
        push_to_gateway(gateway, job=JOB, registry=registry(metrics), grouping_key=dict(grouping),
                        timeout=timeout_s, handler=handler)
    except urllib.error.HTTPError as exc:
        raise OutputError(f"{shown}: the Pushgateway refused the metrics (HTTP {exc.code})") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OutputError(f"{shown}: cannot push the metrics ({reason})") from None
