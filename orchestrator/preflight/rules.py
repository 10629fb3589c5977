"""Pure checks of a parquet file's schema (from its footer) against a collection's schema.

The rules follow the Milvus parquet readers: ``internal/util/importutil/parquet_*.go`` (Milvus 2.2
and 2.3) and ``internal/util/importutilv2/parquet/`` (2.4 and later), held against a real Milvus
2.3.5 server by ``tests/test_server_differential.py``; the rules for later versions come from their
source. Where the readers differ, the check judges for the server versions it is given
(:class:`Versions`): a case that depends on a version the check cannot pin down is a *warning*, never a
problem, so a file the server would import is never held back. Where the first version with a
behaviour is not certain, the later candidate is taken, so the doubtful versions only get warnings.

Every problem is reported, not just the first, in words that say what to write instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from .footer import Footer
from .schema import CollectionSchema, Field

Version = tuple[int, int]  # (major, minor)
_INT_BITS = {"Int8": 8, "Int16": 16, "Int32": 32, "Int64": 64}
_BYTE_VECTORS = ("BinaryVector", "Float16Vector", "BFloat16Vector")
_LIST_VECTORS = ("FloatVector", *_BYTE_VECTORS, "Int8Vector")
GB = 1000**3

# Where the readers of different versions part ways (README, "Pre-flight checks", lists them).
FLOAT64_INTO_FLOAT: Version = (2, 4)  # a float64 column into a Float field (and Array(Float) elements)
INT_LIST_INTO_FLOAT_VECTOR: Version = (2, 4)  # list<int*> into a FloatVector field
HALF_AND_SPARSE_VECTORS: Version = (2, 4)  # Float16/BFloat16/SparseFloatVector fields import at all
STRICT_VALUES: Version = (2, 5)  # nulls in non-nullable columns, over-long VarChar and Array values,
# and a '$meta' that is not a JSON object are refused (2.3 imports zeros and empty strings; some 2.4
# releases check some of them: 2.4 gets a warning)
OMITTED_NULLABLE: Version = (2, 5)  # a nullable field, or one with a default, may have no column
FIXED_SIZE_LIST: Version = (2, 6)  # fixed_size_list vectors
NULL_LIST_ELEMENTS: Version = (2, 6)  # nulls inside lists are refused (list_like.go); before, read as zeros


def parse_version(text: str) -> Version | None:
    """``v2.3.5-lite``, ``2.4``, ``2.6.0-rc1`` -> (major, minor); None when it is not a version."""
    match = re.match(r"^\s*v?(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else None


@dataclass(frozen=True, slots=True)
class Versions:
    """The server versions the check judges for: ``low`` to ``high`` inclusive (None: unbounded)."""

    low: Version | None = None
    high: Version | None = None

    @classmethod
    def exactly(cls, version: Version) -> Versions:
        return cls(version, version)

    def since(self, version: Version) -> bool | None:
        """True when every server judged for is ``version`` or later, False when none is, None when
        it depends on which one it is."""
        if self.low is not None and self.low >= version:
            return True
        if self.high is not None and self.high < version:
            return False
        return None

    def __str__(self) -> str:
        def show(v: Version) -> str:
            return f"{v[0]}.{v[1]}"
        if self.low is not None and self.low == self.high:
            return f"Milvus {show(self.low)}"
        if self.low is not None and self.high is None:
            return f"Milvus {show(self.low)} or later"
        if self.low is None and self.high is not None:
            return f"Milvus {show(self.high)} or earlier"
        if self.low is not None and self.high is not None:
            return f"Milvus {show(self.low)} to {show(self.high)}"
        return "an unknown Milvus version"


@dataclass(frozen=True, slots=True)
class Findings:
    """``problems``: the server would refuse the file. ``warnings``: what the check could not decide
    (it depends on the server's version) or could not check (a field type it does not know)."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Judge:
    """Collects findings, deciding version-dependent ones for the versions judged for."""

    def __init__(self, versions: Versions) -> None:
        self.versions = versions
        self.found = Findings()

    def problem(self, text: str) -> None:
        self.found.problems.append(text)

    def warn(self, text: str) -> None:
        self.found.warnings.append(text)

    def accepted_since(self, version: Version, text: str) -> None:
        """``text`` describes something servers from ``version`` on import and older ones refuse."""
        verdict = self.versions.since(version)
        v = f"{version[0]}.{version[1]}"
        if verdict is False:
            self.problem(f"{text}: Milvus before {v} refuses it ({self.versions})")
        elif verdict is None:
            self.warn(f"{text}: Milvus {v} and later import it, older servers refuse it (judging for "
                      f"{self.versions}: set settings.milvus_version to decide)")

    def refused_since(self, version: Version, text: str, *, older: str) -> None:
        """``text`` describes something servers from ``version`` on refuse; older ones do ``older``."""
        verdict = self.versions.since(version)
        v = f"{version[0]}.{version[1]}"
        if verdict is True:
            self.problem(text)
        elif verdict is False:
            self.warn(f"{text}: servers before {v} {older} (judging for {self.versions})")
        else:
            self.warn(f"{text}: Milvus {v} and later refuse it, older servers {older} (judging for "
                      f"{self.versions}: set settings.milvus_version to decide)")


def check(footer: Footer, schema: CollectionSchema, *, size: int, size_limit: int | None,
          fixed_size_list_ok: bool = False, versions: Versions = Versions()) -> Findings:
    """Every problem that would make the server reject this file, and what could not be decided."""
    judge = _Judge(versions)
    for text in size_problems(size, size_limit):
        judge.problem(text)
    columns = {f.name: f.type for f in footer.schema}
    for name, arrow_type in columns.items():
        found = schema.field(name)
        if name == "$meta":
            if not schema.dynamic:
                judge.problem("column '$meta' needs a collection with the dynamic field enabled: drop it")
            elif not _is_string(arrow_type):
                judge.problem(f"column '$meta' is {_show(arrow_type)}; write a string holding a JSON object")
        elif found is None:
            hint = " (or move it into a '$meta' JSON column)" if schema.dynamic else ""
            judge.problem(f"column '{name}' is not a field of collection '{schema.name}': drop it{hint}")
        elif found.primary and found.auto_id:
            judge.problem(f"column '{name}' is the auto-ID primary key, which the server generates: "
                          "drop the column")
        elif found.function_output:
            judge.problem(f"column '{name}' is the output of a function, which the server computes: "
                          "drop the column")
        elif not found.known:
            judge.warn(f"column '{name}': collection field '{name}' is of type {found.describe()}, which "
                       "this orchestrator does not know: its values are not checked")
        else:
            _type_problems(judge, name, arrow_type, found, fixed_size_list_ok)
    for wanted in schema.fields:
        if wanted.name in columns or wanted.name == "$meta":
            continue
        if (wanted.primary and wanted.auto_id) or wanted.function_output:
            continue
        text = f"collection field '{wanted.name}' ({wanted.describe()}) has no column"
        if wanted.nullable or wanted.has_default:
            judge.accepted_since(OMITTED_NULLABLE, f"{text} (it is nullable or has a default)")
        else:
            judge.problem(f"{text}: add a column '{wanted.name}'")
    for name in footer.unsampled:
        judge.warn(f"column '{name}': its first rows are in pages too large for a sample (a page of the "
                   "whole column?): its values are not checked (check --deep reads them)")
    if footer.first_rows is not None:
        read = footer.first_rows.num_rows
        scope = "the first row group" if footer.sampled is None else f"the first {read:,} rows read"
        _deep_problems(judge, footer.first_rows, schema, scope)
    return judge.found


def size_problems(size: int, limit: int | None) -> list[str]:
    """The per-file size limit, checked from the listing alone."""
    if limit is None or size <= limit:
        return []
    return [f"the file is {size / GB:.1f} GB; this target takes at most {limit / GB:g} GB per file: split it"]


def _type_problems(judge: _Judge, name: str, t: pa.DataType, wanted: Field, fixed_ok: bool) -> None:
    intro = f"column '{name}' is {_show(t)}; collection field '{name}' is {wanted.describe()}"
    kind = wanted.type
    if pa.types.is_null(t):  # every value null: pyarrow writes such a column with no type
        if wanted.nullable:
            judge.accepted_since(OMITTED_NULLABLE, f"column '{name}' holds only nulls")
        else:
            judge.problem(f"{intro}: every value is null, and the field is not nullable")
        return
    if kind in ("Float16Vector", "BFloat16Vector", "SparseFloatVector"):
        judge.accepted_since(HALF_AND_SPARSE_VECTORS, f"collection field '{name}' is {kind}")
    if kind in _LIST_VECTORS or kind == "Array":
        _list_problems(judge, intro, t, wanted, fixed_ok)
        return
    verdict = _scalar(t, kind)
    if verdict == "later":
        judge.accepted_since(FLOAT64_INTO_FLOAT, f"column '{name}' is float64 and collection field "
                             f"'{name}' is Float")
    elif verdict == "no":
        judge.problem(f"{intro}: write {_wanted_scalar(kind)}")


def _scalar(t: pa.DataType, kind: str) -> str:
    """Whether a value of arrow type ``t`` goes into a scalar field (or Array element) of ``kind``:
    ``yes``, ``no``, or ``later`` (from :data:`FLOAT64_INTO_FLOAT` on)."""
    signed = pa.types.is_signed_integer(t)
    if kind in _INT_BITS:
        ok = signed and t.bit_width <= _INT_BITS[kind]
    elif kind == "Float":
        if pa.types.is_float64(t):
            return "later"
        ok = signed or pa.types.is_float32(t)
    elif kind == "Double":
        ok = signed or pa.types.is_float32(t) or pa.types.is_float64(t)
    elif kind == "Bool":
        ok = pa.types.is_boolean(t)
    elif kind in ("VarChar", "JSON", "SparseFloatVector"):
        ok = _is_string(t)
    else:
        ok = True
    return "yes" if ok else "no"


def _wanted_scalar(kind: str) -> str:
    if kind in _INT_BITS:
        return f"int{_INT_BITS[kind]} (or a narrower signed integer)"
    return {"Bool": "bool", "Float": "float32", "Double": "float64", "VarChar": "string",
            "JSON": "string (a JSON text)", "SparseFloatVector": "string (a JSON text)"}.get(kind, kind)


def _list_problems(judge: _Judge, intro: str, t: pa.DataType, wanted: Field, fixed_ok: bool) -> None:
    vector = wanted.type != "Array"
    expected = _vector_element(wanted) if vector else wanted.element_type or "elements"
    length = _vector_length(wanted) if vector else None
    shape = f"list<{expected}>" + (f" of {length} values" if length is not None else "")
    if wanted.type in _BYTE_VECTORS and pa.types.is_binary(t):
        return  # the raw bytes of each vector: read as they are
    if pa.types.is_fixed_size_list(t):
        if not fixed_ok:
            judge.accepted_since(FIXED_SIZE_LIST, f"{intro}: fixed_size_list (write {shape}, or set "
                                 "settings.fixed_size_list: allow for a 2.6+ server)")
        if length is not None and t.list_size != length:
            judge.problem(f"{intro}: it holds {t.list_size} values, the field needs {length}")
    elif not (pa.types.is_list(t) or pa.types.is_large_list(t)):  # large_list: read as a list
        judge.problem(f"{intro}: write {shape}")
        return
    element = t.value_type
    if not vector:
        verdict = _scalar(element, wanted.element_type) if wanted.element_type else "yes"
        if verdict == "later":
            judge.accepted_since(FLOAT64_INTO_FLOAT, f"{intro}: float64 elements into Float")
        elif verdict == "no":
            judge.problem(f"{intro}: write {shape}")
        return
    if wanted.type == "FloatVector":
        if pa.types.is_signed_integer(element):
            judge.accepted_since(INT_LIST_INTO_FLOAT_VECTOR, f"{intro}: integer vectors")
            return
        ok = pa.types.is_float32(element) or pa.types.is_float64(element)
    elif wanted.type == "Int8Vector":
        ok = pa.types.is_int8(element)
    else:
        ok = pa.types.is_uint8(element)
    if not ok:
        judge.problem(f"{intro}: write {shape}")


def _vector_element(wanted: Field) -> str:
    return {"FloatVector": "float32", "Int8Vector": "int8"}.get(wanted.type, "uint8")


def _vector_length(wanted: Field) -> int | None:
    if wanted.dim is None:
        return None
    if wanted.type == "BinaryVector":
        return wanted.dim // 8
    if wanted.type in ("Float16Vector", "BFloat16Vector"):
        return wanted.dim * 2
    return wanted.dim


def sample_columns(columns: pa.Schema, schema: CollectionSchema) -> list[str]:
    """The columns whose values :func:`check` looks at (vectors first): what a sample of the data must
    read. Scalar columns other than ``VarChar`` (only nulls to find there) are left out."""
    vectors, others = [], []
    for f in columns:
        wanted = schema.field(f.name)
        if f.name == "$meta":
            if schema.dynamic and _is_string(f.type):
                others.append(f.name)
        elif wanted is None or not wanted.known or (wanted.primary and wanted.auto_id) or pa.types.is_null(
                f.type):
            continue
        elif wanted.type in (*_LIST_VECTORS, "SparseFloatVector"):
            vectors.append(f.name)
        elif wanted.type in ("JSON", "Array") or (wanted.type == "VarChar" and wanted.max_length is not None):
            others.append(f.name)
    return vectors + others


def _deep_problems(judge: _Judge, rows: pa.Table, schema: CollectionSchema, scope: str) -> None:
    """Checks that need values, on the rows read (``scope`` names them): null vectors, vector lengths
    against dim, nulls, JSON texts, VarChar lengths and Array capacities. Each names its first bad row."""
    for name in rows.column_names:
        column = rows.column(name)
        wanted = schema.field(name)
        nulls = _at(_first(pc.is_null(column)), scope)
        if name == "$meta" and schema.dynamic and _is_string(column.type):
            if column.null_count:
                judge.problem(f"column '$meta' has {column.null_count} null value(s) {nulls}: write a JSON "
                              "object (such as {}) in each row")
            _json_problems(judge, name, column, scope, meta=True)
            continue
        if wanted is None or not wanted.known or (wanted.primary and wanted.auto_id) or pa.types.is_null(
                column.type):
            continue
        vector = wanted.type in (*_LIST_VECTORS, "SparseFloatVector")
        if column.null_count:
            if vector:
                judge.problem(f"column '{name}' has {column.null_count} null vector(s) {nulls}: every row "
                              "needs a vector")
            elif wanted.type == "JSON" and not wanted.nullable:  # 2.3 reads a null as "", not JSON
                judge.problem(f"column '{name}' has {column.null_count} null value(s) {nulls} and field "
                              f"'{name}' is not nullable: write a JSON text (such as {{}}) in each row")
            elif not (wanted.nullable or wanted.has_default):
                judge.refused_since(STRICT_VALUES, f"column '{name}' has {column.null_count} null value(s) "
                                    f"{nulls} and field '{name}' is not nullable",
                                    older="imports them as zeros or empty values")
        if wanted.type in ("JSON", "SparseFloatVector") and _is_string(column.type):
            _json_problems(judge, name, column, scope, meta=False)
        elif wanted.type == "VarChar" and wanted.max_length is not None and _is_string(column.type):
            _too_long(judge, name, column, None, wanted.max_length, scope, f"field '{name}' takes")
        if wanted.type in _BYTE_VECTORS and pa.types.is_binary(column.type):
            _vector_lengths(judge, name, pc.binary_length(column), wanted, scope, unit="bytes")
        elif (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
                or pa.types.is_fixed_size_list(column.type)):
            _list_values(judge, name, column, wanted, scope)


def _first(mask: pa.ChunkedArray) -> int | None:
    """The index of the first true value of ``mask`` (nulls count as false), or None."""
    index: int = pc.index(pc.fill_null(mask, False), True).as_py()
    return None if index < 0 else index


def _at(row: int | None, scope: str) -> str:
    return f"(first bad row {row}, in {scope})" if row is not None else f"(in {scope})"


def _list_values(judge: _Judge, name: str, column: pa.ChunkedArray, wanted: Field, scope: str) -> None:
    values = pc.list_flatten(column)
    parents = pc.list_parent_indices(column)
    if values.null_count:
        row = parents[_first(pc.is_null(values)) or 0].as_py()
        judge.refused_since(NULL_LIST_ELEMENTS, f"column '{name}' has null elements inside its lists "
                            f"{_at(row, scope)}", older="import them as zeros")
    lengths = pc.list_value_length(column)
    if wanted.type != "Array":
        _vector_lengths(judge, name, lengths, wanted, scope, unit="values")
        return
    high = pc.max(lengths).as_py()
    if wanted.max_capacity is not None and high is not None and high > wanted.max_capacity:
        row = _first(pc.greater(lengths, wanted.max_capacity))
        judge.refused_since(STRICT_VALUES, f"column '{name}' holds a list of {high} elements "
                            f"{_at(row, scope)}; field '{name}' takes at most {wanted.max_capacity}",
                            older="import it")
    if wanted.element_type == "VarChar" and wanted.max_length is not None and _is_string(values.type):
        _too_long(judge, name, values, parents, wanted.max_length, scope,
                  f"the elements of field '{name}' take")


def _too_long(judge: _Judge, name: str, texts: pa.ChunkedArray, parents: pa.ChunkedArray | None, most: int,
              scope: str, takes: str) -> None:
    """Texts over ``most`` characters; ``parents`` maps list elements to their rows."""
    lengths = pc.utf8_length(texts)
    longest = pc.max(lengths).as_py()
    if longest is None or longest <= most:
        return
    row = _first(pc.greater(lengths, most))
    if parents is not None and row is not None:
        row = parents[row].as_py()
    judge.refused_since(STRICT_VALUES, f"column '{name}' holds a text of {longest} characters "
                        f"{_at(row, scope)}; {takes} at most {most}", older="import it")


def _vector_lengths(judge: _Judge, name: str, lengths: pa.ChunkedArray, wanted: Field, scope: str, *,
                    unit: str) -> None:
    length = _vector_length(wanted)
    low, high = pc.min(lengths).as_py(), pc.max(lengths).as_py()
    if length is None or low is None or low == high == length:
        return
    found = str(low) if low == high else f"{low} to {high}"
    row = _first(pc.not_equal(lengths, length))
    judge.problem(f"column '{name}' holds vectors of {found} {unit} {_at(row, scope)}; collection field "
                  f"'{name}' is {wanted.describe()}: write {length} {unit} per row")


def _json_problems(judge: _Judge, name: str, column: pa.ChunkedArray, scope: str, *, meta: bool) -> None:
    bad = not_object = 0
    example = ""
    first_bad = first_other = None
    for row, text in enumerate(column.to_pylist()):
        if text is None:
            continue
        try:
            value = json.loads(text)
        except ValueError:
            bad += 1
            if first_bad is None:
                first_bad, example = row, text
            continue
        if meta and not isinstance(value, dict):
            not_object += 1
            first_other = row if first_other is None else first_other
    if bad:
        judge.problem(f"column '{name}' has {bad} text(s) that are not valid JSON {_at(first_bad, scope)}, "
                      f"e.g. {_clip(example)!r}")
    if not_object:
        judge.refused_since(STRICT_VALUES, f"column '{name}' has {not_object} JSON value(s) that are not "
                            f"objects {_at(first_other, scope)}", older="import them")


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t))  # not large_string: the server refuses it (2.3.5, tested)


def _show(t: pa.DataType) -> str:
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{_show(t.value_type)}> of unknown length"
    if pa.types.is_fixed_size_list(t):
        return f"fixed_size_list<{_show(t.value_type)}, {t.list_size}>"
    return {"float": "float32", "double": "float64"}.get(str(t), str(t))

