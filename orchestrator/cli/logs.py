"""What the command line logs, and how: text lines with an ISO 8601 time for a terminal or a file,
or one JSON object per event (``--json-log``) for log shippers; ``-v`` and ``--json-log`` accepted before
the command and after it; every record of a command stamped with its run id and manifest."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from ..terminal import printable


class JsonFormatter(logging.Formatter):
    """One JSON object per event, for log shippers; ``run_id`` and ``manifest`` come from
    :class:`RunContext`, the other fields from the ``extra`` of the call that logged."""

    _FIELDS = ("event", "run_id", "manifest", "url", "job_id", "collection", "rows", "error", "jobs",
               "source", "page", "objects", "status", "retry_after", "attempt", "method", "path",
               "elapsed_ms")

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                               "message": record.getMessage()}
        for key in self._FIELDS:
            if hasattr(record, key):
                out[key] = getattr(record, key)
        out.update(getattr(record, "fields", {}))  # the summary's counts, each a field of its own
        return json.dumps(out, sort_keys=True)


class TextFormatter(logging.Formatter):
    """Log lines for a terminal or a ``>> run.log``: the time (ISO 8601, UTC, with its offset, to the
    millisecond), then the message after ``error:`` or ``warning:`` when it is one (the same prefix as
    the lines the commands print themselves, so that each fact is printed once, in one form), control
    characters escaped (object keys may hold them)."""

    def format(self, record: logging.LogRecord) -> str:
        text = printable(record.getMessage())
        if record.levelno >= logging.ERROR:
            text = f"error: {text}"
        elif record.levelno >= logging.WARNING:
            text = f"warning: {text}"
        return f"{iso_stamp(record.created)} {text}"


def iso_stamp(at: float) -> str:
    """``2026-12-07T06:50:01.234+00:00``"""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


class RunContext(logging.Filter):
    """Stamps every record of one command with a run id and the manifest's path (for ``--json-log``
    events); set up once per command."""

    def __init__(self, manifest: str) -> None:
        super().__init__()
        self.run_id = uuid.uuid4().hex[:12]
        self.manifest = manifest

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = self.run_id
        record.manifest = self.manifest
        return True


VERBOSE, JSON_LOG = "orchestrator.verbose", "orchestrator.json_log"


def setup_logging(verbose: bool, json_log: bool) -> None:
    logger = logging.getLogger("orchestrator")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_log else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO if json_log else logging.WARNING)
    logger.propagate = False


def _log_flag(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """``-v`` and ``--json-log`` are accepted before the command and after it: either turns it on."""
    if value:
        ctx.meta[VERBOSE if param.name == "verbose" else JSON_LOG] = True
    setup_logging(bool(ctx.meta.get(VERBOSE)), bool(ctx.meta.get(JSON_LOG)))
    return value


def log_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_log_flag,
                     help="Log every step to stderr (listing pages, HTTP calls, retries, jobs).")(f)
    return click.option("--json-log", is_flag=True, expose_value=False, callback=_log_flag,
                        help="Log one JSON object per event to stderr.")(f)


def stamp(ctx: click.Context, _param: click.Parameter, manifest: str) -> str:
    """Every log record of this command carries its run id and manifest (until the command ends)."""
    logger = logging.getLogger("orchestrator")
    stamp = RunContext(manifest)
    logger.addFilter(stamp)
    ctx.call_on_close(lambda: logger.removeFilter(stamp))
    return manifest
