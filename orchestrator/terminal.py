"""What reaches a terminal: text that came from outside (object keys, server messages) with its control
characters escaped, so that a key cannot move the cursor, clear the screen or fake a line of output; and
names and lists bounded (:func:`clip`, :func:`listing`), so that no line runs to megabytes."""

from __future__ import annotations

import re
from collections.abc import Sequence

# C0 and C1 controls, DEL, and the Unicode marks that reorder text (bidi overrides and isolates)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    r"""``text`` with every control character written as an escape (``\x1b``, ``\n``, ``\u202e``)."""
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return char.encode("unicode_escape").decode("ascii") if ord(char) < 0x100 else f"\\u{ord(char):04x}"


NAME_CHARS = 300  # the most of one name or message a line shows
LIST_ITEMS = 10  # the most items of a list a line shows


def clip(text: str, most: int = NAME_CHARS) -> str:
    """``text`` whole when short; else its start and its end around the length left out, so that a
    100 KB column name cannot make a 100 KB line and the advice at a message's end still shows."""
    if len(text) <= most:
        return text
    head = most * 2 // 3
    return f"{text[:head]}...({len(text) - most:,} more characters)...{text[head - most:]}"


def listing(items: Sequence[str], *, sep: str = "; ", most: int = LIST_ITEMS) -> str:
    """At most ``most`` items, each clipped, then how many more: one line of bounded length."""
    shown = sep.join(clip(item) for item in items[:most])
    return shown + (f"{sep}and {len(items) - most:,} more" if len(items) > most else "")


def label(urls: Sequence[str]) -> str:
    """How a message names the objects of one job or create call: the first, and how many more."""
    return urls[0] + (f" (and {len(urls) - 1} more)" if len(urls) > 1 else "")
