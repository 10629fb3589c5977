"""Reading and validating the YAML manifest: the only module that imports yaml.

Every error names the file, the path inside it and the problem, e.g.
``nightly.yaml: sources[1].url: expected s3://bucket/prefix or gs://bucket/prefix, got 'http://x'``.
"""

from __future__ import annotations

import os
import re
import string
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from . import urls
from .errors import ManifestError
from .models import Credentials, Secret

ON_CHANGE = ("skip", "reimport")
PREFLIGHT = ("off", "warn", "enforce")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# per-source keys that only some kinds of source take
_SCHEME_KEYS = {"endpoint_url": ("s3",), "region": ("s3",), "path_style": ("s3",), "profile": ("s3",),
                "request_payer": ("s3",), "service_account_file": ("gs",)}
_URL = re.compile(r"^(?P<scheme>s3|gs)://(?P<bucket>[a-z0-9][a-z0-9._-]{1,221}[a-z0-9])(?:/(?P<prefix>.*))?$")
MILVUS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetConfig:
    """The import API; which fields a type uses is in its ``_TARGETS`` parser."""

    type: str
    base_url: str = ""  # the HTTP APIs
    cluster_id: str = ""  # Zilliz Cloud
    api_key: Secret | None = None  # the bearer credential: a Zilliz API key, a Milvus token or user:password
    db_name: str | None = None  # zilliz-v2, milvus
    uri: Path | None = None  # milvus-lite: the database
    create_collection: bool = False  # milvus-lite: make missing collections from the first file
    metric: str = "COSINE"  # milvus-lite: the metric of the indexes it builds
    cluster_endpoint: str | None = None  # Zilliz: the data plane, where collections are described


@dataclass(frozen=True, slots=True)
class TargetRules:
    """What a target type allows elsewhere in the manifest."""

    credentials: bool  # the API reads the objects with keys sent in each call: credentials required
    sts_token: bool  # ... and accepts an STS session token with them
    partitions: bool  # sources may name a partition
    local_sources: bool  # sources may be local folders


TARGET_RULES = {
    "zilliz-v1": TargetRules(credentials=True, sts_token=False, partitions=False, local_sources=True),
    "zilliz-v2": TargetRules(credentials=True, sts_token=True, partitions=True, local_sources=True),
    "milvus": TargetRules(credentials=False, sts_token=False, partitions=True, local_sources=False),
    "milvus-lite": TargetRules(credentials=False, sts_token=False, partitions=True, local_sources=True),
    "milvus-grpc": TargetRules(credentials=False, sts_token=False, partitions=True, local_sources=True),
}
TARGET_TYPES = tuple(TARGET_RULES)
ZILLIZ_V2_URL = "https://api.cloud.zilliz.com"
METRICS = ("COSINE", "L2", "IP")


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceConfig:
    index: int
    url: str
    scheme: str
    bucket: str
    prefix: str  # "" or ends with "/"
    collection: str  # a name or a template over ``pattern``'s named groups
    partition: str | None
    pattern: re.Pattern[str] | None
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

    @property
    def label(self) -> str:
        """How messages name this source: ``sources[2] s3://bucket/prefix/``."""
        if self.root is not None:
            return f"sources[{self.index}] {self.root.as_uri()}/"
        return f"sources[{self.index}] {self.scheme}://{self.bucket}/{self.prefix}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    concurrency: int = 4
    max_attempts: int = 5
    requests_per_second: float = 10.0
    timeout_s: float = 30.0
    max_job_failures: int = 3
    on_change: str = "skip"
    list_concurrency: int = 8  # sub-prefixes listed at once (1: one stream)
    min_age_s: float = 60.0  # objects modified more recently are left for a later run
    preflight: str = "enforce"  # off | warn | enforce: check each file against its collection first
    fixed_size_list: str = "reject"  # reject | allow (Milvus 2.6+ reads fixed_size_list vectors)
    max_file_gb: float | None = None  # overrides the target's per-file limit (e.g. 1 on the Free tier)
    stall_after_s: float = 3600.0  # a running job whose progress stands still this long is "stalled"
    job_list_lag_s: float = 30.0  # how long a new job may take to appear in the server's job list
    max_jobs_in_flight: int | None = None  # unfinished jobs kept on the server (None: the target's default)
    milvus_version: str | None = None  # the server's version, for pre-flight rules that differ by version


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    path: Path
    target: TargetConfig
    credentials: Credentials | None
    sources: tuple[SourceConfig, ...]
    settings: Settings
    ledger_path: Path
    schema_files: Mapping[str, Path] = field(default_factory=dict)  # collection -> saved describe output

    def credentials_for(self, source: SourceConfig) -> Credentials | None:
        return source.credentials or self.credentials


class _Reader:
    """Walks the parsed YAML, substituting ``${VAR}`` and raising errors that name the place."""

    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        self.file = file
        self.environ = environ

    def fail(self, path: str, problem: str) -> ManifestError:
        return ManifestError(self.file, path, problem)

    def mapping(
        self, node: Any, path: str, *, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        if not isinstance(node, dict):
            raise self.fail(path, f"expected a mapping, got {_kind(node)}")
        for key in node:
            if key not in required and key not in optional:
                known = ", ".join(sorted((*required, *optional)))
                raise self.fail(_join(path, str(key)), f"unknown key (known keys: {known})")
        for key in required:
            if key not in node:
                raise self.fail(_join(path, key), "required key is missing")
        return node

    def string(self, node: Any, path: str, *, secret: bool = False) -> str:
        if not isinstance(node, str) or not node:
            got = type(node).__name__ if secret else _kind(node)  # never echo what may be a secret
            raise self.fail(path, f"expected a non-empty string, got {got}")
        if secret and not _ENV_REF.search(node):
            raise self.fail(
                path, "secrets are not accepted literally; write ${ENV_VAR} and set that variable"
            )

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.environ:
                raise self.fail(path, f"environment variable {name} is not set")
            return self.environ[name]

        value = _ENV_REF.sub(substitute, node)
        if not value:
            raise self.fail(path, "is empty after substituting environment variables")
        return value

    def optional_string(self, node: Any, path: str) -> str | None:
        return None if node is None else self.string(node, path)

    def integer(self, node: Any, path: str, *, low: int, high: int) -> int:
        if isinstance(node, bool) or not isinstance(node, int) or not low <= node <= high:
            raise self.fail(path, f"expected a whole number from {low} to {high}, got {node!r}")
        return node

    def number(self, node: Any, path: str, *, low: float, high: float) -> float:
        if isinstance(node, bool) or not isinstance(node, int | float) or not low < node <= high:
            raise self.fail(path, f"expected a number above {low} and at most {high}, got {node!r}")
        return float(node)

    def seconds(self, node: Any, path: str, *, high: float) -> float:
        if isinstance(node, bool) or not isinstance(node, int | float) or not 0 <= node <= high:
            raise self.fail(path, f"expected a number of seconds from 0 to {high}, got {node!r}")
        return float(node)

    def boolean(self, node: Any, path: str) -> bool:
        if not isinstance(node, bool):
            raise self.fail(path, f"expected true or false, got {_kind(node)}")
        return node

    def strings(self, node: Any, path: str) -> tuple[str, ...]:
        if not isinstance(node, list):
            raise self.fail(path, f"expected a list of strings, got {_kind(node)}")
        return tuple(self.string(item, f"{path}[{i}]") for i, item in enumerate(node))

    def choice(self, node: Any, path: str, choices: tuple[str, ...]) -> str:
        if node not in choices:
            raise self.fail(path, f"expected one of {', '.join(choices)}, got {node!r}")
        return str(node)


def load(path: str | Path, environ: Mapping[str, str] | None = None) -> Manifest:
    """Read, substitute and validate a manifest; raise :class:`ManifestError` on any problem."""
    file = Path(path)
    name = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(name, "", f"cannot read: {exc.strerror or exc}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ManifestError(name, where, f"not valid YAML: {problem}") from exc
    return parse(doc, file=name, base_dir=file.resolve().parent, stem=file.stem,
                 environ=os.environ if environ is None else environ)


def parse(
    doc: Any, *, file: str, base_dir: Path, stem: str, environ: Mapping[str, str]
) -> Manifest:
    r = _Reader(file, environ)
    top = r.mapping(doc, "", required=("version", "target", "sources"),
                    optional=("credentials", "settings", "ledger", "schema_files"))
    if top["version"] != 1:
        raise r.fail("version", f"this orchestrator reads manifest version 1, got {top['version']!r}")
    target = _target(r, top["target"], base_dir)
    rules = TARGET_RULES[target.type]
    credentials = _credentials(r, top.get("credentials"), "credentials", target.type)
    sources_node = top["sources"]
    if not isinstance(sources_node, list) or not sources_node:
        raise r.fail("sources", "expected a non-empty list of sources")
    sources = tuple(_source(r, node, i, target, base_dir) for i, node in enumerate(sources_node))
    for source in sources:
        if rules.credentials and source.credentials is None and credentials is None:
            raise r.fail(f"sources[{source.index}].credentials",
                         "no credentials for the import service: set top-level credentials or this one")
    settings = _settings(r, top.get("settings"))
    schema_files = _schema_files(r, top.get("schema_files"), base_dir)
    ledger_node = top.get("ledger")
    ledger = Path(r.string(ledger_node, "ledger")) if ledger_node is not None else Path(
        f"{stem}.ledger.sqlite")
    return Manifest(
        path=base_dir / Path(file).name,
        target=target,
        credentials=credentials,
        sources=sources,
        settings=settings,
        ledger_path=ledger if ledger.is_absolute() else base_dir / ledger,
        schema_files=schema_files,
    )


def _schema_files(r: _Reader, node: Any, base_dir: Path) -> dict[str, Path]:
    """``collection: path`` pairs: saved describe outputs, for when the data plane is out of reach."""
    if node is None:
        return {}
    if not isinstance(node, dict):
        raise r.fail("schema_files", f"expected a mapping of collection to JSON file, got {_kind(node)}")
    files = {}
    for name, value in node.items():
        if not isinstance(name, str) or not MILVUS_NAME.match(name):
            raise r.fail(f"schema_files.{name}", "expected a collection name")
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
    return _TARGETS[kind](r, node, base_dir)


def _zilliz_v1(r: _Reader, node: Any, _base_dir: Path) -> TargetConfig:
    t = r.mapping(node, "target", required=("type", "cluster_id", "api_key"),
                  optional=("region", "endpoint", "cluster_endpoint"))
    endpoint = _endpoint(r, t)
    region = r.optional_string(t.get("region"), "target.region")
    if endpoint is not None:
        base_url = endpoint
    elif region is not None:
        if not re.fullmatch(r"[a-z0-9-]+", region):
            raise r.fail("target.region", f"expected a region such as gcp-us-west1, got {region!r}")
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
                  optional=("token", "user", "password", "db_name"))
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
        api_key = Secret(f"{user}:{r.string(t['password'], 'target.password', secret=True)}")
    endpoint = _endpoint(r, t)
    if endpoint is None:
        raise r.fail("target.endpoint", "expected http(s)://host[:port], e.g. http://localhost:19530")
    return TargetConfig(type="milvus", base_url=endpoint, api_key=api_key, db_name=_db_name(r, t))


def _milvus_lite(r: _Reader, node: Any, base_dir: Path) -> TargetConfig:
    t = r.mapping(node, "target", required=("type", "uri"), optional=("create_collection", "metric"))
    uri = r.string(t["uri"], "target.uri")
    if "://" in uri or not uri.endswith(".db"):
        raise r.fail("target.uri", f"expected a database path ending in .db (e.g. ./demo.db), got {uri!r}")
    return TargetConfig(
        type="milvus-lite",
        uri=(base_dir / uri).resolve(),
        create_collection=r.boolean(t.get("create_collection", False), "target.create_collection"),
        metric=r.choice(t.get("metric", "COSINE"), "target.metric", METRICS),
    )


_TARGETS: dict[str, Callable[[_Reader, Any, Path], TargetConfig]] = {
    "zilliz-v1": _zilliz_v1,
    "zilliz-v2": _zilliz_v2,
    "milvus": _milvus,
    "milvus-lite": _milvus_lite,
    "milvus-grpc": lambda r, node, base_dir: replace(_milvus(r, node, base_dir), type="milvus-grpc"),
}


def _endpoint(r: _Reader, t: dict[str, Any], key: str = "endpoint") -> str | None:
    endpoint = r.optional_string(t.get(key), f"target.{key}")
    if endpoint is None:
        return None
    if not re.match(r"^https?://[^/\s]+", endpoint):
        raise r.fail(f"target.{key}", f"expected http(s)://host[:port], got {endpoint!r}")
    return endpoint.rstrip("/")


def _db_name(r: _Reader, t: dict[str, Any]) -> str | None:
    name = r.optional_string(t.get("db_name"), "target.db_name")
    if name is not None and not MILVUS_NAME.match(name):
        raise r.fail("target.db_name", f"{name!r} is not a valid Milvus database name")
    return name


def _credentials(r: _Reader, node: Any, path: str, target_type: str) -> Credentials | None:
    if node is None:
        return None
    rules = TARGET_RULES[target_type]
    if not rules.credentials:
        raise r.fail(path, f"the {target_type} target reads the objects itself (no keys are sent with an "
                           "import call): remove this block")
    c = r.mapping(node, path, required=("access_key", "secret_key"), optional=("token",))
    if "token" in c and not rules.sts_token:
        raise r.fail(f"{path}.token", f"the {target_type} import API takes no session token "
                                      "(zilliz-v2 does)")
    return Credentials(
        access_key=Secret(r.string(c["access_key"], f"{path}.access_key", secret=True)),
        secret_key=Secret(r.string(c["secret_key"], f"{path}.secret_key", secret=True)),
        token=Secret(r.string(c["token"], f"{path}.token", secret=True)) if "token" in c else None,
    )


def _source(r: _Reader, node: Any, index: int, target: TargetConfig, base_dir: Path) -> SourceConfig:
    p = f"sources[{index}]"
    s = r.mapping(node, p, required=("url", "collection"), optional=(
        "partition", "pattern", "include", "exclude", "credentials", "object_url_style", *_SCHEME_KEYS))
    url = r.string(s["url"], f"{p}.url")
    root = _local_root(url, base_dir)
    m = _URL.match(url)
    if root is not None and not TARGET_RULES[target.type].local_sources:
        raise r.fail(f"{p}.url", f"the {target.type} target imports from the bucket the server reads "
                                 "(e.g. its MinIO): use s3://bucket/prefix, not a local folder")
    if root is not None:
        scheme, bucket, prefix = "file", "", ""
    elif m is None:
        raise r.fail(f"{p}.url", "expected s3://bucket/prefix, gs://bucket/prefix, file:///folder or a "
                                 f"folder relative to the manifest, got {url!r}")
    else:
        scheme, bucket, prefix = m["scheme"], m["bucket"], m["prefix"] or ""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
    pattern = None
    if s.get("pattern") is not None:
        raw = r.string(s["pattern"], f"{p}.pattern")
        try:
            pattern = re.compile(raw)
        except re.error as exc:
            raise r.fail(f"{p}.pattern", f"not a valid regular expression: {exc}") from exc
    groups = set(pattern.groupindex) if pattern else set()
    collection = r.string(s["collection"], f"{p}.collection")
    _check_template(r, collection, f"{p}.collection", groups)
    partition = r.optional_string(s.get("partition"), f"{p}.partition")
    if partition is not None:
        if not TARGET_RULES[target.type].partitions:
            raise r.fail(f"{p}.partition", f"the {target.type} import API cannot target a partition")
        _check_template(r, partition, f"{p}.partition", groups)
    include = r.strings(s["include"], f"{p}.include") if "include" in s else ("**/*.parquet",)
    exclude = r.strings(s["exclude"], f"{p}.exclude") if "exclude" in s else ()
    for key in _SCHEME_KEYS:
        if key in s and scheme not in _SCHEME_KEYS[key]:
            kinds = " and ".join(f"{k}://" for k in _SCHEME_KEYS[key])
            raise r.fail(f"{p}.{key}", f"only for {kinds} sources, not {scheme}://")
    endpoint_url = r.optional_string(s.get("endpoint_url"), f"{p}.endpoint_url")
    if endpoint_url is not None and not re.match(r"^https?://[^/\s]+", endpoint_url):
        raise r.fail(f"{p}.endpoint_url", f"expected http(s)://host[:port], got {endpoint_url!r}")
    region = r.optional_string(s.get("region"), f"{p}.region")
    style = r.choice(s.get("object_url_style", "native"), f"{p}.object_url_style", urls.STYLES)
    why = urls.problem(scheme=scheme, style=style, bucket=bucket, region=region, endpoint_url=endpoint_url)
    if why is not None:
        raise r.fail(f"{p}.object_url_style", why)
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
        credentials=_credentials(r, s.get("credentials"), f"{p}.credentials", target.type),
        root=root,
        object_url_style=style,
        path_style=r.boolean(s.get("path_style", False), f"{p}.path_style"),
        profile=r.optional_string(s.get("profile"), f"{p}.profile"),
        request_payer=None if payer is None else r.choice(payer, f"{p}.request_payer", ("requester",)),
        service_account_file=None if key_file is None else base_dir / Path(key_file).expanduser(),
    )


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
        raise r.fail(path, f"{template!r} is not a valid Milvus name (letters, digits, _; not starting "
                           "with a digit)")


def _settings(r: _Reader, node: Any) -> Settings:
    if node is None:
        return Settings()
    s = r.mapping(node, "settings", optional=(
        "concurrency", "max_attempts", "requests_per_second", "timeout_s", "max_job_failures",
        "on_change", "list_concurrency", "min_age_s", "preflight", "fixed_size_list", "max_file_gb",
        "stall_after_s", "job_list_lag_s", "max_jobs_in_flight", "milvus_version"))
    d = Settings()
    return Settings(
        concurrency=r.integer(s.get("concurrency", d.concurrency), "settings.concurrency", low=1, high=256),
        max_attempts=r.integer(s.get("max_attempts", d.max_attempts), "settings.max_attempts",
                               low=1, high=100),
        requests_per_second=r.number(s.get("requests_per_second", d.requests_per_second),
                                     "settings.requests_per_second", low=0, high=10_000),
        timeout_s=r.number(s.get("timeout_s", d.timeout_s), "settings.timeout_s", low=0, high=3600),
        max_job_failures=r.integer(s.get("max_job_failures", d.max_job_failures),
                                   "settings.max_job_failures", low=1, high=100),
        on_change=r.choice(s.get("on_change", d.on_change), "settings.on_change", ON_CHANGE),
        list_concurrency=r.integer(s.get("list_concurrency", d.list_concurrency),
                                   "settings.list_concurrency", low=1, high=64),
        min_age_s=r.seconds(s.get("min_age_s", d.min_age_s), "settings.min_age_s", high=30 * 86400),
        preflight=r.choice(s.get("preflight", d.preflight), "settings.preflight", PREFLIGHT),
        fixed_size_list=r.choice(s.get("fixed_size_list", d.fixed_size_list), "settings.fixed_size_list",
                                 ("reject", "allow")),
        max_file_gb=None if s.get("max_file_gb") is None else r.number(
            s["max_file_gb"], "settings.max_file_gb", low=0, high=1000),
        stall_after_s=r.seconds(s.get("stall_after_s", d.stall_after_s), "settings.stall_after_s",
                                high=30 * 86400),
        job_list_lag_s=r.seconds(s.get("job_list_lag_s", d.job_list_lag_s), "settings.job_list_lag_s",
                                 high=3600),
        max_jobs_in_flight=None if s.get("max_jobs_in_flight") is None else r.integer(
            s.get("max_jobs_in_flight"), "settings.max_jobs_in_flight", low=1, high=100_000),
        milvus_version=_version(r, s.get("milvus_version")),
    )


def _version(r: _Reader, node: Any) -> str | None:
    """``settings.milvus_version``: ``"2.3"``, ``"2.4.5"`` (quoted: YAML reads 2.10 as the number 2.1)."""
    if node is None:
        return None
    text = node if isinstance(node, str) else str(node) if isinstance(node, float) else ""
    if not re.fullmatch(r"v?\d+\.\d+(\.\d+)?", text):
        raise r.fail("settings.milvus_version", f"expected a version such as '2.3' or '2.4.5', got {node!r}")
    return text


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(node: Any) -> str:
    if node is None:
        return "nothing"
    if isinstance(node, bool):
        return f"a boolean ({node})"
    if isinstance(node, dict):
        return "a mapping"
    if isinstance(node, list):
        return "a list"
    return f"{type(node).__name__} {node!r}"
