"""The manifest's types, each declared once: the target, the sources, the settings (each with its
meaning, default and bounds) and the manifest that holds them. Reading YAML into them is
:mod:`orchestrator.config.document`'s; what each target API and store adds is in its spec.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MAX_RETRY_AFTER_S
from ..models import Credentials, Secret
from . import pgurl
from .patterns import KeyPattern


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


class Visibility(enum.StrEnum):
    """When readers of a collection see what a run imports: each job as it completes, or the whole run
    at once (two-phase import: every job uncommitted until all are, then all committed)."""

    PER_JOB = "per_job"
    PER_RUN = "per_run"


class Metric(enum.StrEnum):
    """The metric of the vector indexes Milvus Lite builds."""

    COSINE = "COSINE"
    L2 = "L2"
    IP = "IP"


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetCapabilities:
    """What the manifest reader, the run and the pre-flight check need to know of a target API, declared
    once in its spec (``orchestrator.config.plugins.TargetSpec``)."""

    credentials: bool  # the API reads the objects with keys sent in each call: credentials required
    sts_token: bool  # ... and accepts an STS session token with them
    partitions: bool  # sources may name a partition
    local_sources: bool  # sources may be local folders
    window: int  # unfinished jobs a manifest keeps on the server unless settings.max_jobs_in_flight says
    in_process: bool = False  # the import runs here: its job list neither lags nor forgets
    two_phase: bool = False  # jobs can be created uncommitted, then committed or aborted (Milvus 3.0+)
    files_per_job: int = 1  # the most files one create call may name (settings.objects_per_job)
    job_gb: float | None = None  # the most bytes one job may import, in GB (settings.max_job_gb)
    max_file_bytes: int | None = None  # the largest file one import takes (None: no documented limit)
    # the lowest server version its API implies, for the pre-flight rules when neither the server nor
    # settings.milvus_version says (the REST import API exists from Milvus 2.4 on)
    implied_version: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetConfig:
    """The import API: its ``target:`` section as its spec's parser read it, and the API's capabilities;
    which fields a type uses is in its parser."""

    type: str
    capabilities: TargetCapabilities
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
    discovery: str = "list"  # how its objects are found: list, events or inventory (config/discovery.py)
    queue: str | None = None  # events: the queue of the store's notifications (SQS, Azure Storage, Pub/Sub)
    inventory: str | None = None  # inventory: where S3 Inventory delivers, or one manifest.json
    backfill_every_s: float = 86_400.0  # events/inventory: a full listing when the last is older (0: never)

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
    visibility: Visibility = field(default=Visibility.PER_JOB, metadata=_meta(
        "when readers see a run's rows: per_job, each job as it completes; per_run, all of the run's jobs "
        "at once, committed together once every one has imported (two-phase import; implies run --wait)"))
    queue_wait_s: float = field(default=10.0, metadata=_meta(
        "run --follow: the longest one receive waits for a message (a long poll; SQS allows 20); a signal "
        "ends the run within about this long", low=1, high=20))
    queue_drain_s: float = field(default=900.0, metadata=_meta(
        "a run without --follow: the longest it reads an events source's queue before leaving the rest to "
        "the next run (a queue fed as fast as it drains would keep a cron run going for good)",
        low=1, high=86_400))
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
