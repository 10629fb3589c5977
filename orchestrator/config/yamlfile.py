"""The manifest file as YAML: the only module that imports yaml. A safe loader that refuses what YAML
would take silently (a key written twice) or expand without bound (an alias bomb), and messages that say
where the YAML broke and, for the commonest mistake, what to write instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import ManifestError
from .reader import excerpt

MAX_YAML_NODES = 100_000  # a manifest that expands (through aliases) past this is refused unexpanded


class _Loader(yaml.SafeLoader):
    """A safe loader that refuses documents whose aliases expand past :data:`MAX_YAML_NODES` nodes (an
    "alias bomb"), before anything is built from them, and mappings that hold a key twice."""

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None and _expanded_size(node, {}, set()) > MAX_YAML_NODES:
            raise _TooBig(f"aliases expand it past {MAX_YAML_NODES} values: refusing to expand them")
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A mapping, refusing a key written twice in it (YAML keeps the last silently: a second
        ``sources:`` list would drop the first). Keys brought in by a merge (``<<: *base``) may be
        overridden, as YAML means them to be."""
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    first = seen.setdefault((key.tag, key.value), key.start_mark.line + 1)
                    if first != key.start_mark.line + 1:
                        raise _Duplicate(key.value, first, key.start_mark.line + 1)
        return super().construct_mapping(node, deep)


class _Duplicate(yaml.YAMLError):
    def __init__(self, key: str, first: int, second: int) -> None:
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


class _TooBig(yaml.YAMLError):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many nodes ``node`` becomes once every alias is expanded (counted once per shared node,
    so a bomb costs one visit per distinct node); a recursive alias counts as too many."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        return MAX_YAML_NODES + 1
    open_nodes.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _expanded_size(child, sizes, open_nodes)
            if total > MAX_YAML_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, sizes, open_nodes) + _expanded_size(v, sizes, open_nodes)
            if total > MAX_YAML_NODES:
                break
    open_nodes.discard(key)
    sizes[key] = total
    return total


def read(path: str | Path) -> Any:
    """The YAML document at ``path``, safely loaded; raises :class:`ManifestError` when it cannot be read
    or is not YAML (a key written twice, aliases that expand too far, nesting too deep)."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ManifestError(name, "", f"cannot read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(name, f"byte {exc.start}", "not UTF-8 text: save the manifest as UTF-8") from exc
    try:
        doc = yaml.load(text, Loader=_Loader)  # a SafeLoader
    except _Duplicate as exc:
        raise ManifestError(name, f"line {exc.second}", f"key {excerpt(exc.key)} is also on line "
                            f"{exc.first} of the same mapping; YAML would keep only the last one, silently: "
                            "keep one (merge the two, or fix the indentation)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ManifestError(name, where, f"not valid YAML: {problem[:200]}{_flow_hint(exc, text)}") from exc
    except RecursionError as exc:
        raise ManifestError(name, "", "not a manifest: nested too deeply") from exc
    return doc


def _flow_hint(exc: yaml.YAMLError, text: str) -> str:
    """The commonest mistake of one-line YAML: ``{api_key: ${KEY}}`` reads ``{KEY}`` as another mapping.
    When the parser failed inside ``{...}`` or ``[...]`` on a line that holds ``${``, say what to do."""
    context = getattr(exc, "context", None) or ""
    mark = getattr(exc, "problem_mark", None)
    kind = "{...}" if "flow mapping" in context else "[...]" if "flow sequence" in context else None
    lines = text.splitlines()
    if kind is None or mark is None or mark.line >= len(lines) or "${" not in lines[mark.line]:
        return ""
    return f" (quote a value that holds ${{...}} inside {kind}: key: '${{VAR}}')"
