"""How fast and how often calls go out: a rate cap shared by every thread, full-jitter backoff, and
retries by error type (never by message text)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import MAX_RETRY_AFTER_S, TransientError

T = TypeVar("T")
log = logging.getLogger("orchestrator")


class RateLimiter:
    """At most ``per_second`` acquisitions per second across threads, evenly spaced."""

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


def backoff(attempt: int, *, retry_after: float | None, rng: Callable[[], float],
            base: float = 0.5, cap: float = 30.0, max_retry_after_s: float = MAX_RETRY_AFTER_S) -> float:
    """Full-jitter exponential backoff, never shorter than the server's ``Retry-After`` (a hint that is
    not a finite number of seconds is ignored; one above ``max_retry_after_s``, the manifest's
    ``settings.max_retry_after_s``, waits that long)."""
    delay = rng() * min(cap, base * 2.0 ** (attempt - 1))
    if retry_after is None or not math.isfinite(retry_after) or retry_after < 0:
        return delay
    return max(delay, min(retry_after, max_retry_after_s))


def retrying(what: str, exc: TransientError, attempt: int, max_attempts: int, delay: float) -> float:
    """Log one retry (``-v``, ``--json-log``): what, the error and its HTTP status, the attempt, the
    pause and the server's Retry-After; returns ``delay``."""
    hint = f", Retry-After {exc.retry_after:g} s" if exc.retry_after is not None else ""
    status = f"HTTP {exc.http_status}: " if exc.http_status is not None and \
        f"HTTP {exc.http_status}" not in str(exc) else ""
    log.info("%s: %s%s; attempt %d of %d failed, next in %.1f s%s", what, status, exc, attempt, max_attempts,
             delay, hint, extra={"event": "retry", "status": exc.http_status, "retry_after": exc.retry_after,
                                 "attempt": attempt})
    return delay


def with_retries(fn: Callable[[], T], *, max_attempts: int, sleep: Callable[[float], object],
                 rng: Callable[[], float], stop: threading.Event, what: str = "call",
                 max_retry_after_s: float = MAX_RETRY_AFTER_S) -> T:
    """Call ``fn`` until it succeeds, retrying :class:`TransientError` with backoff (each retry
    logged with ``what``)."""
    attempt = 1
    while True:
        try:
            return fn()
        except TransientError as exc:
            if attempt >= max_attempts or stop.is_set():
                raise
            sleep(retrying(what, exc, attempt, max_attempts,
                           backoff(attempt, retry_after=exc.retry_after, rng=rng,
                                   max_retry_after_s=max_retry_after_s)))
            attempt += 1
