"""The one ``${VAR}`` substitution: every manifest value, the parts of a ``postgresql://`` ledger URL
(in a manifest or given to ``ledger copy``) are read here. Pure.

``${NAME}`` is the variable's value and ``$${NAME}`` the literal text ``${NAME}``; a secret is one
reference and nothing around it. Shell forms (``${NAME:-default}``, ``${NAME-x}``) are refused, never
half-substituted: what follows the name is never shown (a default may be a secret).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping

REF = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")
# ``${`` that starts no ``${NAME}``: a shell form (``${NAME:-default}``, ``${NAME-x}``) not substituted here
UNSUPPORTED_REF = re.compile(r"(?<!\$)\$\{(?![A-Za-z_][A-Za-z0-9_]*\})([A-Za-z_][A-Za-z0-9_]*)?")
SECRET_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # a secret is one variable, nothing around it


def substitute(text: str, environ: Mapping[str, str], *, unset: Callable[[str], str]) -> str:
    """``text`` with each ``${NAME}`` replaced by its value and each ``$${NAME}`` by ``${NAME}``;
    ``unset(name)`` is asked for a variable that is not set (it raises, or gives what to write)."""

    def one(match: re.Match[str]) -> str:
        escaped, name = match.group(1), match.group(2)
        if escaped:
            return "${" + name + "}"
        return environ[name] if name in environ else unset(name)

    return REF.sub(one, text)


def unset_names(text: str, environ: Mapping[str, str]) -> Iterator[str]:
    """The variables ``text`` refers to that are not set, in order."""
    for match in REF.finditer(text):
        if not match.group(1) and match.group(2) not in environ:
            yield match.group(2)


def unsupported_reference(name: str | None) -> str:
    """The problem with a ``${`` that is not ``${NAME}`` (what follows the name is never shown: a default
    may be a secret)."""
    return (f"${{{name or ''}...}}: only ${{NAME}} is substituted, with no default or other shell form "
            "(${NAME:-default}, ${NAME-x}): set the variable and write ${NAME}")
