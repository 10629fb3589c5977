"""Regular expressions matched against object keys, in time linear in the key: RE2 (through pyre2).

Anyone who can name an object in a bucket chooses the text a source's ``pattern`` (and its include and
exclude globs) are matched against. Python's ``re`` backtracks: ``(?P<c>(a+)+)$`` against forty a's
and a ``!`` takes longer than any run may, in C, where no signal handler gets to run. RE2 never
backtracks, so every match ends in microseconds, whatever the key.

RE2's syntax is Python's for everything a key pattern needs (named groups ``(?P<name>...)``, classes,
repetitions, alternation, ``(?i)``); what needs backtracking is refused when the manifest is read,
naming RE2's reason: lookarounds ``(?=...)``, ``(?!...)``, ``(?<=...)``, backreferences ``\\1`` and
``(?P=name)``, atomic groups and possessive repetitions. ``\\d``, ``\\w`` and ``\\s`` are ASCII.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import re2

# pyre2 would otherwise hand a pattern RE2 refuses to Python's ``re``, backtracking and all
re2.set_fallback_notification(re2.FALLBACK_EXCEPTION)


class KeyMatch(Protocol):
    def groupdict(self) -> dict[str, str | None]: ...


class PatternError(ValueError):
    """A pattern RE2 refuses: the message says why."""


class KeyPattern:
    """A compiled pattern: :meth:`match` at the start of a key, :meth:`fullmatch` of the whole key."""

    def __init__(self, pattern: str, *, dot_all: bool = False) -> None:
        self.pattern = pattern
        try:
            self._regexp: Any = re2.compile(f"(?s){pattern}" if dot_all else pattern)
        except re2.error as exc:  # pyre2 raises re.error
            raise PatternError(str(exc)) from None

    @property
    def groupindex(self) -> Mapping[str, int]:
        return self._regexp.groupindex  # type: ignore[no-any-return]

    def match(self, key: str) -> KeyMatch | None:
        try:
            return self._regexp.match(key)  # type: ignore[no-any-return]
        except UnicodeEncodeError:
            return self._regexp.match(_encodable(key))  # type: ignore[no-any-return]

    def fullmatch(self, key: str) -> KeyMatch | None:
        try:
            return self._regexp.fullmatch(key)  # type: ignore[no-any-return]
        except UnicodeEncodeError:
            return self._regexp.fullmatch(_encodable(key))  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyPattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"KeyPattern({self.pattern!r})"


def _encodable(key: str) -> str:
    """RE2 reads UTF-8: a key that cannot be written so (a local file name holding bytes that are not
    UTF-8, kept as surrogates) is matched with ``?`` in place of each such character."""
    return key.encode("utf-8", "replace").decode("utf-8")
