"""Include/exclude rules on keys relative to a source's prefix, the same for every source.

``*`` and ``?`` stay within one path segment, ``**`` crosses segments (``**/`` also matches no
segment at all, so ``**/*.parquet`` keeps ``a.parquet`` and ``x/y/a.parquet``). An object is kept when
some include matches and no exclude does: excludes beat includes; the first matching rule is the one
reported.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass


@functools.lru_cache(maxsize=256)
def compile_glob(glob: str) -> re.Pattern[str]:
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
    return re.compile("".join(out), re.DOTALL)


@dataclass(frozen=True, slots=True)
class Verdict:
    kept: bool
    rule: str  # e.g. "include '**/*.parquet'" or "exclude 'tmp/**'" or "no include matched"


def judge(relative_key: str, include: Sequence[str], exclude: Sequence[str]) -> Verdict:
    for glob in exclude:
        if compile_glob(glob).fullmatch(relative_key):
            return Verdict(False, f"exclude {glob!r}")
    for glob in include:
        if compile_glob(glob).fullmatch(relative_key):
            return Verdict(True, f"include {glob!r}")
    return Verdict(False, "no include matched")
