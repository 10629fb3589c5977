"""Reading and validating the YAML manifest: the only module that imports yaml.

Every error names the file, the path inside it and the problem, e.g.
``nightly.yaml: sources[1].url: expected s3://bucket/prefix or gs://bucket/prefix, got 'http://x'``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import difflib
import enum
import os
import re
import reprlib
import string
import typing
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..errors import MAX_RETRY_AFTER_S, ManifestError
from ..models import Credentials, Secret
from ..paths import not_a_file
from ..redact import shown_url
from . import extras, pgurl, urls
from .patterns import KeyPattern, PatternError

E = TypeVar("E", bound=enum.Enum)


class OnChange(enum.StrEnum):
    """What to do with an object imported before whose content changed since."""

    SKIP = "skip"
    REIMPORT = "reimport"


class PreflightMode(enum.StrEnum):
    """Whether each file is checked against its collection before it is submitted."""

    OFF = "off"
    WARN = "warn"
    ENFORCE = "enforce"


class FixedSizeList(enum.StrEnum):
    """Whether fixed_size_list vector columns pass the pre-flight check (Milvus 2.6+ reads them)."""

    REJECT = "reject"
    ALLOW = "allow"


class Metric(enum.StrEnum):
    """The metric of the vector indexes Milvus Lite builds."""

    COSINE = "COSINE"
    L2 = "L2"
    IP = "IP"


# ``${NAME}`` is the variable's value; ``$${NAME}`` is the literal text ``${NAME}``.
_ENV_REF = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")
# ``${`` that starts no ``${NAME}``: a shell form (``${NAME:-default}``, ``${NAME-x}``) not substituted here
UNSUPPORTED_REF = re.compile(r"(?<!\$)\$\{(?![A-Za-z_][A-Za-z0-9_]*\})([A-Za-z_][A-Za-z0-9_]*)?")
_SECRET_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # a secret is one variable, nothing around it
_HEADER_SAFE = re.compile(r"[\x20-\x7e]+")  # printable ASCII: what an HTTP header value can carry
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # no manifest value holds these (a tab may)
MAX_YAML_NODES = 100_000  # a manifest that expands (through aliases) past this is refused unexpanded
_EXCERPT = 40  # the most of a value an error message shows
_YAML_WORDS = {False: ("off", "no", "false"), True: ("on", "yes", "true")}  # what YAML 1.1 reads as booleans
# per-source keys that only some kinds of source take
_SCHEME_KEYS = {"endpoint_url": ("s3", "az"), "region": ("s3",), "path_style": ("s3",), "profile": ("s3",),
                "request_payer": ("s3",), "service_account_file": ("gs",), "account": ("az",),
                "connection_string": ("az",), "sas_token": ("az",)}
_URL = re.compile(r"^(?P<scheme>s3|gs|az)://(?P<bucket>[a-z0-9][a-z0-9._-]{1,221}[a-z0-9])(?:/(?P<prefix>.*))?$")
_AZURE_URL = re.compile(r"^https://(?P<account>[^./]+)\.blob\.core\.windows\.net/(?P<bucket>[^/]+)(?:/(?P<prefix>.*))?$")
_AZURE_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_AZURE_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_ZILLIZ_REGION = re.compile(r"(gcp|aws|az|ali|tc)-[a-z]+(-[a-z0-9]+)*[0-9]?")
MILVUS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetConfig:
    """The import API; which fields a type uses is in its parser (``TARGET_RULES[type].parse``)."""

    type: str
    base_url: str = ""  # the HTTP APIs
    cluster_id: str = ""  # Zilliz Cloud
    api_key: Secret | None = None  # the bearer credential: a Zilliz API key, a Milvus token or user:password
    db_name: str | None = None  # zilliz-v2, milvus
    uri: Path | None = None  # milvus-lite: the database
    create_collection: bool = False  # milvus-lite: make missing collections from the first file
    metric: Metric = Metric.COSINE  # milvus-lite: the metric of the indexes it builds
    cluster_endpoint: str | None = None  # Zilliz: the data plane, where collections are described
    two_phase: bool = False  # milvus: create uncommitted jobs, committed once the ledger holds their id


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetRules:
    """Everything the manifest and the run need to know of a target type, declared once per type in
    :data:`TARGET_RULES` (how it is built from its section is the wiring's ``TARGETS``)."""

    parse: Callable[[_Reader, Any, Path], TargetConfig]  # its ``target:`` section: keys and values
    credentials: bool  # the API reads the objects with keys sent in each call: credentials required
    sts_token: bool  # ... and accepts an STS session token with them
    partitions: bool  # sources may name a partition
    local_sources: bool  # sources may be local folders
    window: int  # unfinished jobs a manifest keeps on the server unless settings.max_jobs_in_flight says
    in_process: bool = False  # the import runs here: its job list neither lags nor forgets
    files_per_job: int = 1  # the most files one create call may name (settings.objects_per_job)
    job_gb: float | None = None  # the most bytes one job may import, in GB (settings.max_job_gb)
ZILLIZ_V2_URL = "https://api.cloud.zilliz.com"


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceConfig:
    index: int
    url: str
    scheme: str
    bucket: str
    prefix: str  # "" or ends with "/"
    collection: str  # a name or a template over ``pattern``'s named groups
    partition: str | None
    pattern: KeyPattern | None  # RE2: linear in the key, whoever named the object
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    endpoint_url: str | None
    region: str | None
    credentials: Credentials | None

    root: Path | None = None  # local folders only: the absolute folder
    object_url_style: str = "native"  # one of urls.STYLES
    path_style: bool = False  # S3: path-style addressing (MinIO, Ceph)
    profile: str | None = None  # S3: the AWS profile to list with
    request_payer: str | None = None  # S3: "requester" for requester-pays buckets
    service_account_file: Path | None = None  # GCS: a key file instead of Application Default Credentials
    account: str | None = None  # Azure: the storage account
    connection_string: Secret | None = None  # Azure: listing credentials instead of DefaultAzureCredential
    sas_token: Secret | None = None  # Azure: the same, as a SAS token for the account's endpoint

    @property
    def label(self) -> str:
        """How messages name this source: ``sources[2] s3://bucket/prefix/``."""
        if self.root is not None:
            return f"sources[{self.index}] {self.root.as_uri()}/"
        return f"sources[{self.index}] {self.scheme}://{self.bucket}/{self.prefix}"


def _meta(doc: str, *, low: float | None = None, high: float | None = None,
          above: float | None = None, pattern: str | None = None) -> dict[str, Any]:
    """What a setting means and its bounds: ``low``/``high`` inclusive, ``above`` exclusive from below;
    ``pattern`` for a text setting. With the field's name, type and default, this declares the setting
    once: the reader and the list of allowed keys are derived from the fields of :class:`Settings`."""
    return {"doc": doc, "low": low, "high": high, "above": above, "pattern": pattern}


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    concurrency: int = field(default=4, metadata=_meta("create calls in flight at once", low=1, high=256))
    max_attempts: int = field(default=5, metadata=_meta("tries of one create call on transient errors",
                                                        low=1, high=100))
    requests_per_second: float = field(default=10.0, metadata=_meta(
        "the pace of all calls to the import API", above=0, high=10_000))
    timeout_s: float = field(default=30.0, metadata=_meta(
        "seconds one HTTP call may take as a whole (connect, send, the whole reply)", above=0, high=3600))
    max_retry_after_s: float = field(default=MAX_RETRY_AFTER_S, metadata=_meta(
        "the longest a server's Retry-After makes a retry wait (a longer one waits this long)", low=0,
        high=86400))
    max_job_failures: int = field(default=3, metadata=_meta(
        "server-side failures before an object is left failed", low=1, high=100))
    on_change: OnChange = field(default=OnChange.SKIP, metadata=_meta(
        "an object imported before whose content changed: skip it, or import it again"))
    list_concurrency: int = field(default=8, metadata=_meta("sub-prefixes listed at once (1: one stream)",
                                                            low=1, high=64))
    min_age_s: float = field(default=60.0, metadata=_meta(
        "objects modified more recently are left for a later run", low=0, high=30 * 86400))
    preflight: PreflightMode = field(default=PreflightMode.ENFORCE, metadata=_meta(
        "check each file against its collection first"))
    preflight_sample_rows: int = field(default=1000, metadata=_meta(
        "rows of each file's first row group the pre-flight check reads (vector lengths, nulls, JSON); "
        "0: the footer only", low=0, high=1_000_000))
    fixed_size_list: FixedSizeList = field(default=FixedSizeList.REJECT, metadata=_meta(
        "Milvus 2.6+ reads fixed_size_list vectors: allow them"))
    max_file_gb: float | None = field(default=None, metadata=_meta(
        "overrides the target's per-file limit (e.g. 1 on the Free tier)", above=0, high=1000))
    stall_after_s: float = field(default=3600.0, metadata=_meta(
        "a running job whose progress stands still this long is stalled", low=0, high=30 * 86400))
    job_timeout_s: int = field(default=86_400, metadata=_meta(
        "seconds the server lets one import job take before it fails it (Milvus: options.timeout, sent on "
        "every create); long enough for a job of many large files that waits its turn", low=60,
        high=30 * 86400))
    job_list_lag_s: float = field(default=30.0, metadata=_meta(
        "how long a new job may take to appear in the server's job list", low=0, high=3600))
    max_jobs_in_flight: int | None = field(default=None, metadata=_meta(
        "unfinished jobs this manifest keeps on the server (default: the target's)", low=1, high=100_000))
    objects_per_job: int = field(default=1, metadata=_meta(
        "objects one import job takes, where the target allows several (zilliz-v2: 1000, milvus: 1024)",
        low=1, high=1024))
    max_job_gb: float | None = field(default=None, metadata=_meta(
        "the most one job of several objects imports, in GB (default: the target's limit)", above=0,
        high=16 * 1024))
    milvus_version: str | None = field(default=None, metadata=_meta(
        "the Milvus version the pre-flight rules judge for, when the server does not say ('2.3', '2.4.5')",
        pattern=r"v?\d+\.\d+(\.\d+)?"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    path: Path
    target: TargetConfig
    credentials: Credentials | None
    sources: tuple[SourceConfig, ...]
    settings: Settings
    ledger_path: Path
    schema_files: Mapping[str, Path] = field(default_factory=dict)  # collection -> saved describe output
    ledger_url: pgurl.PostgresLedger | None = None  # `ledger: postgresql://...` (then ledger_path is unused)

    def credentials_for(self, source: SourceConfig) -> Credentials | None:
        return source.credentials or self.credentials


class _Reported(Exception):
    """A problem already recorded: stop checking this part of the manifest, go on with the next."""


class _Reader:
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
        except _Reported:
            pass

    def done(self) -> None:
        if self.problems:
            raise ManifestError.combined(self.problems)

    def unset_variables(self, node: Any, path: str = "") -> None:
        """Note every ``${VAR}`` that is not set, anywhere in the document, each with its place."""
        if isinstance(node, str):
            for match in _ENV_REF.finditer(node):
                if not match.group(1) and match.group(2) not in self.environ:
                    self.note(path, f"environment variable {match.group(2)} is not set")
            for match in UNSUPPORTED_REF.finditer(node):
                self.note(path, unsupported_reference(match.group(1)))
        elif isinstance(node, dict):
            for key, value in node.items():
                self.unset_variables(value, _join(path, str(key)))
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
            got = _type_name(node) if secret else _kind(node)
            raise self.fail(path, f"expected a mapping, got {got}")
        known = (*required, *optional)
        for key in node:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                where = path if secret else _join(path, _excerpt(str(key), quote=False))
                shown = " (not shown: it may be a secret)" if secret and not close else ""
                self.note(where, f"unknown key{shown}: {hint}(known keys: {', '.join(sorted(known))})")
        missing = [key for key in required if key not in node]
        for key in missing:
            self.note(_join(path, key), "required key is missing")
        if missing:
            raise _Reported
        return node

    def string(self, node: Any, path: str, *, secret: bool = False) -> str:
        if not isinstance(node, str) or not node:
            got = _type_name(node) if secret else _kind(node)  # never echo what may be a secret
            quote = ": YAML read the unquoted text as one; quote it" if not secret and isinstance(
                node, int | float | datetime.date) and not isinstance(node, bool) else ""
            raise self.fail(path, f"expected a non-empty string, got {got}{quote}")
        if secret:
            return self._secret(node, path)

        def substitute(match: re.Match[str]) -> str:
            escaped, name = match.group(1), match.group(2)
            if escaped:
                return "${" + name + "}"
            if name not in self.environ:
                self.note(path, f"environment variable {name} is not set")
                raise _Reported
            return self.environ[name]

        value = _ENV_REF.sub(substitute, node)
        if not value:
            raise self.fail(path, "is empty after substituting environment variables")
        bad = _CONTROL.search(value)
        if bad is not None:
            raise self.fail(path, f"holds a control character ({_excerpt(bad.group(), quote=False)}), which "
                                  "no path, URL or name may contain")
        return value

    def _secret(self, node: str, path: str) -> str:
        ref = _SECRET_REF.fullmatch(node)
        if ref is None:
            raise self.fail(path, "secrets are not accepted literally; write ${ENV_VAR} and set that "
                                  "variable (the whole value: no text around it)")
        name = ref.group(1)
        if name not in self.environ:
            self.note(path, f"environment variable {name} is not set")
            raise _Reported
        value = self.environ[name]
        if not value:
            raise self.fail(path, f"environment variable {name} is set but empty")
        if not _HEADER_SAFE.fullmatch(value):
            raise self.fail(path, f"environment variable {name} holds a line break, a control character "
                                  "or a non-ASCII character, which cannot go into an HTTP request: set it "
                                  "again without them (a trailing newline from a file, often)")
        return value

    def optional_string(self, node: Any, path: str) -> str | None:
        return None if node is None else self.string(node, path)

    def integer(self, node: Any, path: str, *, low: float, high: float) -> int:
        if isinstance(node, bool) or not isinstance(node, int) or not low <= node <= high:
            raise self.fail(path, f"expected a whole number from {low:g} to {high:g}, got {_excerpt(node)}")
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
            raise self.fail(path, f"expected {bound}, got {_excerpt(node)}")
        return float(node)

    def boolean(self, node: Any, path: str) -> bool:
        if not isinstance(node, bool):
            raise self.fail(path, f"expected true or false, got {_kind(node)}")
        return node

    def strings(self, node: Any, path: str) -> tuple[str, ...]:
        if not isinstance(node, list):
            raise self.fail(path, f"expected a list of strings, got {_kind(node)}")
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
            got = _kind(node) if isinstance(node, bool) else _excerpt(node)
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
                raise self.fail(path, f"expected a version such as '2.3' or '2.4.5', got {_excerpt(node)}")
            return text
        return self.number(node, path, low=meta["low"], above=meta["above"], high=meta["high"])


_SETTING_TYPES = typing.get_type_hints(Settings)


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


def load(path: str | Path, environ: Mapping[str, str] | None = None) -> Manifest:
    """Read, substitute and validate a manifest; raise :class:`ManifestError` naming every problem."""
    file = Path(path)
    name = str(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ManifestError(name, "", f"cannot read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(name, f"byte {exc.start}", "not UTF-8 text: save the manifest as UTF-8") from exc
    try:
        doc = yaml.load(text, Loader=_Loader)  # a SafeLoader
    except _Duplicate as exc:
        raise ManifestError(name, f"line {exc.second}", f"key {_excerpt(exc.key)} is also on line "
                            f"{exc.first} of the same mapping; YAML would keep only the last one, silently: "
                            "keep one (merge the two, or fix the indentation)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ManifestError(name, where, f"not valid YAML: {problem[:200]}{_flow_hint(exc, text)}") from exc
    except RecursionError as exc:
        raise ManifestError(name, "", "not a manifest: nested too deeply") from exc
    return parse(doc, file=name, base_dir=file.resolve().parent, stem=file.stem,
                 environ=os.environ if environ is None else environ)


def _note_missing_extras(r: _Reader, target: TargetConfig | None, sources: list[SourceConfig],
                         ledger_url: pgurl.PostgresLedger | None) -> None:
    """What the manifest uses from an optional extra that is not installed, each with the pip line."""
    needs: list[tuple[str, str, str, tuple[str, ...] | None]] = []
    if target is not None and target.type in ("milvus-lite", "milvus-grpc"):
        lite = target.type == "milvus-lite"  # milvus-grpc needs pymilvus alone
        needs.append(("target.type", "milvus", f"the {target.type} target", None if lite else ("pymilvus",)))
    needs += [(f"sources[{s.index}].url", "azure", "an Azure source", None)
              for s in sources if s.scheme == "az"]
    if ledger_url is not None:
        needs.append(("ledger", "postgres", "a PostgreSQL ledger", None))
    for path, extra, what, only in needs:
        why = extras.missing(extra, needed_by=what, modules=only)
        if why is not None:
            r.note(path, why)


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


_TOP_REQUIRED = ("version", "target", "sources")


def parse(
    doc: Any, *, file: str, base_dir: Path, stem: str, environ: Mapping[str, str]
) -> Manifest:
    """Validate a parsed manifest; every problem found is raised at once, one line each."""
    r = _Reader(file, environ)
    if isinstance(doc, dict):
        r.unset_variables(doc)
    top = r.mapping(doc, "", optional=(*_TOP_REQUIRED, "credentials", "settings", "ledger", "schema_files"))
    for key in _TOP_REQUIRED:
        if key not in top:
            r.note(key, "required key is missing")
    if "version" in top and top["version"] != 1:
        r.note("version", f"this orchestrator reads manifest version 1, got {_excerpt(top['version'])}")
    target: TargetConfig | None = None
    with r.collect():
        if "target" in top:
            target = _target(r, top["target"], base_dir)
    rules = TARGET_RULES[target.type] if target is not None else None
    credentials: Credentials | None = None
    with r.collect():
        credentials = _credentials(r, top.get("credentials"), "credentials", rules, target)
    sources: list[SourceConfig] = []
    sources_node = top.get("sources")
    if "sources" in top and (not isinstance(sources_node, list) or not sources_node):
        r.note("sources", "expected a non-empty list of sources")
    elif isinstance(sources_node, list):
        for i, node in enumerate(sources_node):
            with r.collect():
                sources.append(_source(r, node, i, rules, target, base_dir))
    for source in sources:
        if rules is not None and rules.credentials and source.credentials is None and credentials is None \
                and "credentials" not in top:
            r.note(f"sources[{source.index}].credentials",
                   "no credentials for the import service: set top-level credentials or this one")
    settings = _settings(r, top.get("settings"))
    if rules is not None and target is not None and settings.objects_per_job > rules.files_per_job:
        r.note("settings.objects_per_job", f"{settings.objects_per_job}: a {target.type} import job takes "
                                           f"at most {rules.files_per_job} file(s)")
    schema_files: dict[str, Path] = {}
    with r.collect():
        schema_files = _schema_files(r, top.get("schema_files"), base_dir)
    ledger, ledger_url = Path(f"{stem}.ledger.sqlite"), None
    with r.collect():
        if isinstance(top.get("ledger"), str) and pgurl.is_postgres(top["ledger"]):
            ledger_url = _postgres_ledger(r, top["ledger"], stem)
        elif top.get("ledger") is not None:
            ledger = Path(r.string(top["ledger"], "ledger"))
    ledger = ledger if ledger.is_absolute() else base_dir / ledger
    problem = ledger_file_problem(ledger) if ledger_url is None else None
    if problem is not None:
        r.note("ledger", problem)
    _note_missing_extras(r, target, sources, ledger_url)
    r.done()
    assert target is not None
    return Manifest(
        path=base_dir / Path(file).name,
        target=target,
        credentials=credentials,
        sources=tuple(sources),
        settings=settings,
        ledger_path=ledger,
        schema_files=schema_files,
        ledger_url=ledger_url,
    )


def ledger_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot hold a SQLite ledger (a folder, a FIFO, a device, a symlink loop), or None."""
    problem = not_a_file(path)
    return None if problem is None else f"{path}: {problem}, not a ledger file: name a file (the first run " \
        "makes it)"


def _postgres_ledger(r: _Reader, node: str, stem: str) -> pgurl.PostgresLedger:
    """``ledger: postgresql://...``: each part substituted on its own; a password only as ${VAR}."""
    if UNSUPPORTED_REF.search(node):
        raise _Reported  # noted with its place by unset_variables; the URL cannot be parsed around it
    try:
        return pgurl.parse(node, substitute=lambda part: r.string(part, "ledger") if part else part,
                           default_schema=pgurl.default_schema(stem))
    except ValueError as exc:
        raise r.fail("ledger", str(exc)) from None


def _schema_files(r: _Reader, node: Any, base_dir: Path) -> dict[str, Path]:
    """``collection: path`` pairs: saved describe outputs, for when the data plane is out of reach."""
    if node is None:
        return {}
    if not isinstance(node, dict):
        raise r.fail("schema_files", f"expected a mapping of collection to JSON file, got {_kind(node)}")
    files = {}
    for name, value in node.items():
        if not isinstance(name, str) or not MILVUS_NAME.match(name):
            raise r.fail(f"schema_files.{_excerpt(name, quote=False)}", "expected a collection name")
        path = base_dir / r.string(value, f"schema_files.{name}")
        if not path.is_file():
            raise r.fail(f"schema_files.{name}", f"no such file: {path}")
        files[name] = path
    return files


def _target(r: _Reader, node: Any, base_dir: Path) -> TargetConfig:
    if not isinstance(node, dict):
        raise r.fail("target", f"expected a mapping, got {_kind(node)}")
    if "type" not in node:
        raise r.fail("target.type", f"required key is missing (one of {', '.join(TARGET_TYPES)})")
    kind = r.choice(node["type"], "target.type", TARGET_TYPES)
    return TARGET_RULES[kind].parse(r, node, base_dir)


def _zilliz_v1(r: _Reader, node: Any, _base_dir: Path) -> TargetConfig:
    t = r.mapping(node, "target", required=("type", "cluster_id", "api_key"),
                  optional=("region", "endpoint", "cluster_endpoint"))
    endpoint = _endpoint(r, t)
    region = r.optional_string(t.get("region"), "target.region")
    if endpoint is not None:
        base_url = endpoint
    elif region is not None:
        if not _ZILLIZ_REGION.fullmatch(region):
            raise r.fail("target.region", "expected a Zilliz Cloud region: its cloud, then the cloud's "
                                          "region (gcp-us-west1, aws-us-east-2, az-eastus, "
                                          f"ali-cn-hangzhou), got {_excerpt(region)}")
        base_url = f"https://controller.api.{region}.zillizcloud.com"
    else:
        raise r.fail("target", "set region (e.g. gcp-us-west1) or endpoint")
    return TargetConfig(
        type="zilliz-v1",
        base_url=base_url,
        cluster_id=r.string(t["cluster_id"], "target.cluster_id"),
        api_key=Secret(r.string(t["api_key"], "target.api_key", secret=True)),
        cluster_endpoint=_endpoint(r, t, "cluster_endpoint"),
    )


def _zilliz_v2(r: _Reader, node: Any, _base_dir: Path) -> TargetConfig:
    t = r.mapping(node, "target", required=("type", "cluster_id", "api_key"),
                  optional=("endpoint", "db_name", "cluster_endpoint"))
    return TargetConfig(
        type="zilliz-v2",
        base_url=_endpoint(r, t) or ZILLIZ_V2_URL,
        cluster_id=r.string(t["cluster_id"], "target.cluster_id"),
        api_key=Secret(r.string(t["api_key"], "target.api_key", secret=True)),
        db_name=_db_name(r, t),
        cluster_endpoint=_endpoint(r, t, "cluster_endpoint"),
    )


def _milvus(r: _Reader, node: Any, _base_dir: Path) -> TargetConfig:
    t = r.mapping(node, "target", required=("type", "endpoint"),
                  optional=("token", "user", "password", "db_name", "two_phase"))
    if "token" in t and ("user" in t or "password" in t):
        raise r.fail("target.token", "set either token or user and password, not both")
    if ("user" in t) != ("password" in t):
        raise r.fail("target.user" if "password" in t else "target.password",
                     "user and password go together")
    api_key = None
    if "token" in t:
        api_key = Secret(r.string(t["token"], "target.token", secret=True))
    elif "user" in t:
        user = r.string(t["user"], "target.user")
        if not _HEADER_SAFE.fullmatch(user) or ":" in user:
            raise r.fail("target.user", "expected a user name of printable ASCII without ':' (it goes into "
                                        "an HTTP header)")
        api_key = Secret(f"{user}:{r.string(t['password'], 'target.password', secret=True)}")
    endpoint = _endpoint(r, t)
    if endpoint is None:
        raise r.fail("target.endpoint", "expected http(s)://host[:port], e.g. http://localhost:19530")
    return TargetConfig(type="milvus", base_url=endpoint, api_key=api_key, db_name=_db_name(r, t),
                        two_phase=r.boolean(t.get("two_phase", True), "target.two_phase"))


def _milvus_lite(r: _Reader, node: Any, base_dir: Path) -> TargetConfig:
    t = r.mapping(node, "target", required=("type", "uri"), optional=("create_collection", "metric"))
    uri = r.string(t["uri"], "target.uri")
    if "://" in uri or not uri.endswith(".db"):
        raise r.fail("target.uri", f"expected a database path ending in .db (e.g. ./demo.db), got "
                                   f"{_excerpt(uri)}")
    return TargetConfig(
        type="milvus-lite",
        uri=(base_dir / uri).resolve(),
        create_collection=r.boolean(t.get("create_collection", False), "target.create_collection"),
        metric=r.enum(t.get("metric", Metric.COSINE.value), "target.metric", Metric),
    )


# Zilliz Cloud holds fewer than 10,000 unfinished jobs per collection; Milvus 1,024 in all, shared with
# everyone (reference/import-api.md). A job may name up to 1,000 files, 1 TB in all, on Zilliz Cloud v2,
# and up to 1,024 files of up to 16 GB each on Milvus (REST v2); v1, Milvus Lite and the 2.3 gRPC
# bulk insert take one file a call.
TARGET_RULES = {
    "zilliz-v1": TargetRules(parse=_zilliz_v1, credentials=True, sts_token=False, partitions=False,
                             local_sources=True, window=1000),
    "zilliz-v2": TargetRules(parse=_zilliz_v2, credentials=True, sts_token=True, partitions=True,
                             local_sources=True, window=1000, files_per_job=1000, job_gb=1024),
    "milvus": TargetRules(parse=_milvus, credentials=False, sts_token=False, partitions=True,
                          local_sources=False, window=256, files_per_job=1024, job_gb=1024 * 16),
    "milvus-lite": TargetRules(parse=_milvus_lite, credentials=False, sts_token=False, partitions=True,
                               local_sources=True, window=1_000_000, in_process=True),
    "milvus-grpc": TargetRules(
        parse=lambda r, node, base_dir: replace(_milvus(r, node, base_dir), type="milvus-grpc"),
        credentials=False, sts_token=False, partitions=True, local_sources=True, window=256),
}
TARGET_TYPES = tuple(TARGET_RULES)


def _endpoint(r: _Reader, t: dict[str, Any], key: str = "endpoint") -> str | None:
    endpoint = _configured_url(r, t.get(key), f"target.{key}")
    if endpoint is None:
        return None
    if not re.match(r"^https?://[^/\s]+", endpoint):
        raise r.fail(f"target.{key}", f"expected http(s)://host[:port], got {_excerpt(shown_url(endpoint))}")
    return endpoint.rstrip("/")


def _configured_url(r: _Reader, node: Any, path: str) -> str | None:
    """A URL the manifest configures (an endpoint, a source): a password in its user-info only as
    ``${VAR}`` (``http://user:${PASSWORD}@host``), as for every other secret, never literally."""
    if isinstance(node, str):
        rest = node.partition("#")[0].partition("?")[0]
        start = rest.find("//") + 2 if "//" in rest else 0
        authority = rest[start:].split("/", 1)[0]
        userinfo = authority.rpartition("@")[0] if "@" in authority else None
        if userinfo is not None:
            user, colon, password = userinfo.partition(":")
            if not _SECRET_REF.fullmatch(password if colon else user):
                raise r.fail(path, "the URL's user-info holds a literal secret: write the password as "
                                   "${ENV_VAR} (http://user:${PASSWORD}@host) and set that variable")
    return r.optional_string(node, path)


def _db_name(r: _Reader, t: dict[str, Any]) -> str | None:
    name = r.optional_string(t.get("db_name"), "target.db_name")
    if name is not None and not MILVUS_NAME.match(name):
        raise r.fail("target.db_name", f"{_excerpt(name)} is not a valid Milvus database name")
    return name


def _credentials(r: _Reader, node: Any, path: str, rules: TargetRules | None,
                 target: TargetConfig | None) -> Credentials | None:
    """``rules`` None: the target is wrong; check the block for itself."""
    if node is None:
        return None
    if rules is not None and target is not None and not rules.credentials:
        raise r.fail(path, f"the {target.type} target reads the objects itself (no keys are sent with an "
                           "import call): remove this block")
    c = r.mapping(node, path, required=("access_key", "secret_key"), optional=("token",), secret=True)
    if "token" in c and rules is not None and target is not None and not rules.sts_token:
        raise r.fail(f"{path}.token", f"the {target.type} import API takes no session token "
                                      "(zilliz-v2 does)")
    keys: dict[str, Secret] = {}
    for key in ("access_key", "secret_key", "token"):
        if key in c:
            with r.collect():
                keys[key] = Secret(r.string(c[key], f"{path}.{key}", secret=True))
    if len(keys) < len([k for k in ("access_key", "secret_key", "token") if k in c]):
        raise _Reported
    return Credentials(access_key=keys["access_key"], secret_key=keys["secret_key"], token=keys.get("token"))


def _source(r: _Reader, node: Any, index: int, rules: TargetRules | None, target: TargetConfig | None,
            base_dir: Path) -> SourceConfig:
    p = f"sources[{index}]"
    s = r.mapping(node, p, required=("url", "collection"), optional=(
        "partition", "pattern", "include", "exclude", "credentials", "object_url_style", *_SCHEME_KEYS))
    url = _configured_url(r, s["url"], f"{p}.url") or r.string(s["url"], f"{p}.url")
    if "://" in url and ("?" in url or "#" in url):  # a SAS token pasted with the URL: never shown
        cut = min(i for i in (url.find("?"), url.find("#")) if i >= 0)
        raise r.fail(f"{p}.url", f"{_excerpt(url[:cut])} is followed by a query or fragment (not shown: it "
                                 "may hold a token); a store's URL names a bucket and prefix only: give a "
                                 "SAS token as sas_token: ${VAR}, other keys under credentials")
    meant = _mistyped_url(url)
    if meant is not None:
        raise r.fail(f"{p}.url", f"{_excerpt(url)} is neither a store's URL nor a folder: did you mean "
                                 f"{_excerpt(meant)}? (a folder of that name: write "
                                 f"./{_excerpt(url, quote=False)})")
    root = _local_root(url, base_dir)
    m = _URL.match(url) or _AZURE_URL.match(url)
    if root is not None and rules is not None and target is not None and not rules.local_sources:
        raise r.fail(f"{p}.url", f"the {target.type} target imports from the bucket the server reads "
                                 "(e.g. its MinIO): use s3://bucket/prefix, not a local folder")
    if root is not None:
        scheme, bucket, prefix = "file", "", ""
    elif m is None:
        raise r.fail(f"{p}.url", "expected s3://bucket/prefix, gs://bucket/prefix, az://container/prefix, "
                                 "https://<account>.blob.core.windows.net/<container>/<prefix>, "
                                 f"file:///folder or a folder relative to the manifest, got "
                                 f"{_excerpt(shown_url(url))}")
    else:
        scheme, bucket, prefix = m.groupdict().get("scheme") or "az", m["bucket"], m["prefix"] or ""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
    pattern = None
    if s.get("pattern") is not None:
        raw = r.string(s["pattern"], f"{p}.pattern")
        try:
            pattern = KeyPattern(raw)
        except PatternError as exc:
            raise r.fail(f"{p}.pattern", "not a valid regular expression for RE2 (no lookarounds or "
                                         "backreferences: see Patterns in docs/reference/sources.md): "
                                         f"{exc}") from exc
    groups = set(pattern.groupindex) if pattern else set()
    collection = r.string(s["collection"], f"{p}.collection")
    _check_template(r, collection, f"{p}.collection", groups)
    partition = r.optional_string(s.get("partition"), f"{p}.partition")
    if partition is not None:
        if rules is not None and target is not None and not rules.partitions:
            raise r.fail(f"{p}.partition", f"the {target.type} import API cannot target a partition")
        _check_template(r, partition, f"{p}.partition", groups)
    include = r.strings(s["include"], f"{p}.include") if "include" in s else ("**/*.parquet",)
    exclude = r.strings(s["exclude"], f"{p}.exclude") if "exclude" in s else ()
    for key in _SCHEME_KEYS:
        if key in s and scheme not in _SCHEME_KEYS[key]:
            kinds = " and ".join(f"{k}://" for k in _SCHEME_KEYS[key])
            raise r.fail(f"{p}.{key}", f"only for {kinds} sources, not {scheme}://")
    endpoint_url = _configured_url(r, s.get("endpoint_url"), f"{p}.endpoint_url")
    if endpoint_url is not None and not re.match(r"^https?://[^/\s]+", endpoint_url):
        raise r.fail(f"{p}.endpoint_url", f"expected http(s)://host[:port], got "
                                          f"{_excerpt(shown_url(endpoint_url))}")
    region = r.optional_string(s.get("region"), f"{p}.region")
    style = r.choice(s.get("object_url_style", "native"), f"{p}.object_url_style", urls.STYLES)
    why = urls.problem(scheme=scheme, style=style, bucket=bucket, region=region, endpoint_url=endpoint_url)
    if why is not None:
        raise r.fail(f"{p}.object_url_style", why)
    azure = _azure(r, s, p, m, bucket) if scheme == "az" and m is not None else {}
    payer = s.get("request_payer")
    key_file = r.optional_string(s.get("service_account_file"), f"{p}.service_account_file")
    return SourceConfig(
        index=index,
        url=url,
        scheme=scheme,
        bucket=bucket,
        prefix=prefix,
        collection=collection,
        partition=partition,
        pattern=pattern,
        include=include,
        exclude=exclude,
        endpoint_url=endpoint_url,
        region=region,
        credentials=_credentials(r, s.get("credentials"), f"{p}.credentials", rules, target),
        root=root,
        object_url_style=style,
        path_style=r.boolean(s.get("path_style", False), f"{p}.path_style"),
        profile=r.optional_string(s.get("profile"), f"{p}.profile"),
        request_payer=None if payer is None else r.choice(payer, f"{p}.request_payer", ("requester",)),
        service_account_file=None if key_file is None else base_dir / Path(key_file).expanduser(),
        **azure,
    )


def _azure(r: _Reader, s: dict[str, Any], p: str, m: re.Match[str], container: str) -> dict[str, Any]:
    """The account and listing secrets of an Azure source (``az://`` or its https URL)."""
    if not _AZURE_CONTAINER.match(container):
        raise r.fail(f"{p}.url", f"{_excerpt(container)} is not an Azure container name (3 to 63 lowercase "
                                 "letters, digits and single hyphens)")
    in_url = m.groupdict().get("account")
    if in_url is not None:
        for key, why in (("account", "the https URL names the account"),
                         ("endpoint_url", "the https URL names the endpoint (for other clouds or an emulator "
                                          "write az://container/prefix with account and endpoint_url)")):
            if key in s:
                raise r.fail(f"{p}.{key}", f"{why}: remove this key")
    account = in_url or r.optional_string(s.get("account"), f"{p}.account")
    if account is None:
        raise r.fail(f"{p}.account", "az:// sources name their storage account: account: <name> (or write "
                                     "the URL as https://<account>.blob.core.windows.net/<container>/<prefix>)")
    if not _AZURE_ACCOUNT.match(account):
        raise r.fail(f"{p}.account" if in_url is None else f"{p}.url",
                     f"{_excerpt(account)} is not a storage account name (3 to 24 lowercase letters and "
                     "digits)")
    if "connection_string" in s and ("sas_token" in s or "endpoint_url" in s):
        other = "sas_token" if "sas_token" in s else "endpoint_url"
        raise r.fail(f"{p}.{other}", "a connection string names the endpoint and the key: set one of "
                                     f"connection_string and {other}, not both")
    return {
        "account": account,
        "connection_string": None if "connection_string" not in s else Secret(
            r.string(s["connection_string"], f"{p}.connection_string", secret=True)),
        "sas_token": None if "sas_token" not in s else Secret(
            r.string(s["sas_token"], f"{p}.sas_token", secret=True)),
    }


# Each store's scheme (the registry's: s3, gs, az, file) and what people type for it
_SCHEME_SPELLINGS = {"s3": "s3", "s3a": "s3", "s3n": "s3", "gs": "gs", "gcs": "gs", "az": "az", "azure": "az",
                     "file": "file"}


def _mistyped_url(url: str) -> str | None:
    """The URL meant when ``url`` is a store's URL with its scheme mistyped (``s3:/lake/x``,
    ``s3:lake/x``, ``S3://lake/x``, ``s3a://lake/x``, ``gs:///bucket/x``), else None. Without this such a
    URL is a relative folder (``s3:`` and all), which fails only when a run lists it."""
    scheme, colon, rest = url.partition(":")
    meant = _SCHEME_SPELLINGS.get(scheme.lower()) if colon else None
    if meant is None or url.startswith("file://"):
        return None
    guess = f"file:///{rest.lstrip('/')}" if meant == "file" else f"{meant}://{rest.lstrip('/')}"
    return None if guess == url else guess


def _local_root(url: str, base_dir: Path) -> Path | None:
    """The folder a ``file://`` URL or a plain path names (relative to the manifest), else None."""
    if url.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).resolve()
    if "://" in url:
        return None
    return (base_dir / url).resolve()


def _check_template(r: _Reader, template: str, path: str, groups: set[str]) -> None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise r.fail(path, f"not a valid template: {exc}") from exc
    for name in fields:
        if name not in groups:
            have = ", ".join(sorted(groups)) or "none: set pattern with (?P<name>...) groups"
            raise r.fail(path, f"template field {{{name}}} is not a named group of pattern ({have})")
    if not fields and not MILVUS_NAME.match(template):
        raise r.fail(path, f"{_excerpt(template)} is not a valid Milvus name (letters, digits, _; not "
                           "starting with a digit)")


def _settings(r: _Reader, node: Any) -> Settings:
    if node is None:
        return Settings()
    s = {}
    with r.collect():
        s = r.mapping(node, "settings", optional=tuple(f.name for f in dataclasses.fields(Settings)))
    values = {}
    for spec in dataclasses.fields(Settings):
        if spec.name in s:
            with r.collect():
                values[spec.name] = r.setting(spec, s[spec.name], f"settings.{spec.name}")
    return Settings(**values)


def unsupported_reference(name: str | None) -> str:
    """The problem with a ``${`` that is not ``${NAME}`` (what follows the name is never shown: a default
    may be a secret)."""
    return (f"${{{name or ''}...}}: only ${{NAME}} is substituted, with no default or other shell form "
            "(${NAME:-default}, ${NAME-x}): set the variable and write ${NAME}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(node: Any) -> str:
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
    return f"{type(node).__name__} {_excerpt(node)}"


def _type_name(node: Any) -> str:
    """What a value is, without a word of what it says: for places that may hold a secret."""
    return "nothing" if node is None else "a mapping" if isinstance(node, dict) else \
        "a list" if isinstance(node, list) else type(node).__name__


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 2, 4, 4
_REPR.maxstring = _REPR.maxother = _EXCERPT


def _excerpt(value: Any, *, quote: bool = True) -> str:
    """At most about :data:`_EXCERPT` characters of ``value`` for a message (``repr`` when ``quote``),
    however large it is."""
    if not quote and isinstance(value, str):
        text = value if len(value) <= _EXCERPT else value[:_EXCERPT] + "..."
        return text.encode("unicode_escape").decode("ascii")
    return _REPR.repr(value)
