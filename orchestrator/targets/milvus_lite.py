"""Milvus Lite, the embedded default: no import API, so this target performs each import itself.

One "job" per object: the parquet object is read through its source (ranged reads, one record batch at
a time) and its rows are inserted into a local Milvus Lite database. The job is recorded in the same
database (collection ``orchestrator_jobs``) once its last row is in, so ``progress`` and ``list_jobs``
answer as a server would, and the ledger's states and reconciliation work unchanged.

Exactly once, also across a crash in the middle of a file:

* The job id is derived from the idempotency key (the same for every call about one object version),
  so a create call whose job is already recorded inserts nothing and returns that job.
* A crash before the job is recorded leaves the ledger at ``submitting`` and no job: the next run
  proves there is none and submits again. What the interrupted insert left behind is removed first:
  collections with the ``_orch_object`` field (the ones ``create_collection`` makes) tag every row
  with its object, and rows with that tag are deleted before the object is inserted again.

Rows are inserted, never upserted, into tagged collections: Milvus Lite keeps one row per primary
key (a second row with the same key replaces the first, insert or upsert alike), so the collections
``create_collection`` makes have their own autoID key, ``_orch_id``, when the file has an ``id`` column
(kept as a plain INT64 field): two files with the same ids both keep all their rows, and a job's
``imported_rows`` (the rows written) is what the collection gained. Where keys come from the file
(collections made by the user; tagged ones made by older versions, keyed on ``id``), a row may
replace another, so ``imported_rows`` is unknown (None) rather than a claim. Collections made by the
user without the tag must take their primary key from the file; their rows are upserted, by choice,
so a second pass replaces rows instead of duplicating them. A collection with neither is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import (
    DataNotMatchException,
    DataTypeNotMatchException,
    MilvusException,
    ParamError,
)

from ..errors import (
    FatalTargetError,
    JobNotFoundError,
    PermanentError,
    SourceError,
    TargetError,
    TransientError,
)
from ..models import ImportRequest, JobInfo, JobState, StoredObject
from ..preflight.footer import RangedFile
from ..preflight.schema import CollectionSchema, from_describe
from ..sources.base import ObjectReader
from .base import OnePhase
from .http import classify
from .milvus_lite_spec import CAPABILITIES

T = TypeVar("T")
JOBS = "orchestrator_jobs"
TAG = "_orch_object"  # the object a row came from, in collections that have this field
KEY = "_orch_id"  # the autoID primary key of a created collection whose file has its own ``id`` column
UNKNOWN_ROWS = -1  # the job record's rows when upserted: what the collection gained is not known
BATCH_ROWS = 2000
PAGE = 1000  # job records per list query
_JOB_FIELDS = ["job_id", "object_url", "collection", "rows"]
_CLIENT_ERRORS = (DataNotMatchException, DataTypeNotMatchException, ParamError)  # refused before sending
_SCALARS: list[tuple[Callable[[pa.DataType], bool], DataType]] = [
    (pa.types.is_boolean, DataType.BOOL),
    (pa.types.is_int8, DataType.INT8),
    (pa.types.is_int16, DataType.INT16),
    (pa.types.is_int32, DataType.INT32),
    (pa.types.is_integer, DataType.INT64),
    (pa.types.is_float32, DataType.FLOAT),
    (pa.types.is_floating, DataType.DOUBLE),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), DataType.VARCHAR),
]


class _LiteErrors(logging.Handler):
    """Keeps what milvus_lite logs (with its multi-line tracebacks) off the terminal: its errors reach
    the user through ours, the last one's reason included."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        self.last = str(error) if error is not None else record.getMessage()


_LITE_ERRORS = _LiteErrors()


def quiet_milvus_lite() -> None:
    """pymilvus and milvus_lite log their errors (milvus_lite with tracebacks, through Python's last-resort
    handler when nothing else is set up); the user gets ours instead, one line each."""
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    lite = logging.getLogger("milvus_lite")
    lite.propagate = False
    if _LITE_ERRORS not in lite.handlers:
        lite.addHandler(_LITE_ERRORS)


def open_client(uri: Path) -> Any:
    """A pymilvus client on the Milvus Lite database at ``uri`` (created if missing)."""
    quiet_milvus_lite()
    _LITE_ERRORS.last = None
    try:
        uri.parent.mkdir(parents=True, exist_ok=True)
        return MilvusClient(str(uri))
    except (MilvusException, OSError) as exc:
        reason = _LITE_ERRORS.last or str(exc)
        hint = "" if "another process" in reason else "; is another process using it?"
        raise FatalTargetError(f"{uri}: cannot open the Milvus Lite database ({reason}){hint}") from exc


@dataclass(frozen=True, slots=True)
class _Layout:
    """How rows go into one collection."""

    tagged: bool  # has the TAG field: delete the object's rows, then insert
    upsert: bool  # untagged, the primary key comes from the file: upsert
    auto_id: bool  # every row gets a key of its own: the rows written are the rows the collection gained


class MilvusLiteTarget(OnePhase):
    def __init__(self, uri: Path, *, read: ObjectReader, create_collection: bool = False,
                 metric: str = "COSINE", client: Any = None, batch_rows: int = BATCH_ROWS,
                 clock: Callable[[], float] = time.time) -> None:
        self.uri = uri
        self.read = read
        self.create_collection = create_collection
        self.metric = metric
        self.batch_rows = batch_rows
        self.clock = clock
        self._client = client if client is not None else open_client(uri)
        self._lock = threading.Lock()  # one insert at a time: the database is in this process anyway
        self._guard(self._ensure_jobs)

    # -- the Target protocol -----------------------------------------------------------------

    def object_ref(self, obj: StoredObject, url: str) -> str:
        return obj.url

    def create(self, request: ImportRequest) -> str:
        job_id = "lite-" + hashlib.sha256(request.idempotency_key.encode()).hexdigest()[:20]
        with self._lock:
            return self._guard(lambda: self._create(job_id, request), about=request)

    def progress(self, job_id: str) -> JobInfo:
        job = self._guard(lambda: self._job(job_id))
        if job is None:
            raise JobNotFoundError(f"job {job_id} is not in {self.uri}")
        return job

    max_file_bytes: int | None = CAPABILITIES.max_file_bytes  # None: the file is read here, in batches

    def describe(self, collection: str) -> CollectionSchema | None:
        """The collection as pymilvus describes it, less the tag field this target fills itself; None
        for a collection that ``create_collection`` will make from the first file."""
        def read() -> CollectionSchema | None:
            if not self._client.has_collection(collection):
                return None
            schema = from_describe(self._client.describe_collection(collection), where=collection)
            return replace(schema, fields=tuple(f for f in schema.fields if f.name != TAG))

        return self._guard(read)

    def list_jobs(self) -> Iterator[JobInfo]:
        def page(offset: int) -> list[dict[str, Any]]:
            return self._guard(lambda: self._client.query(
                JOBS, filter='job_id != ""', output_fields=_JOB_FIELDS, limit=PAGE, offset=offset))

        offset = 0
        while rows := page(offset):
            yield from (_job_info(row) for row in rows)
            offset += len(rows)

    # -- importing ---------------------------------------------------------------------------

    def _create(self, job_id: str, request: ImportRequest) -> str:
        if self._job(job_id) is not None:
            return job_id  # done before: a retry after a lost reply or an interrupted run
        rows = self._import(request)
        self._client.insert(JOBS, [{"job_id": job_id, "object_url": request.object_url,
                                    "collection": request.collection, "partition": request.partition or "",
                                    "rows": rows, "finished_at": self.clock(), "placeholder": [0.0, 0.0]}])
        return job_id

    def _import(self, request: ImportRequest) -> int:
        """Insert (or upsert) the object's rows; return what the collection gained, or
        :data:`UNKNOWN_ROWS` where keys come from the file (a row may have replaced another)."""
        if request.obj is None:
            raise PermanentError(f"{request.object_url}: milvus-lite imports listed objects only")
        obj, source = request.obj, request.source
        ranged = RangedFile(lambda start, end: self.read(source, obj, start, end), obj.size, tail=0)
        parquet = pq.ParquetFile(io.BufferedReader(ranged, buffer_size=1 << 20))
        batches = parquet.iter_batches(batch_size=self.batch_rows)
        first = next(batches, None)
        layout = self._prepare(request, parquet.schema_arrow, first)
        partition = {"partition_name": request.partition} if request.partition else {}
        tag = _tag(request.object_url)
        leftovers = f'{TAG} == "{tag}"'
        if layout.tagged:  # rows of an interrupted attempt, or of the object's previous version
            self._client.delete(request.collection, filter=leftovers)
        write = self._client.upsert if layout.upsert else self._client.insert
        total = 0
        try:
            for batch in chain([first] if first is not None else [], batches):
                rows = batch.to_pylist()
                if layout.tagged:
                    for row in rows:
                        row[TAG] = tag
                write(request.collection, rows, **partition)
                total += len(rows)
        except Exception:
            if layout.tagged:  # leave nothing half-imported behind a refusal
                with contextlib.suppress(MilvusException):
                    self._client.delete(request.collection, filter=leftovers)
            raise
        return total if layout.auto_id else UNKNOWN_ROWS

    def _prepare(self, request: ImportRequest, schema: pa.Schema, first: pa.RecordBatch | None) -> _Layout:
        """Check (or create) the collection and partition for a file of ``schema``."""
        name = request.collection
        if not self._client.has_collection(name):
            if not self.create_collection:
                raise PermanentError(f"collection {name} does not exist in {self.uri}: create it, or set "
                                     "target.create_collection: true")
            self._create_collection(name, schema, first)
        if request.partition and not self._client.has_partition(name, request.partition):
            if not self.create_collection:
                raise PermanentError(f"partition {request.partition} of collection {name} does not exist")
            self._client.create_partition(name, request.partition)
        description = self._client.describe_collection(name)
        fields = {f["name"]: f for f in description["fields"]}
        primary = next(f["name"] for f in description["fields"] if f.get("is_primary"))
        auto_id = bool(description.get("auto_id"))
        columns = set(schema.names)
        expected = {n for n in fields if n != TAG and not (auto_id and n == primary)}
        problems = []
        if missing := sorted(expected - columns):
            problems.append(f"fields without a column: {', '.join(missing)}")
        if (extra := sorted(columns - set(fields))) and not description.get("enable_dynamic_field"):
            problems.append(f"columns that are not fields: {', '.join(extra)}")
        if auto_id and primary in columns:
            problems.append(f"column {primary} is the collection's autoID primary key: drop it from the file")
        if problems:
            raise PermanentError(f"{request.object_url} does not fit collection {name}: "
                                 + "; ".join(problems))
        layout = _Layout(tagged=TAG in fields, upsert=TAG not in fields and not auto_id, auto_id=auto_id)
        if not (layout.tagged or layout.upsert):
            raise PermanentError(f"collection {name} has an autoID primary key and no {TAG} field: a "
                                 "re-import could not tell its rows apart, so it is refused; add a "
                                 f"VARCHAR field {TAG} (max_length 64), or let the orchestrator create it")
        return layout

    def _create_collection(self, name: str, schema: pa.Schema, first: pa.RecordBatch | None) -> None:
        """Infer a collection from the first file: an autoID primary key (``_orch_id`` when the file has
        an ``id`` column, which stays a plain integer field; ``id`` otherwise), float lists as vectors
        with an index, scalars as scalars, and the row tag."""
        fields = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
        fields.add_field(KEY if "id" in schema.names else "id", DataType.INT64, is_primary=True, auto_id=True)
        index = self._client.prepare_index_params()
        for column in schema:
            kind = column.type
            if column.name == "id":
                if not pa.types.is_integer(kind):
                    raise PermanentError(f"column id is {kind}: create_collection needs an integer id")
                fields.add_field("id", DataType.INT64)
            elif _is_float_list(kind):
                fields.add_field(column.name, DataType.FLOAT_VECTOR, dim=_dimension(column.name, kind, first))
                index.add_index(column.name, index_type="AUTOINDEX", metric_type=self.metric)
            else:
                scalar = next((t for test, t in _SCALARS if test(kind)), None)
                if scalar is None:
                    raise PermanentError(f"column {column.name} is {kind}: create_collection cannot map it; "
                                         "create the collection yourself")
                extra = {"max_length": 65535} if scalar is DataType.VARCHAR else {}
                fields.add_field(column.name, scalar, **extra)
        if not any(_is_float_list(c.type) for c in schema):
            raise PermanentError(f"cannot create collection {name}: the file has no list<float> column for "
                                 "a vector field")
        fields.add_field(TAG, DataType.VARCHAR, max_length=64)
        self._client.create_collection(name, schema=fields, index_params=index)

    # -- the job records ---------------------------------------------------------------------

    def _ensure_jobs(self) -> None:
        if self._client.has_collection(JOBS):
            self._client.load_collection(JOBS)  # a reopened database starts with its collections released
            return
        fields = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        fields.add_field("job_id", DataType.VARCHAR, max_length=64, is_primary=True)
        fields.add_field("object_url", DataType.VARCHAR, max_length=65535)
        fields.add_field("collection", DataType.VARCHAR, max_length=255)
        fields.add_field("partition", DataType.VARCHAR, max_length=255)
        fields.add_field("rows", DataType.INT64)
        fields.add_field("finished_at", DataType.DOUBLE)
        fields.add_field("placeholder", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants one vector field
        index = self._client.prepare_index_params()
        index.add_index("placeholder", index_type="AUTOINDEX", metric_type="L2")
        self._client.create_collection(JOBS, schema=fields, index_params=index)

    def _job(self, job_id: str) -> JobInfo | None:
        rows = self._client.query(JOBS, filter=f'job_id == "{job_id}"', output_fields=_JOB_FIELDS)
        return _job_info(rows[0]) if rows else None

    # -- errors ------------------------------------------------------------------------------

    def _guard(self, fn: Callable[[], T], *, about: ImportRequest | None = None) -> T:
        """Run ``fn``, translating pymilvus, pyarrow and source errors into ours."""
        try:
            return fn()
        except TargetError:
            raise
        except SourceError as exc:
            raise TransientError(str(exc)) from exc
        except _CLIENT_ERRORS as exc:
            raise PermanentError(f"{_where(about)}{exc.message}") from exc
        except MilvusException as exc:
            raise classify(exc.code, f"{_where(about)}{exc.message}") from exc
        except (pa.ArrowException, OSError) as exc:
            raise PermanentError(f"{_where(about)}not a readable parquet file: {exc}") from exc


def _is_float_list(kind: pa.DataType) -> bool:
    lists = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    return bool(lists and pa.types.is_floating(kind.value_type))


def _dimension(name: str, kind: pa.DataType, first: pa.RecordBatch | None) -> int:
    if pa.types.is_fixed_size_list(kind):
        return int(kind.list_size)
    values = first.column(name) if first is not None else pa.array([])
    sample = next((v for v in values.to_pylist() if v), None)
    if sample is None:
        raise PermanentError(f"column {name}: no vector in the first rows to take the dimension from")
    return len(sample)


def _tag(object_url: str) -> str:
    return hashlib.sha256(object_url.encode()).hexdigest()[:32]


def _job_info(row: dict[str, Any]) -> JobInfo:
    rows = int(row["rows"])
    return JobInfo(job_id=str(row["job_id"]), state=JobState.COMPLETED, collection=str(row["collection"]),
                   file_name=str(row["object_url"]), progress=100.0,
                   imported_rows=None if rows == UNKNOWN_ROWS else rows)


def _where(request: ImportRequest | None) -> str:
    return f"{request.object_url}: " if request is not None else ""
