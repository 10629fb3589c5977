"""One deadline for a whole HTTP call, and calls cut short when the run stops.

httpx's timeouts bound each socket operation: a server that sends a byte of its headers (or of its
body) every second keeps every read under any read timeout and holds the call open for hours. Here
every call made through the client gets one deadline, ``settings.timeout_s`` from its start, that its
connect, its send and every read share; and once the run's ``stop`` is set (a signal, ``--deadline``, a
fatal error), a call still waiting gets :data:`STOP_GRACE_S` more to answer, then is cut. Reads wait in
slices of :data:`SLICE_S` so that both are noticed while a reply is held.

It works under httpx, at httpcore's network layer (a :class:`httpcore.NetworkBackend` around the
default one): a cut read raises httpcore's ``ReadTimeout``, which the client turns into
``httpx.ReadTimeout``, classified once in :func:`orchestrator.targets.http.call` (a create call cut
after sending is ambiguous: its job is looked for, never guessed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

SLICE_S = 0.25  # the longest a read waits before the deadline and the stop flag are looked at again
STOP_GRACE_S = 2.0  # how long a call in flight may still answer once the run stops


class Limits:
    """What bounds the calls of one client: ``total_s`` per call, and the run's ``stop`` flag."""

    def __init__(self, total_s: float, stop: threading.Event | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total_s = total_s
        self.stop = stop
        self._clock = clock
        self._local = threading.local()
        self._stopped_at: float | None = None
        self._lock = threading.Lock()

    def begin_request(self, _request: httpx.Request) -> None:
        """A call starts on this thread (a request hook: it runs in the caller's thread, after the
        pacing): its deadline is ``total_s`` from now."""
        self._local.deadline = self._clock() + self.total_s

    def left(self, op: str) -> float:
        """Seconds the current operation may still wait; raises httpcore's timeout of ``op`` (read,
        write, connect) when none are left."""
        now = self._clock()
        deadline: float | None = getattr(self._local, "deadline", None)
        left = float("inf") if deadline is None else deadline - now
        why = f"the call took longer than settings.timeout_s ({self.total_s:g} s)"
        if self.stop is not None and self.stop.is_set():
            with self._lock:
                if self._stopped_at is None:
                    self._stopped_at = now
                stop_left = self._stopped_at + STOP_GRACE_S - now
            if stop_left < left:
                left, why = stop_left, "the run is stopping"
        if left <= 0:
            raise _TIMEOUTS[op](why)
        return left


_TIMEOUTS: dict[str, type[httpcore.TimeoutException]] = {
    "read": httpcore.ReadTimeout, "write": httpcore.WriteTimeout, "connect": httpcore.ConnectTimeout}


def _within(timeout: float | None, left: float) -> float:
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, limits: Limits) -> None:
        self._inner = inner
        self._limits = limits

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while True:  # in slices: a held reply is cut at the deadline, or soon after the run stops
            wait = min(_within(timeout, self._limits.left("read")), SLICE_S)
            try:
                return self._inner.read(max_bytes, wait)
            except httpcore.ReadTimeout:
                continue

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # one attempt: a write cut halfway cannot be taken up again
        self._inner.write(buffer, _within(timeout, self._limits.left("write")))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname,
                                      _within(timeout, self._limits.left("connect")))
        return _Stream(inner, self._limits)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend, limits: Limits) -> None:
        self._inner = inner
        self._limits = limits

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, _within(timeout, self._limits.left("connect")),
                                         local_address, socket_options)
        return _Stream(stream, self._limits)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, _within(timeout, self._limits.left("connect")),
                                                 socket_options)
        return _Stream(stream, self._limits)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def bounded_client(limits: Limits, **kwargs: Any) -> httpx.Client:
    """An :class:`httpx.Client` whose every call (through a proxy named by ``HTTPS_PROXY`` too) is
    bounded by ``limits``."""
    hooks = kwargs.pop("event_hooks", {})
    hooks = {**hooks, "request": [*hooks.get("request", []), limits.begin_request]}
    client = httpx.Client(event_hooks=hooks, **kwargs)
    # httpx makes its connection pools without a way to pass them a network backend: wrap theirs
    for transport in [client._transport, *client._mounts.values()]:
        if isinstance(transport, httpx.HTTPTransport):
            pool = transport._pool
            pool._network_backend = _Backend(pool._network_backend, limits)
    return client
