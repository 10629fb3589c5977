"""Pure checks of a parquet file's schema (from its footer) against a collection's schema.

Rules from ``reference/import-api.md`` section 6. Every problem is reported, not just the first, in
words that say what to write instead. Choices where the reference is silent: a nullable field or one
with a default value may have no column; ``float32`` columns are not widened to ``Double``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from .footer import Footer
from .schema import CollectionSchema, Field

_INT_BITS = {"Int8": 8, "Int16": 16, "Int32": 32, "Int64": 64}
_SCALARS = {"Bool": "bool", "Float": "float32", "Double": "float64", "VarChar": "string",
            "JSON": "string (a JSON text)", "SparseFloatVector": "string (a JSON text)"}
GB = 1000**3


def check(footer: Footer, schema: CollectionSchema, *, size: int, size_limit: int | None,
          fixed_size_list_ok: bool = False) -> list[str]:
    """Every problem that would make the server reject this file; an empty list when it looks fine."""
    problems = size_problems(size, size_limit)
    columns = {f.name: f.type for f in footer.schema}
    for name, arrow_type in columns.items():
        field = schema.field(name)
        if name == "$meta":
            if not schema.dynamic:
                problems.append("column '$meta' needs a collection with the dynamic field enabled: drop it")
            elif not _is_string(arrow_type):
                problems.append(f"column '$meta' is {arrow_type}; write a string holding a JSON object")
        elif field is None:
            hint = " (or move it into a '$meta' JSON column)" if schema.dynamic else ""
            problems.append(f"column '{name}' is not a field of collection '{schema.name}': drop it{hint}")
        elif field.primary and field.auto_id:
            problems.append(f"column '{name}' is the auto-ID primary key, which the server generates: "
                            "drop the column")
        elif field.function_output:
            problems.append(f"column '{name}' is the output of a function, which the server computes: "
                            "drop the column")
        else:
            problems.extend(_type_problems(name, arrow_type, field, fixed_size_list_ok))
    for field in schema.fields:
        if field.name in columns or field.name == "$meta":
            continue
        if (field.primary and field.auto_id) or field.function_output or field.nullable or field.has_default:
            continue
        problems.append(f"collection field '{field.name}' ({field.describe()}) has no column: "
                        f"add a column '{field.name}'")
    if footer.first_rows is not None:
        problems.extend(_deep_problems(footer.first_rows, schema))
    return problems


def size_problems(size: int, limit: int | None) -> list[str]:
    """The per-file size limit, checked from the listing alone."""
    if limit is None or size <= limit:
        return []
    return [f"the file is {size / GB:.1f} GB; this target takes at most {limit / GB:g} GB per file: split it"]


def _type_problems(name: str, t: pa.DataType, field: Field, fixed_ok: bool) -> Iterator[str]:
    want = field.describe()
    intro = f"column '{name}' is {_show(t)}; collection field '{name}' is {want}"
    kind = field.type
    if kind in _INT_BITS:
        bits = _INT_BITS[kind]
        if not (pa.types.is_signed_integer(t) and t.bit_width <= bits):
            yield f"{intro}: write int{bits} (or a narrower signed integer)"
    elif kind in _SCALARS and not _SCALAR_OK[kind](t):
        yield f"{intro}: write {_SCALARS[kind]}"
    elif kind == "Array":
        yield from _list_problems(intro, t, field, fixed_ok, vector=False)
    elif kind in ("FloatVector", "BinaryVector", "Float16Vector", "BFloat16Vector", "Int8Vector"):
        yield from _list_problems(intro, t, field, fixed_ok, vector=True)


def _list_problems(intro: str, t: pa.DataType, field: Field, fixed_ok: bool, *,
                   vector: bool) -> Iterator[str]:
    expected = _vector_element(field) if vector else field.element_type or "elements"
    length = _vector_length(field) if vector else None
    wanted = f"list<{expected}>" + (f" of {length} values" if length is not None else "")
    if pa.types.is_fixed_size_list(t):
        if not fixed_ok:
            yield f"{intro}: fixed_size_list is rejected by Milvus before 2.6; write {wanted} (or set " \
                  "settings.fixed_size_list: allow for a 2.6+ server)"
        if length is not None and t.list_size != length:
            yield f"{intro}: it holds {t.list_size} values, the field needs {length}"
    elif not (pa.types.is_list(t) or pa.types.is_large_list(t)):
        yield f"{intro}: write {wanted}"
        return
    element = t.value_type
    if vector:
        ok = {"FloatVector": pa.types.is_float32(element) or pa.types.is_float64(element),
              "BinaryVector": pa.types.is_uint8(element),
              "Float16Vector": pa.types.is_uint8(element),
              "BFloat16Vector": pa.types.is_uint8(element),
              "Int8Vector": pa.types.is_int8(element)}[field.type]
    else:
        ok = _element_ok(element, field.element_type)
    if not ok:
        yield f"{intro}: write {wanted}"


def _element_ok(element: pa.DataType, kind: str | None) -> bool:
    if kind is None:
        return True
    if kind in _INT_BITS:
        return bool(pa.types.is_signed_integer(element) and element.bit_width <= _INT_BITS[kind])
    test = _SCALAR_OK.get(kind)
    return test is None or test(element)


def _vector_element(field: Field) -> str:
    return {"FloatVector": "float32", "BinaryVector": "uint8", "Float16Vector": "uint8",
            "BFloat16Vector": "uint8", "Int8Vector": "int8"}[field.type]


def _vector_length(field: Field) -> int | None:
    if field.dim is None:
        return None
    if field.type == "BinaryVector":
        return field.dim // 8
    if field.type in ("Float16Vector", "BFloat16Vector"):
        return field.dim * 2
    return field.dim


def _deep_problems(rows: pa.Table, schema: CollectionSchema) -> Iterator[str]:
    """Checks that need values: vector lengths against dim, nulls inside lists (first row group)."""
    for name in rows.column_names:
        field = schema.field(name)
        column = rows.column(name)
        if field is None or not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
            continue
        flat = pc.list_flatten(column)
        if flat.null_count:
            yield f"column '{name}' has null elements inside its lists (first row group): Milvus rejects them"
        length = _vector_length(field) if field.type in ("FloatVector", "BinaryVector", "Float16Vector",
                                                         "BFloat16Vector", "Int8Vector") else None
        if length is None:
            continue
        lengths = pc.list_value_length(column)
        low, high = pc.min(lengths).as_py(), pc.max(lengths).as_py()
        if low is None:
            continue
        if low != length or high != length:
            found = str(low) if low == high else f"{low} to {high}"
            yield (f"column '{name}' holds vectors of {found} values (first row group); collection field "
                   f"'{name}' is {field.describe()}: write {length} values per row")


def _is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


_SCALAR_OK: dict[str, Callable[[pa.DataType], bool]] = {
    "Bool": pa.types.is_boolean, "Float": pa.types.is_float32, "Double": pa.types.is_float64,
    "VarChar": _is_string, "JSON": _is_string, "SparseFloatVector": _is_string,
}


def _show(t: pa.DataType) -> str:
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{_show(t.value_type)}> of unknown length"
    if pa.types.is_fixed_size_list(t):
        return f"fixed_size_list<{_show(t.value_type)}, {t.list_size}>"
    return {"float": "float32", "double": "float64"}.get(str(t), str(t))
