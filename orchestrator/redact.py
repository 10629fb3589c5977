"""Secrets never reach a log line or the ledger: every value of the manifest's secrets is replaced by
``***`` in texts and, as a logging filter, in every record of the ``orchestrator`` logger."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from .models import Secret


class Redactor(logging.Filter):
    """Removes every secret's value from a text before it is stored; as a logging filter, from every
    log record (its message and its ``error`` field), whatever code logged it."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        super().__init__()
        self._values = sorted({s.reveal() for s in secrets if len(s.reveal()) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self(record.getMessage()), None
        error = getattr(record, "error", None)
        if isinstance(error, str):
            record.error = self(error)
        return True
