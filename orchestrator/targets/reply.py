"""The one checked layer between an import API's reply and the rest of the program.

Every field a target reads from a reply is read here, with its type, size and range checked: a string
where a string belongs (valid Unicode, not longer than a name can be), a count of rows that fits a
ledger column (0 to 2**63 - 1), a percentage that is a finite number from 0 to 100, a list where a list
belongs. A field that breaks these is a :class:`orchestrator.errors.ProtocolError` naming it
(``data.details[1].importedRows is 18446744073709551616, out of range``), handled like any reply that
cannot be read: a read is retried, then left for the next run; on a create call it is an
:class:`orchestrator.errors.AmbiguousProtocolError` (the call may have made a job: it is looked up by
the job list, never sent again blind). Never a crash, never a value the ledger cannot hold.

Server text that is kept or shown (a failed job's reason, an error message) is cut to
:data:`MAX_TEXT` characters with its full length noted (:func:`bounded`), its NUL characters and lone
surrogates replaced (neither can be stored in PostgreSQL nor printed).
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import AmbiguousProtocolError, ProtocolError

MAX_TEXT = 4096  # characters of server text (a reason, a message) kept or printed
MAX_NAME = 4096  # a collection or file name, a state: longer is not one (object keys are at most 1,024 bytes)
MAX_COUNT = 2 ** 63 - 1  # rows: what a 64-bit ledger column holds
MAX_ITEMS = 100_000  # records in one list reply, files in one job
_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
          float: "a number", type(None): "null"}


def bounded(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` fit to keep or print: at most ``limit`` characters and a note of the full length, NUL
    characters and lone surrogates replaced."""
    cut = text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters in all)"
    return cut.replace("\x00", "\\0").encode("utf-8", "replace").decode("utf-8")


def kind(value: Any) -> str:
    """How a message names a JSON value's type."""
    return _KINDS.get(type(value), type(value).__name__)


def shown(value: Any) -> str:
    """A value for a message: strings cut to 40 characters and escaped, containers named by type."""
    if isinstance(value, str):
        return repr(value[:40] + ("..." if len(value) > 40 else ""))
    if isinstance(value, dict | list):
        return kind(value)
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return text if len(text) <= 40 else text[:40] + "..."


class Reply:
    """One JSON object of a reply, and where it sits in it (``data``, ``data.details[2]``).

    ``creates`` marks the reply of a call that may have made a job: its protocol errors are
    :class:`AmbiguousProtocolError`. Absent fields and JSON ``null`` read as None everywhere.
    """

    def __init__(self, value: Any, where: str, *, creates: bool = False,
                 http_status: int | None = None) -> None:
        self.where = where
        self.creates = creates
        self.http_status = http_status
        if not isinstance(value, dict):
            raise self.error(where, f"is {kind(value)}, not an object")
        self.value: dict[str, Any] = value

    def error(self, field: str, problem: str) -> ProtocolError:
        cls = AmbiguousProtocolError if self.creates else ProtocolError
        return cls(field, problem, http_status=self.http_status)

    def _at(self, key: str) -> str:
        return f"{self.where}.{key}"

    def has(self, key: str) -> bool:
        """Whether the field is there and not null."""
        return self.value.get(key) is not None

    def raw(self, key: str) -> Any:
        return self.value.get(key)

    def obj(self, key: str) -> Reply | None:
        value = self.value.get(key)
        return None if value is None else Reply(value, self._at(key), creates=self.creates,
                                                http_status=self.http_status)

    def objects(self, key: str, *, most: int = MAX_ITEMS) -> list[Reply]:
        """A list of objects (absent or null: empty)."""
        value = self.value.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(self._at(key), f"is {kind(value)}, not a list")
        if len(value) > most:
            raise self.error(self._at(key), f"holds {len(value)} items (at most {most})")
        return [Reply(item, f"{self._at(key)}[{i}]", creates=self.creates, http_status=self.http_status)
                for i, item in enumerate(value)]

    def name(self, key: str, *, most: int = MAX_NAME) -> str | None:
        """A short string that identifies something (a collection, a file, a state): valid Unicode
        without NUL, at most ``most`` characters; an empty one reads as None."""
        value = self.value.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.error(self._at(key), f"is {kind(value)} ({shown(value)}), not a string")
        if len(value) > most:
            raise self.error(self._at(key), f"is {len(value)} characters long (at most {most})")
        if "\x00" in value or not _valid(value):
            raise self.error(self._at(key), f"holds a NUL or an invalid character: {shown(value)}")
        return value

    def text(self, key: str) -> str | None:
        """Free text the server wrote (a reason, a message): a string, :func:`bounded`; an empty one
        reads as None."""
        value = self.value.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.error(self._at(key), f"is {kind(value)} ({shown(value)}), not a string")
        return bounded(value)

    def count(self, key: str) -> int | None:
        """A whole number from 0 to :data:`MAX_COUNT` (rows, files, jobs)."""
        value = self.value.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(self._at(key), f"is {kind(value)} ({shown(value)}), not a whole number")
        if not 0 <= value <= MAX_COUNT:
            raise self.error(self._at(key), f"is {shown(value)}, out of range (0 to 2**63 - 1)")
        return value

    def percent(self, key: str, *, spelled: bool = False) -> float | None:
        """A finite number from 0 to 100 (a progress: some servers say 0 to 1); with ``spelled``, a
        string that spells one (gRPC's ``progress_percent``) too."""
        value = self.value.get(key)
        if value is None or (spelled and value == ""):
            return None
        if spelled and isinstance(value, str):
            try:
                value = float(value[:64])
            except ValueError:
                raise self.error(self._at(key), f"is {shown(value)}, not a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(self._at(key), f"is {kind(value)} ({shown(value)}), not a number")
        if not (math.isfinite(value) and 0 <= value <= 100):
            raise self.error(self._at(key), f"is {shown(value)}, out of range (0 to 100)")
        return float(value)

    def code(self, key: str) -> int:
        """A body code: a whole number (present)."""
        value = self.value.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(self._at(key), f"is {kind(value)} ({shown(value)}), not a whole number")
        if abs(value) > MAX_COUNT:
            raise self.error(self._at(key), f"is {shown(value)}, out of range")
        return value

    def moment(self, key: str) -> bool:
        """Whether a time field (``completeTime``) is set: a string or a number, or null."""
        value = self.value.get(key)
        if value is None or value == "":
            return False
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(self._at(key), f"is {kind(value)} ({shown(value)}), not a time")
        if isinstance(value, str):
            self.name(key)
        return True


def _valid(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
