"""How a command ends: its errors as one line each and an exit code (0 fine, 1 something failed, 2
manifest or usage error, 75 another run holds the ledger), and the signals that stop a run."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import click

from ..errors import LockHeldError, ManifestError, OrchestratorError
from ..terminal import printable

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75


def say(text: str, *, err: bool = False) -> None:
    """Print a line that may carry text from outside (object keys, server messages), escaped."""
    click.echo(printable(text), err=err)


def fail(message: str, code: int) -> None:
    say(f"error: {message}", err=True)
    sys.exit(code)


@contextmanager
def errors() -> Iterator[None]:
    try:
        yield
    except ManifestError as exc:
        for problem in exc.problems[:-1]:
            say(f"error: {problem}", err=True)
        fail(str(exc.problems[-1]), EXIT_USAGE)
    except LockHeldError as exc:
        fail(str(exc), EXIT_LOCKED)
    except OrchestratorError as exc:
        fail(str(exc), EXIT_FAILED)


@contextmanager
def signals(stop: threading.Event) -> Iterator[list[int]]:
    """SIGINT, SIGTERM and SIGHUP (the terminal closed) set ``stop``: nothing new starts, calls in flight
    get a short grace to answer and are then cut (:mod:`orchestrator.targets.deadline`), the summary is
    printed; the exit code is 128 + the signal (130, 143, 129). A signal ignored when we started stays
    ignored: SIGHUP under ``nohup``, SIGINT in a script's background job."""
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        if received:  # a second signal: stop now; the ledger is consistent at every commit
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        received.append(signum)
        stop.set()
        logging.getLogger("orchestrator").warning(
            "%s: finishing the calls in flight, submitting nothing new", signal.Signals(signum).name,
            extra={"event": "stopping"})

    caught = [s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
              if signal.getsignal(s) != signal.SIG_IGN]
    previous = {s: signal.signal(s, handler) for s in caught}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
