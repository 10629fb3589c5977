"""The validation primitives of the manifest reader: :class:`Reader` walks the parsed YAML, substituting
``${VAR}`` (:mod:`orchestrator.config.env`) and recording every problem with its place, and the value
checks the target and store specs share (endpoints, URLs that may carry a password, Milvus names).

Every error names the file, the path inside it and the problem, e.g.
``nightly.yaml: sources[1].url: expected s3://bucket/prefix or gs://bucket/prefix, got 'http://x'``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import difflib
import enum
import re
import reprlib
import typing
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from ..errors import ManifestError
from ..redact import shown_url
from . import env
from .manifest import Settings

E = TypeVar("E", bound=enum.Enum)

HEADER_SAFE = re.compile(r"[\x20-\x7e]+")  # printable ASCII: what an HTTP header value can carry
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # no manifest value holds these (a tab may)
_EXCERPT = 40  # the most of a value an error message shows
_YAML_WORDS = {False: ("off", "no", "false"), True: ("on", "yes", "true")}  # what YAML 1.1 reads as booleans
MILVUS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


class Reported(Exception):
    """A problem already recorded: stop checking this part of the manifest, go on with the next."""


class Reader:
    """Walks the parsed YAML, substituting ``${VAR}`` and recording every problem with its place.

    ``collect()`` blocks run independently: a problem in one is recorded and the next one is checked,
    so that one pass reports everything; ``done()`` raises them all at once."""

    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        self.file = file
        self.environ = environ
        self.problems: list[ManifestError] = []

    def fail(self, path: str, problem: str) -> ManifestError:
        return ManifestError(self.file, path, problem)

    def note(self, path: str, problem: str) -> None:
        error = self.fail(path, problem)
        if all(str(p) != str(error) for p in self.problems):
            self.problems.append(error)

    @contextlib.contextmanager
    def collect(self) -> Iterator[None]:
        try:
            yield
        except ManifestError as exc:
            self.problems.append(exc)
        except Reported:
            pass

    def done(self) -> None:
        if self.problems:
            raise ManifestError.combined(self.problems)

    def unset_variables(self, node: Any, path: str = "") -> None:
        """Note every ``${VAR}`` that is not set, anywhere in the document, each with its place."""
        if isinstance(node, str):
            for name in env.unset_names(node, self.environ):
                self.note(path, f"environment variable {name} is not set")
            for match in env.UNSUPPORTED_REF.finditer(node):
                self.note(path, env.unsupported_reference(match.group(1)))
        elif isinstance(node, dict):
            for key, value in node.items():
                self.unset_variables(value, join(path, str(key)))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                self.unset_variables(item, f"{path}[{i}]")

    def mapping(
        self, node: Any, path: str, *, required: tuple[str, ...] = (), optional: tuple[str, ...] = (),
        secret: bool = False,
    ) -> dict[str, Any]:
        """Note every unknown key (with the closest known one) and missing key; a missing one also stops
        this part. ``secret``: the keys themselves may be secrets (``AKIA...: ...``), never shown."""
        if not isinstance(node, dict):
            got = type_name(node) if secret else kind_of(node)
            raise self.fail(path, f"expected a mapping, got {got}")
        known = (*required, *optional)
        for key in node:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                where = path if secret else join(path, excerpt(str(key), quote=False))
                shown = " (not shown: it may be a secret)" if secret and not close else ""
                self.note(where, f"unknown key{shown}: {hint}(known keys: {', '.join(sorted(known))})")
        missing = [key for key in required if key not in node]
        for key in missing:
            self.note(join(path, key), "required key is missing")
        if missing:
            raise Reported
        return node

    def string(self, node: Any, path: str, *, secret: bool = False) -> str:
        if not isinstance(node, str) or not node:
            got = type_name(node) if secret else kind_of(node)  # never echo what may be a secret
            quote = ": YAML read the unquoted text as one; quote it" if not secret and isinstance(
                node, int | float | datetime.date) and not isinstance(node, bool) else ""
            raise self.fail(path, f"expected a non-empty string, got {got}{quote}")
        if secret:
            return self._secret(node, path)

        def unset(name: str) -> str:
            self.note(path, f"environment variable {name} is not set")
            raise Reported

        value = env.substitute(node, self.environ, unset=unset)
        if not value:
            raise self.fail(path, "is empty after substituting environment variables")
        bad = _CONTROL.search(value)
        if bad is not None:
            raise self.fail(path, f"holds a control character ({excerpt(bad.group(), quote=False)}), which "
                                  "no path, URL or name may contain")
        return value

    def _secret(self, node: str, path: str) -> str:
        ref = env.SECRET_REF.fullmatch(node)
        if ref is None:
            raise self.fail(path, "secrets are not accepted literally; write ${ENV_VAR} and set that "
                                  "variable (the whole value: no text around it)")
        name = ref.group(1)
        if name not in self.environ:
            self.note(path, f"environment variable {name} is not set")
            raise Reported
        value = self.environ[name]
        if not value:
            raise self.fail(path, f"environment variable {name} is set but empty")
        if not HEADER_SAFE.fullmatch(value):
            raise self.fail(path, f"environment variable {name} holds a line break, a control character "
                                  "or a non-ASCII character, which cannot go into an HTTP request: set it "
                                  "again without them (a trailing newline from a file, often)")
        return value

    def optional_string(self, node: Any, path: str) -> str | None:
        return None if node is None else self.string(node, path)

    def integer(self, node: Any, path: str, *, low: float, high: float) -> int:
        if isinstance(node, bool) or not isinstance(node, int) or not low <= node <= high:
            raise self.fail(path, f"expected a whole number from {low:g} to {high:g}, got {excerpt(node)}")
        return node

    def number(self, node: Any, path: str, *, low: float | None, above: float | None, high: float) -> float:
        """A finite number within the bounds (``above`` excludes its bound, ``low`` includes it)."""
        ok = not isinstance(node, bool) and isinstance(node, int | float) and node <= high and (
            low is None or node >= low) and (above is None or node > above)
        if not ok:
            if low is not None and path.endswith("_s"):
                bound = f"a number of seconds from {low:g} to {high:g}"
            elif low is not None:
                bound = f"a number from {low:g} to {high:g}"
            else:
                bound = f"a number above {above:g} and at most {high:g}"
            raise self.fail(path, f"expected {bound}, got {excerpt(node)}")
        return float(node)

    def boolean(self, node: Any, path: str) -> bool:
        if not isinstance(node, bool):
            raise self.fail(path, f"expected true or false, got {kind_of(node)}")
        return node

    def strings(self, node: Any, path: str) -> tuple[str, ...]:
        if not isinstance(node, list):
            raise self.fail(path, f"expected a list of strings, got {kind_of(node)}")
        return tuple(self.string(item, f"{path}[{i}]") for i, item in enumerate(node))

    def choice(self, node: Any, path: str, choices: Iterable[str]) -> str:
        options = tuple(choices)
        if isinstance(node, bool):  # YAML reads an unquoted off/no (on/yes) as a boolean
            word = next((w for w in _YAML_WORDS[node] if w in options), None)
            if word is not None:
                return word
        if not isinstance(node, str) or node not in options:
            close = difflib.get_close_matches(node, options, n=1) if isinstance(node, str) else []
            hint = f" (did you mean {close[0]}?)" if close else ""
            got = kind_of(node) if isinstance(node, bool) else excerpt(node)
            raise self.fail(path, f"expected one of {', '.join(options)}, got {got}{hint}")
        return node

    def enum(self, node: Any, path: str, kind: type[E]) -> E:
        return kind(self.choice(node, path, (str(member.value) for member in kind)))

    def setting(self, spec: dataclasses.Field[Any], node: Any, path: str) -> Any:
        """One value of ``settings``, read as its field in :class:`Settings` declares."""
        kind, meta = _SETTING_TYPES[spec.name], spec.metadata
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return self.enum(node, path, kind)
        if kind is int:
            return self.integer(node, path, low=meta["low"], high=meta["high"])
        if node is None and spec.default is None:
            return None
        if meta["pattern"] is not None:  # text (YAML reads 2.10 as the number 2.1: quote versions)
            text = node if isinstance(node, str) else str(node) if isinstance(node, float) else ""
            if not re.fullmatch(meta["pattern"], text):
                raise self.fail(path, f"expected a version such as '2.3' or '2.4.5', got {excerpt(node)}")
            return text
        return self.number(node, path, low=meta["low"], above=meta["above"], high=meta["high"])


_SETTING_TYPES = typing.get_type_hints(Settings)



def endpoint(r: Reader, t: dict[str, Any], key: str = "endpoint") -> str | None:
    endpoint = configured_url(r, t.get(key), f"target.{key}")
    if endpoint is None:
        return None
    if not http_url(endpoint):
        raise r.fail(f"target.{key}", f"expected http(s)://host[:port], got {excerpt(shown_url(endpoint))}")
    return endpoint.rstrip("/")


def http_url(url: str) -> bool:
    """Whether ``url`` starts ``http(s)://host``."""
    return re.match(r"^https?://[^/\s]+", url) is not None


def configured_url(r: Reader, node: Any, path: str) -> str | None:
    """A URL the manifest configures (an endpoint, a source): a password in its user-info only as
    ``${VAR}`` (``http://user:${PASSWORD}@host``), as for every other secret, never literally."""
    if isinstance(node, str):
        rest = node.partition("#")[0].partition("?")[0]
        start = rest.find("//") + 2 if "//" in rest else 0
        authority = rest[start:].split("/", 1)[0]
        userinfo = authority.rpartition("@")[0] if "@" in authority else None
        if userinfo is not None:
            user, colon, password = userinfo.partition(":")
            if not env.SECRET_REF.fullmatch(password if colon else user):
                raise r.fail(path, "the URL's user-info holds a literal secret: write the password as "
                                   "${ENV_VAR} (http://user:${PASSWORD}@host) and set that variable")
    return r.optional_string(node, path)


def db_name(r: Reader, t: dict[str, Any]) -> str | None:
    name = r.optional_string(t.get("db_name"), "target.db_name")
    if name is not None and not MILVUS_NAME.match(name):
        raise r.fail("target.db_name", f"{excerpt(name)} is not a valid Milvus database name")
    return name



def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def kind_of(node: Any) -> str:
    if node is None:
        return "nothing"
    if isinstance(node, bool):
        words = "/".join(_YAML_WORDS[node])
        return f"a boolean ({str(node).lower()}; YAML reads unquoted {words} as one: quote the word if you " \
               "meant it, as 'off')"
    if isinstance(node, dict):
        return "a mapping"
    if isinstance(node, list):
        return "a list"
    return f"{type(node).__name__} {excerpt(node)}"


def type_name(node: Any) -> str:
    """What a value is, without a word of what it says: for places that may hold a secret."""
    return "nothing" if node is None else "a mapping" if isinstance(node, dict) else \
        "a list" if isinstance(node, list) else type(node).__name__


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 2, 4, 4
_REPR.maxstring = _REPR.maxother = _EXCERPT


def excerpt(value: Any, *, quote: bool = True) -> str:
    """At most about :data:`_EXCERPT` characters of ``value`` for a message (``repr`` when ``quote``),
    however large it is."""
    if not quote and isinstance(value, str):
        text = value if len(value) <= _EXCERPT else value[:_EXCERPT] + "..."
        return text.encode("unicode_escape").decode("ascii")
    return _REPR.repr(value)
