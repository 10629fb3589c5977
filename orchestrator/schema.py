"""A collection's schema, as much of it as a parquet file must agree with.

Read from a describe call (Zilliz/Milvus REST v2 ``collections/describe``: ``type`` as a name such as
``FloatVector``, ``params`` as ``[{key, value}]``) or from pymilvus' ``describe_collection`` (``type``
as a ``DataType`` number, ``params`` as a dict); both shapes, and a JSON file holding either, are
accepted so that a manifest can name a saved describe output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SchemaError

# pymilvus DataType numbers -> the REST names.
_TYPE_NUMBERS = {
    1: "Bool", 2: "Int8", 3: "Int16", 4: "Int32", 5: "Int64", 10: "Float", 11: "Double",
    20: "VarChar", 21: "VarChar", 22: "Array", 23: "JSON", 100: "BinaryVector", 101: "FloatVector",
    102: "Float16Vector", 103: "BFloat16Vector", 104: "SparseFloatVector", 105: "Int8Vector",
}
TYPES = frozenset(_TYPE_NUMBERS.values())
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
    outputs = {out for fn in data.get("functions") or [] if isinstance(fn, dict)
               for out in fn.get("outputFieldNames", fn.get("output_field_names", [])) or []}
    fields = []
    for i, raw in enumerate(data["fields"]):
        if not isinstance(raw, dict) or not raw.get("name"):
            raise SchemaError(f"{where}: fields[{i}] has no name")
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
        params = {p.get("key"): p.get("value") for p in params if isinstance(p, dict)}
    dim = params.get("dim") if isinstance(params, dict) else None
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
        dim=int(dim) if dim not in (None, "") and type_name != "SparseFloatVector" else None,
        element_type=_type(element, where) if type_name == "Array" and element not in (None, 0, "") else None,
    )


def _type(value: Any, where: str) -> str:
    if isinstance(value, int) and value in _TYPE_NUMBERS:
        return _TYPE_NUMBERS[value]
    if isinstance(value, str):
        for name in TYPES:
            if name.lower() == value.lower():
                return name
    raise SchemaError(f"{where}: unknown field type {value!r}")
