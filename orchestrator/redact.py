"""Secrets never reach a log line or the ledger: every value of the manifest's secrets is replaced by
``***`` in texts and, as a logging filter, in every record of the ``orchestrator`` logger. Every URL
that is printed or logged goes through :func:`shown_url` first: its user-info and query values hidden."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from .models import Secret


def shown_url(url: str) -> str:
    """``url`` fit to print or log: its user-info (``user:password@``) becomes ``***@``, every query
    value and a fragment ``***`` (``?token=***&sig=***``). Nothing is parsed that could fail: an ``@``
    anywhere before the query hides everything from the ``//`` (or the start) up to it."""
    rest, hashed, _ = url.partition("#")
    rest, asked, query = rest.partition("?")
    start = rest.find("//") + 2 if "//" in rest else 0
    if "@" in rest[start:]:
        rest = f"{rest[:start]}***@{rest.rpartition('@')[2]}"
    if asked:
        rest += "?" + "&".join(f"{part.partition('=')[0]}=***" if "=" in part else "***" if part else ""
                               for part in query.split("&"))
    return rest + ("#***" if hashed else "")


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def shown_urls(text: str) -> str:
    """``text`` (a library's error message) with every URL in it shown by :func:`shown_url`."""
    return _URL_IN_TEXT.sub(lambda m: shown_url(m.group()), text)


def userinfo_secret(url: str) -> str | None:
    """The secret in an endpoint's user-info (the password, or a user-info without one), for the
    :class:`Redactor`; None when there is none. Read as :func:`shown_url` hides it: up to the last
    ``@`` before the query (a password may hold a ``/``)."""
    rest = url.partition("#")[0].partition("?")[0]
    start = rest.find("//") + 2 if "//" in rest else 0
    if "@" not in rest[start:]:
        return None
    user, colon, password = rest[start:].rpartition("@")[0].partition(":")
    return (password if colon else user) or None


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
