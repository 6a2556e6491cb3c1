"""JSON Schema loading and the field list that prompts, the normaliser and reports read."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from .errors import InputError
from .i18n import pick


@dataclass(frozen=True)
class Field:
    """One property of the schema, flattened for templates and reports."""

    path: str
    """Dotted path from the root, with ``[]`` for array items, e.g. ``用药[].药名``."""
    name: str
    types: tuple[str, ...]
    description: str = ""
    enum: tuple[Any, ...] = ()
    format: str | None = None
    required: bool = False
    grounded: bool = False
    """True when the schema marks the value as copied verbatim from the record (``x-grounded``)."""
    children: tuple["Field", ...] = ()

    @property
    def type_label(self) -> str:
        names = [t for t in self.types if t != "null"]
        label = "/".join(names) or "null"
        return label + ("|null" if "null" in self.types else "")


@dataclass(frozen=True)
class Schema:
    """A loaded JSON Schema with its flattened top-level fields."""

    data: dict[str, Any]
    name: str
    sha256: str
    fields: tuple[Field, ...] = field(default=())

    @property
    def title(self) -> str:
        return str(self.data.get("title", self.name))

    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


def load_schema(path: str | Path) -> Schema:
    """Load and check a JSON Schema file. Raises ``InputError`` naming the file and the problem."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise InputError(
            pick(
                "找不到 schema 文件：{path}。请用 --schema 指定一个 JSON Schema 文件，例如 schemas/admission.json。",
                "Schema file not found: {path}. Pass a JSON Schema file with --schema, e.g. schemas/admission.json.",
                path=path,
            )
        ) from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(
            pick(
                "schema 文件 {path} 不是合法的 JSON：第 {line} 行，{error}。",
                "Schema file {path} is not valid JSON: line {line}, {error}.",
                path=path, line=exc.lineno, error=exc.msg,
            )
        ) from exc
    return schema_from_dict(data, name=path.stem, raw=raw)


def schema_from_dict(data: Any, name: str = "schema", raw: str | None = None) -> Schema:
    """Check a schema given as a dict and flatten its fields."""
    if not isinstance(data, dict) or data.get("type") != "object" or "properties" not in data:
        raise InputError(
            pick(
                "schema「{name}」的根必须是带 properties 的 object。",
                'Schema "{name}" must have an object with "properties" at its root.',
                name=name,
            )
        )
    try:
        jsonschema.validators.validator_for(data).check_schema(data)
    except jsonschema.SchemaError as exc:
        location = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise InputError(
            pick(
                "schema「{name}」无效，位置 {location}：{error}",
                'Schema "{name}" is invalid at {location}: {error}',
                name=name, location=location, error=exc.message,
            )
        ) from exc

    canonical = raw if raw is not None else json.dumps(data, ensure_ascii=False, sort_keys=True)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return Schema(data=data, name=name, sha256=digest, fields=tuple(flatten_fields(data)))


def flatten_fields(node: dict[str, Any], prefix: str = "") -> list[Field]:
    """Describe each property of an object schema, recursing into nested objects and arrays of objects."""
    required = set(node.get("required", []))
    fields = []
    for name, spec in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        fields.append(_describe(name, path, spec, name in required))
    return fields


def _describe(name: str, path: str, spec: dict[str, Any], required: bool) -> Field:
    types = schema_types(spec)
    children: list[Field] = []
    if "object" in types:
        children = flatten_fields(spec, prefix=f"{path}.")
    elif "array" in types and isinstance(spec.get("items"), dict):
        items = spec["items"]
        if "object" in schema_types(items):
            children = flatten_fields(items, prefix=f"{path}[].")
    return Field(
        path=path,
        name=name,
        types=types,
        description=str(spec.get("description", "")),
        enum=tuple(spec.get("enum", ())),
        format=spec.get("format"),
        required=required,
        grounded=bool(spec.get("x-grounded", False)),
        children=tuple(children),
    )


def schema_types(spec: dict[str, Any]) -> tuple[str, ...]:
    """Return the JSON types a subschema allows, looking through ``type`` and ``anyOf``/``oneOf`` branches."""
    declared = spec.get("type")
    if isinstance(declared, str):
        return (declared,)
    if isinstance(declared, list):
        return tuple(declared)
    branches = spec.get("anyOf") or spec.get("oneOf") or []
    found: list[str] = []
    for branch in branches:
        for type_name in schema_types(branch):
            if type_name not in found:
                found.append(type_name)
    if not found and "enum" in spec:
        found = sorted({_json_type(v) for v in spec["enum"]})
    return tuple(found)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"
