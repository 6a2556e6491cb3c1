"""Compile a JSON Schema into a Lark grammar for constrained decoding, with record-grounded string fields.

The grammar is written in llguidance's Lark dialect. Parts of the schema that hold no grounded field are
embedded whole as ``%json {...}`` blocks, so llguidance's JSON Schema compiler enforces their types, enums,
numeric ranges, formats and lengths. Objects and arrays that contain a grounded field are spelled out as
Lark rules, and each grounded string becomes a terminal that matches a non-empty contiguous substring of the
record, JSON-escaped character by character.

The output layout is fixed to what ``json.dumps(value, ensure_ascii=False)`` writes: ``", "`` between items,
``": "`` after keys, no other whitespace, properties in schema order. Few-shot answers and training labels
use the same layout, and a model cannot spend its tokens on blank lines.

This module imports no torch and no llguidance: it only writes grammar text, so it is cheap to test.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..i18n import pick
from ..records import TRUNCATION_MARKER
from ..schema import Schema, schema_types
from ..validation import json_path

JSON_LAYOUT = {"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": False}
"""llguidance JSON options that match ``json.dumps(value, ensure_ascii=False)``."""

DEFAULT_MAX_ITEMS = 32
"""Item limit for arrays whose schema sets no ``maxItems``, so that every output can end."""

MAX_SPANS_PER_VALUE = 16
"""Occurrences kept per grounded value in ``Completion.spans``, because a short value can occur hundreds of times."""

# Keywords the constrained grammar enforces. Everything else, apart from annotations, is rejected before
# llguidance sees the schema, so that the error names the keyword and where it sits. llguidance 1.9.1 itself
# reports "Unimplemented keys" for uniqueItems, contains, if/then, not, dependentRequired, propertyNames and
# unevaluatedProperties, without the location.
SUPPORTED_KEYWORDS = frozenset(
    {
        "type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions",
        "properties", "required", "additionalProperties",
        "items", "prefixItems", "minItems", "maxItems",
        "minLength", "maxLength", "pattern", "format",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    }
)
ANNOTATION_KEYWORDS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"}
)
SUPPORTED_FORMATS = frozenset({"date", "date-time", "time", "duration", "email", "hostname", "ipv4", "ipv6", "uuid", "uri"})
"""String formats llguidance 1.9.1 enforces. It reports any other format as unknown."""

_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_SINGLE = ("items", "additionalProperties")


# --- checking the schema -----------------------------------------------------------------------------------


def check_supported(data: Mapping[str, Any]) -> None:
    """Raise ``InputError`` naming the first keyword (and its schema location) that the grammar cannot enforce."""
    for location, node in _walk_schema(data, "#"):
        for keyword, value in node.items():
            _check_keyword(keyword, value, location)


def _check_keyword(keyword: str, value: Any, location: str) -> None:
    if keyword in ANNOTATION_KEYWORDS or keyword.startswith("x-"):
        return
    if keyword not in SUPPORTED_KEYWORDS:
        raise _unsupported(keyword, location)
    if keyword == "$ref" and not (isinstance(value, str) and value.startswith("#")):
        hint = pick("只支持本文件内的引用（#/$defs/…）。", "Only references inside the schema (#/$defs/...) are supported. ")
        raise _unsupported(f"$ref: {value}", location, hint)
    if keyword == "format" and value not in SUPPORTED_FORMATS:
        hint = pick("支持的格式：{formats}。", "Supported formats: {formats}. ", formats=", ".join(sorted(SUPPORTED_FORMATS)))
        raise _unsupported(f"format: {value}", location, hint)
    if keyword == "items" and isinstance(value, list):
        raise _unsupported("items (list form)", location, pick("请改用 prefixItems。", "Use prefixItems instead. "))


def _unsupported(keyword: str, location: str, hint: str = "") -> InputError:
    """Build the error for a keyword the grammar cannot enforce; ``hint`` ends with a full stop and a space."""
    return InputError(
        pick(
            "schema 中位置 {location} 的关键字 {keyword} 不受约束解码支持。{hint}请删去它，或用 --free 关闭约束解码。",
            "Schema keyword {keyword} at {location} is not supported by constrained decoding. {hint}"
            "Remove it, or turn constrained decoding off with --free.",
            keyword=keyword, location=location, hint=hint,
        )
    )


def _walk_schema(node: Any, location: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield every subschema object with its JSON-pointer location, depth first."""
    if not isinstance(node, dict):
        return
    yield location, node
    for keyword in _SUBSCHEMA_MAPS:
        children = node.get(keyword)
        if isinstance(children, dict):
            for name, child in children.items():
                yield from _walk_schema(child, f"{location}/{keyword}/{name}")
    for keyword in _SUBSCHEMA_LISTS:
        children = node.get(keyword)
        if isinstance(children, list):
            for index, child in enumerate(children):
                yield from _walk_schema(child, f"{location}/{keyword}/{index}")
    for keyword in _SUBSCHEMA_SINGLE:
        yield from _walk_schema(node.get(keyword), f"{location}/{keyword}")


# --- grounded fields ---------------------------------------------------------------------------------------


def field_nodes(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Map each field path (``姓名``, ``入院诊断[]``, ``用药[].药名``) to its subschema, following local ``$ref``s."""
    found: dict[str, dict[str, Any]] = {}
    _collect_fields(dict(data), "", data, found, ())
    return found


def _collect_fields(node: dict[str, Any], path: str, root: Mapping[str, Any], found: dict[str, dict[str, Any]], seen: tuple[str, ...]) -> None:
    node, seen = _follow_ref(node, root, seen)
    if path:
        found[path] = node
    for name, child in (node.get("properties") or {}).items():
        if isinstance(child, dict):
            _collect_fields(child, f"{path}.{name}" if path else name, root, found, seen)
    items = node.get("items")
    if isinstance(items, dict):
        _collect_fields(items, f"{path}[]", root, found, seen)


def _follow_ref(node: dict[str, Any], root: Mapping[str, Any], seen: tuple[str, ...]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Return the subschema a local ``$ref`` points to, with the refs followed so far (to stop on recursion)."""
    while isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if ref in seen:
            return {}, seen
        seen = (*seen, ref)
        target: Any = root
        for part in ref.removeprefix("#").strip("/").split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            raise InputError(
                pick("schema 中的引用 {ref} 找不到目标。", "Schema reference {ref} points to nothing.", ref=ref)
            )
        node = target
    return node, seen


def grounded_paths(schema: Schema, extra_paths: Sequence[str] = (), use_marks: bool = True) -> tuple[str, ...]:
    """Return the field paths decoded as record substrings: fields marked ``x-grounded`` plus ``extra_paths``.

    A path naming an array of strings (``入院诊断``) grounds its items (``入院诊断[]``). Raises ``InputError``
    for a path that is not in the schema or is not a string field.
    """
    nodes = field_nodes(schema.data)
    if use_marks:
        _check_marks_reachable(schema.data, nodes)
    chosen = [path for path, node in nodes.items() if use_marks and node.get("x-grounded") is True]
    for path in extra_paths:
        path = path.strip().removeprefix("$.")
        if path in nodes and "array" in schema_types(nodes[path]) and f"{path}[]" in nodes:
            path = f"{path}[]"
        _check_groundable(path, nodes)
        if path not in chosen:
            chosen.append(path)
    for path in chosen:
        _check_groundable(path, nodes)
    return tuple(chosen)


def _check_marks_reachable(data: Mapping[str, Any], nodes: Mapping[str, dict[str, Any]]) -> None:
    """Reject an ``x-grounded`` mark that no plain field path reaches (one inside ``anyOf``, for example)."""
    reachable = {id(node) for node in nodes.values()}
    for location, node in _walk_schema(data, "#"):
        if node.get("x-grounded") is True and id(node) not in reachable:
            raise InputError(
                pick(
                    "schema 位置 {location} 的 x-grounded 不在普通的 properties/items 路径上（例如在 anyOf 中），"
                    "照抄原文不支持这种位置。请把该字段移出 anyOf/oneOf/allOf，或删去 x-grounded。",
                    "The x-grounded mark at {location} is not on a plain properties/items path (it may sit inside "
                    "anyOf), and grounding does not support that. Move the field out of anyOf/oneOf/allOf, or "
                    "remove x-grounded.",
                    location=location,
                )
            )


def _check_groundable(path: str, nodes: Mapping[str, dict[str, Any]]) -> None:
    strings = sorted(p for p, n in nodes.items() if "string" in schema_types(n))
    if path not in nodes:
        raise InputError(
            pick(
                "要求照抄原文的字段 {path} 不在 schema 中。可选的字符串字段：{choices}。",
                "Grounded field {path} is not in the schema. String fields: {choices}.",
                path=path, choices=", ".join(strings) or "-",
            )
        )
    node = nodes[path]
    types = set(schema_types(node))
    blocking = [k for k in ("enum", "const", "pattern", "format", "anyOf", "oneOf", "allOf") if k in node]
    if not types or types - {"string", "null"} or "string" not in types or blocking:
        reason = ", ".join(blocking) or "type " + "/".join(sorted(types) or ["?"])
        raise InputError(
            pick(
                "字段 {path} 不能照抄原文（{reason}）：照抄只适用于 type 为 string 或 [string, null]、且没有 enum、"
                "const、pattern、format 的字段。",
                "Field {path} cannot be grounded ({reason}): grounding needs type string or [string, null] "
                "without enum, const, pattern or format.",
                path=path, reason=reason,
            )
        )


def grounded_spans(value: Any, paths: Sequence[str], record_text: str) -> dict[str, list[list[int]]]:
    """Locate every grounded string value of an extraction in the record.

    Returns ``{json_path: [[start, end], ...]}`` with character offsets such that ``record_text[start:end]``
    equals the value, for each occurrence in record order (at most ``MAX_SPANS_PER_VALUE``). Occurrences inside
    or across a truncation marker do not count. A value that is not in the record (possible only when decoding
    was not grounded) gets no entry.
    """
    spans: dict[str, list[list[int]]] = {}
    for path in paths:
        for parts, found in _values_at(value, _split_path(path), []):
            if isinstance(found, str) and found:
                offsets = _occurrences(record_text, found)
                if offsets:
                    spans[json_path(parts)] = offsets
    return spans


def _split_path(path: str) -> list[str]:
    """``用药[].药名`` → ``["用药", "[]", "药名"]``."""
    parts: list[str] = []
    for name in path.split("."):
        stem = name.removesuffix("[]")
        parts.append(stem)
        parts.extend("[]" for _ in range((len(name) - len(stem)) // 2))
    return [p for p in parts if p]


def _values_at(value: Any, parts: list[str], prefix: list[Any]) -> Iterator[tuple[list[Any], Any]]:
    if not parts:
        yield prefix, value
        return
    head, rest = parts[0], parts[1:]
    if head == "[]":
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from _values_at(item, rest, [*prefix, index])
    elif isinstance(value, dict) and head in value:
        yield from _values_at(value[head], rest, [*prefix, head])


def _occurrences(text: str, needle: str) -> list[list[int]]:
    offsets: list[list[int]] = []
    for base, segment in record_segments(text):
        start = segment.find(needle)
        while start >= 0 and len(offsets) < MAX_SPANS_PER_VALUE:
            offsets.append([base + start, base + start + len(needle)])
            start = segment.find(needle, start + 1)
    return offsets


# --- the grammar plan --------------------------------------------------------------------------------------


@dataclass
class _Rendering:
    """Per-record state while writing the grammar text."""

    record_text: str | None
    rules: list[str] = field(default_factory=list)
    uses_record: bool = False

    @property
    def length_limit(self) -> int | None:
        """No free string is longer than the record it is extracted from."""
        return max(1, len(self.record_text)) if self.record_text else None

    def rule(self, body: str) -> str:
        name = f"r{len(self.rules)}"
        self.rules.append(f"{name}: {body}")
        return name

    def terminal(self, body: str) -> str:
        name = f"T{len(self.rules)}"
        self.rules.append(f"{name}: {body}")
        return name


class _Node:
    def render(self, out: _Rendering) -> str:
        raise NotImplementedError


@dataclass
class _JsonLeaf(_Node):
    """A subschema without grounded fields, handed to llguidance's JSON Schema compiler as ``%json``."""

    schema: dict[str, Any]
    definitions: dict[str, Any]

    def render(self, out: _Rendering) -> str:
        body = cap_lengths(self.schema, out.length_limit)
        if isinstance(body, dict):
            body = {**self.definitions, **body, "x-guidance": JSON_LAYOUT}
        elif body is True:
            body = {"x-guidance": JSON_LAYOUT}
        return out.rule("%json " + json.dumps(body, ensure_ascii=False))


@dataclass
class _GroundedString(_Node):
    """A string copied from the record: a non-empty substring, JSON-escaped, within the schema's length limits."""

    nullable: bool
    min_length: int
    max_length: int | None
    fallback: _JsonLeaf

    def render(self, out: _Rendering) -> str:
        if not out.record_text:
            return self.fallback.render(out)
        out.uses_record = True
        low = max(1, self.min_length)
        high = "" if self.max_length is None else str(max(low, self.max_length))
        value = out.terminal(f'"\\"" (RECORD & /(?s:.{{{low},{high}}})/) "\\""')
        return f"({value} | \"null\")" if self.nullable else value


@dataclass
class _Object(_Node):
    """An object holding a grounded field: its listed properties in schema order, optional ones skippable."""

    properties: list[tuple[str, _Node, bool]]
    nullable: bool

    def render(self, out: _Rendering) -> str:
        members = [(f"{_literal(json.dumps(k, ensure_ascii=False) + ': ')} {n.render(out)}", r) for k, n, r in self.properties]
        # Walking back from the last member: `rest` writes the remaining members after one has been written
        # (each with a leading separator), `head` writes them when none has been written yet.
        rest = head = ""
        for index in range(len(members) - 1, -1, -1):
            member, required = members[index]
            if required:
                head = f"{member} {rest}".strip()
            elif head:
                head = out.rule(f"{member} {rest} | {head}".strip())
            else:
                head = f"({member} {rest})?".replace(" )", ")")
            if index > 0:
                separated = f'", " {member}' if required else f'(", " {member})?'
                rest = out.rule(f"{separated} {rest}".strip())
        value = out.rule(f'"{{" {head} "}}"' if head else '"{" "}"')
        return f'({value} | "null")' if self.nullable else value


@dataclass
class _Array(_Node):
    """An array whose items hold a grounded field."""

    items: _Node
    min_items: int
    max_items: int
    nullable: bool

    def render(self, out: _Rendering) -> str:
        item = self.items.render(out)
        options = []
        if self.min_items == 0:
            options.append('"[" "]"')
        if self.max_items > 0:
            low, high = max(self.min_items, 1) - 1, self.max_items - 1
            repeat = f' (", " {item}){{{low},{high}}}' if high > 0 else ""
            options.append(f'"[" {item}{repeat} "]"')
        if self.nullable:
            options.append('"null"')
        return out.rule(" | ".join(options))


def _record_terminals(record_text: str) -> list[str]:
    """Define ``RECORD``: any piece of one segment of the record, each character JSON-escaped as one chunk,
    so that an escape is never cut in half."""
    names = []
    lines = []
    for index, (_, segment) in enumerate(record_segments(record_text)):
        chunks = [json.dumps(character, ensure_ascii=False)[1:-1] for character in segment]
        names.append(f"RECORD{index}")
        lines.append(f"RECORD{index}: %regex " + json.dumps({"substring_chunks": chunks}, ensure_ascii=False))
    return [f"RECORD: {' | '.join(names)}", *lines]


def record_segments(record_text: str) -> list[tuple[int, str]]:
    """Split a record at the marker that ``truncate_middle`` puts where it cut text out.

    Returns ``(offset, segment)`` pairs. The marker is not record text, so a grounded value may not copy it or
    run across it.
    """
    segments = []
    offset = 0
    for segment in record_text.split(TRUNCATION_MARKER):
        if segment:
            segments.append((offset, segment))
        offset += len(segment) + len(TRUNCATION_MARKER)
    return segments or [(0, record_text)]


def _literal(text: str) -> str:
    """Quote text as a Lark string literal (JSON string syntax, which Lark reads)."""
    return json.dumps(text, ensure_ascii=False)


def cap_lengths(node: Any, limit: int | None) -> Any:
    """Return a copy of a subschema with every free string capped at ``limit`` characters and every array
    without ``maxItems`` capped at ``DEFAULT_MAX_ITEMS``, so that a model that never closes a string still ends.

    Strings with ``enum``, ``const``, ``format`` or ``pattern`` keep their own shape.
    """
    if not isinstance(node, dict):
        return node
    capped = {key: _cap_children(key, value, limit) for key, value in node.items()}
    types = set(schema_types(node))
    fixed_shape = any(k in node for k in ("enum", "const", "format", "pattern"))
    if "string" in types and not fixed_shape and limit is not None:
        capped["maxLength"] = max(min(node.get("maxLength", limit), limit), node.get("minLength", 0))
    if "array" in types and "maxItems" not in node:
        capped["maxItems"] = max(DEFAULT_MAX_ITEMS, node.get("minItems", 0))
    return capped


def _cap_children(keyword: str, value: Any, limit: int | None) -> Any:
    if keyword in _SUBSCHEMA_MAPS and isinstance(value, dict):
        return {name: cap_lengths(child, limit) for name, child in value.items()}
    if keyword in _SUBSCHEMA_LISTS and isinstance(value, list):
        return [cap_lengths(child, limit) for child in value]
    if keyword in _SUBSCHEMA_SINGLE:
        return cap_lengths(value, limit)
    return copy.deepcopy(value) if isinstance(value, (dict, list)) else value


class SchemaGrammar:
    """A schema compiled once into a grammar plan; ``lark(record_text)`` writes the grammar for one record."""

    def __init__(self, data: Mapping[str, Any], grounded: Sequence[str] = ()) -> None:
        check_supported(data)
        self.grounded = tuple(grounded)
        self._root = dict(data)
        self._definitions = {k: copy.deepcopy(data[k]) for k in ("$defs", "definitions") if k in data}
        self._plan = self._build(self._root, "", ())
        self._by_length: dict[tuple[int, bool], str] = {}

    @property
    def is_grounded(self) -> bool:
        return bool(self.grounded)

    def lark(self, record_text: str | None = None, thinking: bool = False) -> str:
        """Write the Lark grammar for one record (the record text matters for grounding and length limits).

        With ``thinking``, a free ``<think>…</think>`` block comes first and only the JSON after it is constrained.
        """
        if not (self.is_grounded and record_text):
            # without grounding, only the record's length matters, so equal lengths share one grammar text
            key = (len(record_text or ""), thinking)
            if key not in self._by_length:
                if len(self._by_length) >= 256:
                    self._by_length.clear()
                self._by_length[key] = self._write(record_text, thinking)
            return self._by_length[key]
        return self._write(record_text, thinking)

    def _write(self, record_text: str | None, thinking: bool) -> str:
        out = _Rendering(record_text=record_text)
        answer = self._plan.render(out)
        start = f'start: <think> /(?s:.*)/ </think> /\\n{{0,2}}/ {answer}' if thinking else f"start: {answer}"
        lines = [start, *out.rules]
        if out.uses_record:
            lines.extend(_record_terminals(record_text or ""))
        return "\n".join(lines) + "\n"

    def _build(self, node: dict[str, Any], path: str, seen: tuple[str, ...]) -> _Node:
        resolved, seen = _follow_ref(node, self._root, seen)
        if path in self.grounded:
            return self._grounded(resolved)
        if not self._holds_grounded(path):
            return _JsonLeaf(schema=node, definitions=self._definitions)
        return self._container(node, resolved, path, seen)

    def _holds_grounded(self, path: str) -> bool:
        if not path:
            return bool(self.grounded)
        return any(g.startswith(path + ".") or g.startswith(path + "[]") for g in self.grounded)

    def _grounded(self, node: dict[str, Any]) -> _GroundedString:
        return _GroundedString(
            nullable="null" in schema_types(node),
            min_length=int(node.get("minLength", 1)),
            max_length=node.get("maxLength"),
            fallback=_JsonLeaf(schema=node, definitions=self._definitions),
        )

    def _container(self, node: dict[str, Any], resolved: dict[str, Any], path: str, seen: tuple[str, ...]) -> _Node:
        blocking = [k for k in ("enum", "const", "anyOf", "oneOf", "allOf", "prefixItems") if k in resolved]
        if "$ref" in node and any(k not in ANNOTATION_KEYWORDS and k != "$ref" for k in node):
            blocking.append("$ref with sibling keywords")
        types = set(schema_types(resolved)) - {"null"}
        if blocking or len(types) != 1:
            raise InputError(
                pick(
                    "字段 {path} 含有照抄原文的子字段，但它使用了 {keyword}；照抄只支持嵌在普通 object/array 中的字段。",
                    "Field {path} holds a grounded field but uses {keyword}; grounded fields are supported only "
                    "inside plain objects and arrays.",
                    path=path or "$", keyword=", ".join(blocking) or "type " + "/".join(sorted(types)),
                )
            )
        nullable = "null" in schema_types(resolved)
        if types == {"array"}:
            return _Array(
                items=self._build(resolved["items"], f"{path}[]", seen),
                min_items=int(resolved.get("minItems", 0)),
                max_items=int(resolved.get("maxItems", DEFAULT_MAX_ITEMS)),
                nullable=nullable,
            )
        required = set(resolved.get("required", []))
        prefix = f"{path}." if path else ""
        properties = [
            (name, self._build(child, prefix + name, seen), name in required)
            for name, child in (resolved.get("properties") or {}).items()
            if isinstance(child, dict)
        ]
        return _Object(properties=properties, nullable=nullable)


@functools.lru_cache(maxsize=32)
def _compile_cached(canonical: str, grounded: tuple[str, ...]) -> SchemaGrammar:
    return SchemaGrammar(json.loads(canonical), grounded)


def compile_schema(schema: Schema, grounded: Sequence[str] = ()) -> SchemaGrammar:
    """Check and compile a schema into a grammar plan, cached per schema content and grounded paths."""
    canonical = json.dumps(schema.data, ensure_ascii=False, sort_keys=False)
    return _compile_cached(canonical, tuple(grounded))
