"""Include/exclude rules on keys relative to a source's prefix, the same for every source.

``*`` and ``?`` stay within one path segment, ``**`` crosses segments (``**/`` also matches no
segment at all, so ``**/*.parquet`` keeps ``a.parquet`` and ``x/y/a.parquet``). An object is kept when
some include matches and no exclude does: excludes beat includes; the first matching rule is the one
reported. Globs are matched by RE2 (:mod:`orchestrator.config.patterns`): ``*a*a*a*a*a*a*.parquet`` against
a long key of a's would backtrack for hours in Python's ``re``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .patterns import KeyPattern


@functools.lru_cache(maxsize=256)
def compile_glob(glob: str) -> KeyPattern:
    out: list[str] = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return KeyPattern("".join(out), dot_all=True)


@dataclass(frozen=True, slots=True)
class Verdict:
    kept: bool
    rule: str  # e.g. "include '**/*.parquet'" or "exclude 'tmp/**'" or "no include matched"


_NO_INCLUDE = Verdict(False, "no include matched")


@functools.lru_cache(maxsize=64)
def _rules(include: tuple[str, ...], exclude: tuple[str, ...]) -> tuple[tuple[KeyPattern, Verdict], ...]:
    """Each rule compiled once with its verdict, excludes first: judging a key makes no objects."""
    return (*((compile_glob(g), Verdict(False, f"exclude {g!r}")) for g in exclude),
            *((compile_glob(g), Verdict(True, f"include {g!r}")) for g in include))


def judge(relative_key: str, include: Sequence[str], exclude: Sequence[str]) -> Verdict:
    for pattern, verdict in _rules(tuple(include), tuple(exclude)):
        if pattern.fullmatch(relative_key):
            return verdict
    return _NO_INCLUDE
