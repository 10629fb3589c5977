"""What reaches a terminal: text that came from outside (object keys, server messages) with its control
characters escaped, so that a key cannot move the cursor, clear the screen or fake a line of output."""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the Unicode marks that reorder text (bidi overrides and isolates)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    r"""``text`` with every control character written as an escape (``\x1b``, ``\n``, ``\u202e``)."""
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return char.encode("unicode_escape").decode("ascii") if ord(char) < 0x100 else f"\\u{ord(char):04x}"
