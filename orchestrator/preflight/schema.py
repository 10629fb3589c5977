"""A collection's schema, as much of it as a parquet file must agree with.

Read from a describe call (Zilliz/Milvus REST v2 ``collections/describe``: ``type`` as a name such as
``FloatVector``, ``params`` as ``[{key, value}]``) or from pymilvus' ``describe_collection`` (``type``
as a ``DataType`` number, ``params`` as a dict); both shapes, and a JSON file holding either, are
accepted so that a manifest can name a saved describe output.

Field types this module does not know (newer servers add them: ``Geometry`` 24, ``Timestamptz`` 26,
struct fields) are kept under their own name with ``known=False``: the check still sees that the
field exists and whether it needs a column, and reports its values as unchecked.
"""

from __future__ import annotations

import json
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SchemaError

# pymilvus DataType numbers -> the REST names.
_TYPE_NUMBERS = {
    1: "Bool", 2: "Int8", 3: "Int16", 4: "Int32", 5: "Int64", 10: "Float", 11: "Double",
    20: "VarChar", 21: "VarChar", 22: "Array", 23: "JSON", 100: "BinaryVector", 101: "FloatVector",
    102: "Float16Vector", 103: "BFloat16Vector", 104: "SparseFloatVector", 105: "Int8Vector",
}
TYPES = frozenset(_TYPE_NUMBERS.values())
# Types newer servers describe, which the rules do not cover (checked for presence only).
_UNKNOWN_NUMBERS = {24: "Geometry", 25: "Text", 26: "Timestamptz", 106: "ArrayOfVector", 200: "ArrayOfStruct",
                    201: "Struct"}
VECTOR_TYPES = frozenset({"BinaryVector", "FloatVector", "Float16Vector", "BFloat16Vector", "Int8Vector",
                          "SparseFloatVector"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    name: str
    type: str  # one of TYPES
    primary: bool = False
    auto_id: bool = False
    function_output: bool = False
    nullable: bool = False
    has_default: bool = False
    dim: int | None = None
    element_type: str | None = None  # for Array
    max_length: int | None = None  # VarChar, and the elements of Array(VarChar)
    max_capacity: int | None = None  # Array
    known: bool = True  # False: a type this orchestrator does not know (see the module docstring)

    def describe(self) -> str:
        if self.dim is not None:
            return f"{self.type}(dim={self.dim})"
        if self.element_type is not None:
            return f"Array({self.element_type})"
        return self.type


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectionSchema:
    name: str
    fields: tuple[Field, ...]
    dynamic: bool = False

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


def from_describe(data: Any, *, where: str) -> CollectionSchema:
    """Build a schema from either describe shape; ``where`` names the origin in errors."""
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = data["data"]  # a whole REST reply saved to a file
    if not isinstance(data, dict) or not isinstance(data.get("fields"), list):
        raise SchemaError(f"{where}: expected a collection description with a 'fields' list")
    name = str(data.get("collectionName") or data.get("collection_name") or "")
    collection_auto_id = bool(data.get("autoID", data.get("autoId", data.get("auto_id", False))))
    outputs = {out for fn in _list(data.get("functions")) if isinstance(fn, dict)
               for out in _list(fn.get("outputFieldNames", fn.get("output_field_names")))
               if isinstance(out, str)}
    fields = []
    structs = data.get("structArrayFields", data.get("struct_array_fields")) or []
    for i, raw in enumerate([*data["fields"], *(structs if isinstance(structs, list) else [])]):
        if not isinstance(raw, dict) or not raw.get("name") or not isinstance(raw["name"], str):
            raise SchemaError(f"{where}: fields[{i}] has no name")
        if i >= len(data["fields"]):  # a struct array field: its columns are not checked here
            raw = {**raw, "type": raw.get("type") or "ArrayOfStruct"}
        fields.append(_field(raw, where=f"{where}: fields[{i}]", collection_auto_id=collection_auto_id,
                             outputs=outputs))
    dynamic = bool(data.get("enableDynamicField", data.get("enable_dynamic_field", False)))
    return CollectionSchema(name=name, fields=tuple(fields), dynamic=dynamic)


def load_file(path: Path) -> CollectionSchema:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise SchemaError(f"{path}: not valid JSON: {exc}") from exc
    return from_describe(data, where=str(path))


def _field(raw: dict[str, Any], *, where: str, collection_auto_id: bool, outputs: set[str]) -> Field:
    type_name = _type(raw.get("type", raw.get("dataType")), where)
    params = raw.get("params") or raw.get("elementTypeParams") or {}
    if isinstance(params, list):
        params = {p["key"]: p.get("value") for p in params
                  if isinstance(p, dict) and isinstance(p.get("key"), str)}
    params = params if isinstance(params, dict) else {}
    dim = params.get("dim")
    element = raw.get("elementType", raw.get("element_type"))
    primary = bool(raw.get("primaryKey", raw.get("is_primary", False)))
    return Field(
        name=str(raw["name"]),
        type=type_name,
        primary=primary,
        auto_id=primary and bool(raw.get("autoId", raw.get("auto_id", collection_auto_id))),
        function_output=bool(raw.get("isFunctionOutput", raw.get("is_function_output", False)))
        or raw["name"] in outputs,
        nullable=bool(raw.get("nullable", False)),
        has_default=raw.get("defaultValue", raw.get("default_value")) is not None,
        dim=_number(dim) if type_name != "SparseFloatVector" else None,
        element_type=_type(element, where) if type_name == "Array" and element not in (None, 0, "") else None,
        max_length=_number(params.get("max_length", params.get("maxLength"))),
        max_capacity=_number(params.get("max_capacity", params.get("maxCapacity"))),
        known=type_name in TYPES and (type_name != "Array" or element in (None, 0, "")
                                      or _type(element, where) in TYPES),
    )


def _number(value: Any) -> int | None:
    """A whole number given as a number or a string; None for anything else (a describe reply's
    field is read, never trusted)."""
    if isinstance(value, bool) or not isinstance(value, int | str) or len(str(value)) > 20:
        return None
    try:
        return int(value) if value != "" else None
    except ValueError:
        return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _type(value: Any, where: str) -> str:
    """The REST name of a type given by name or number; a type not in :data:`TYPES` keeps its own
    name (``DataType.GEOMETRY`` -> ``Geometry``, 26 -> ``type 26``)."""
    name = getattr(value, "name", None)  # a pymilvus DataType member
    if isinstance(value, int) and value in _TYPE_NUMBERS:
        return _TYPE_NUMBERS[value]
    if isinstance(name, str):
        value = name.replace("_", "")
    if isinstance(value, str) and value:
        for known in TYPES:
            if known.lower() == value.lower().replace("_", ""):
                return known
        return value if not value.isupper() else value.capitalize()
    if isinstance(value, int):
        return _UNKNOWN_NUMBERS.get(value, f"type {value}")
    raise SchemaError(f"{where}: no field type (got {reprlib.repr(value)})")
