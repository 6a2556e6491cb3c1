"""Schema validation with per-field errors that a clinician-engineer can read and a model can act on.

Each ``FieldError`` carries two texts: ``message`` for the user (in the user's language, e.g.
``年龄: expected an integer, got "abc"``) and ``feedback`` for the model in a re-ask (Chinese, to match the
prompts, and concrete: the field, what was wrong, what is allowed). ``str(error)`` is the feedback, because
that is what the re-ask loop sends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from .i18n import is_chinese, pick
from .schema import Schema, schema_types


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of an extraction."""

    path: str
    """JSON path of the field, e.g. ``$.用药[0].药名``; ``$`` for the whole object."""
    message: str
    keyword: str = ""
    """The JSON Schema keyword that failed, or a parser reason such as ``truncated``."""
    feedback: str = ""
    """The problem written for the model to fix in a re-ask."""

    def __str__(self) -> str:
        return self.feedback or f"{self.path}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "keyword": self.keyword, "feedback": self.feedback}


def json_path(parts: Any) -> str:
    """Format path parts as ``$.a[0].b``."""
    text = "$"
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def validate(value: Any, schema: Schema) -> list[FieldError]:
    """Validate a value against the schema with format checking on; return errors sorted by path."""
    validator_class = jsonschema.validators.validator_for(schema.data)
    # The format checker must be passed explicitly: without it jsonschema treats "format" as a note only.
    validator = validator_class(schema.data, format_checker=validator_class.FORMAT_CHECKER)
    errors: list[FieldError] = []
    for error in validator.iter_errors(value):
        for field_error in describe(error):
            if field_error not in errors:
                errors.append(field_error)
    return sorted(errors, key=lambda e: (e.path, e.keyword))


# --- describing one jsonschema error ----------------------------------------------------------------------

_TYPE_NAMES_EN = {
    "string": "a text", "integer": "an integer", "number": "a number", "boolean": "true or false",
    "array": "a list", "object": "an object", "null": "null",
}
_TYPE_NAMES_ZH = {
    "string": "字符串", "integer": "整数", "number": "数字", "boolean": "布尔值（true/false）",
    "array": "列表", "object": "对象", "null": "null",
}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
MAX_PREVIEW_CHARS = 40
MAX_LISTED_FIELDS = 30


def describe(error: ValidationError) -> Iterator[FieldError]:
    """Turn one jsonschema error into field errors (``required`` and ``additionalProperties`` may give several)."""
    keyword = str(error.validator)
    if keyword == "required":
        yield from _missing_fields(error)
    elif keyword == "additionalProperties":
        yield from _extra_fields(error)
    elif keyword in ("anyOf", "oneOf"):
        yield _branch_error(error)
    else:
        yield _single_error(keyword, error)


def _single_error(keyword: str, error: ValidationError) -> FieldError:
    path = json_path(error.absolute_path)
    describer = _DESCRIBERS.get(keyword)
    if describer is None:
        label = field_label(path)
        return FieldError(path, f"{label}: {error.message}", keyword, f"{path}：不符合 schema（{error.message}）。")
    message, feedback = describer(field_label(path), error)
    return FieldError(path, message, keyword, f"{path}：{feedback}")


def _branch_error(error: ValidationError) -> FieldError:
    """Describe an ``anyOf``/``oneOf`` failure as a type error when the type is wrong, else by its best branch."""
    allowed = schema_types(error.schema) if isinstance(error.schema, dict) else ()
    if allowed and not _instance_types(error.instance) & set(allowed):
        path = json_path(error.absolute_path)
        message, feedback = _type_texts(field_label(path), error.instance, list(allowed))
        return FieldError(path, message, "type", f"{path}：{feedback}")
    # Branches whose type matched say what is really wrong; the others only report a type mismatch.
    matched = [e for e in error.context if str(e.validator) != "type"]
    best = best_match(matched or error.context) if error.context else None
    if best is None or str(best.validator) in ("anyOf", "oneOf"):
        return _single_error(str(error.validator), error)
    return next(iter(describe(best)))


def _missing_fields(error: ValidationError) -> Iterator[FieldError]:
    instance = error.instance if isinstance(error.instance, dict) else {}
    properties = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
    for name in error.validator_value:
        if name in instance:
            continue
        path = json_path([*error.absolute_path, name])
        label = field_label(path)
        nullable = "null" in schema_types(properties.get(name, {}))
        hint = "病历未提及时填 null。" if nullable else "请补上。"
        yield FieldError(
            path,
            pick("{field}：缺少必填字段", "{field}: missing (required field)", field=label),
            "required",
            f"{path}：缺少必填字段「{label}」，{hint}",
        )


def _extra_fields(error: ValidationError) -> Iterator[FieldError]:
    instance = error.instance if isinstance(error.instance, dict) else {}
    schema = error.schema if isinstance(error.schema, dict) else {}
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    allowed = "、".join(list(properties)[:MAX_LISTED_FIELDS])
    for name in instance:
        if name in properties or any(re.search(p, name) for p in patterns):
            continue
        path = json_path([*error.absolute_path, name])
        label = field_label(path)
        yield FieldError(
            path,
            pick("{field}：不是 schema 中的字段", "{field}: not a field of the schema", field=label),
            "additionalProperties",
            f"{path}：schema 中没有字段「{label}」，请删除。这一层只能使用这些字段：{allowed}。",
        )


def field_label(path: str) -> str:
    """Return the path as a reader names the field: ``$.用药[0].药名`` → ``用药[0].药名``."""
    return path[2:] if path.startswith("$.") else pick("（整个对象）", "(whole object)")


def preview(value: Any) -> str:
    """Return a short JSON rendering of a value for messages."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_PREVIEW_CHARS else text[: MAX_PREVIEW_CHARS - 1] + "…"


def _instance_types(value: Any) -> set[str]:
    if value is None:
        return {"null"}
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"number"}
    if isinstance(value, str):
        return {"string"}
    return {"array"} if isinstance(value, list) else {"object"}


def _type_texts(label: str, instance: Any, expected: list[str]) -> tuple[str, str]:
    names_en = " or ".join(_TYPE_NAMES_EN.get(t, t) for t in expected)
    names_zh = "或".join(_TYPE_NAMES_ZH.get(t, t) for t in expected)
    message = pick("{field}：应为{types}，实际为 {value}", "{field}: expected {types}, got {value}",
                   field=label, types=names_zh if is_chinese() else names_en, value=preview(instance))
    hints = []
    if "integer" in expected or "number" in expected:
        hints.append("只写数字，不带单位")
    if "array" in expected:
        hints.append("写成 JSON 列表，病历明确否认时填 []")
    if "null" in expected:
        hints.append("病历未提及时填 null")
    hint = "（" + "；".join(hints) + "）" if hints else ""
    return message, f"应为{names_zh}{hint}，实际为 {preview(instance)}。"


def _describe_type(label: str, error: ValidationError) -> tuple[str, str]:
    expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
    return _type_texts(label, error.instance, [str(t) for t in expected])


def _describe_enum(label: str, error: ValidationError) -> tuple[str, str]:
    allowed = "、".join("null" if v is None else str(v) for v in error.validator_value)
    allowed_en = ", ".join("null" if v is None else str(v) for v in error.validator_value)
    message = pick("{field}：{value} 不是允许的取值（{allowed}）", "{field}: {value} is not an allowed value ({allowed})",
                   field=label, value=preview(error.instance), allowed=allowed if is_chinese() else allowed_en)
    return message, f"取值 {preview(error.instance)} 不在允许范围内，只能取：{allowed}。"


def _describe_format(label: str, error: ValidationError) -> tuple[str, str]:
    value = preview(error.instance)
    if error.validator_value != "date":
        return (
            pick("{field}：{value} 不符合格式 {format}", "{field}: {value} is not in the format {format}",
                 field=label, value=value, format=error.validator_value),
            f"应符合格式 {error.validator_value}，实际为 {value}。",
        )
    if isinstance(error.instance, str) and _ISO_DATE.fullmatch(error.instance):
        return (
            pick("{field}：{value} 不是真实存在的日期", "{field}: {value} is not a real calendar date", field=label, value=value),
            f"日期 {value} 不存在，请照病历核对年月日，写成 YYYY-MM-DD。",
        )
    return (
        pick("{field}：应为 YYYY-MM-DD 格式的日期，实际为 {value}", "{field}: expected a date as YYYY-MM-DD, got {value}",
             field=label, value=value),
        f"应写成 YYYY-MM-DD 格式的日期（如 2023-03-05），实际为 {value}。病历中没有年份时不要猜测年份。",
    )


def _describe_bound(label: str, error: ValidationError) -> tuple[str, str]:
    keyword = str(error.validator)
    below = keyword in ("minimum", "exclusiveMinimum")
    message = pick(
        "{field}：{value} 低于下限 {limit}" if below else "{field}：{value} 超过上限 {limit}",
        "{field}: {value} is below the minimum {limit}" if below else "{field}: {value} is above the maximum {limit}",
        field=label, value=preview(error.instance), limit=error.validator_value,
    )
    schema = error.schema if isinstance(error.schema, dict) else {}
    low = schema.get("minimum", schema.get("exclusiveMinimum", "-∞"))
    high = schema.get("maximum", schema.get("exclusiveMaximum", "+∞"))
    return message, f"值 {preview(error.instance)} 超出允许范围（{low} 到 {high}），请按病历原值填写数字。"


def _describe_length(label: str, error: ValidationError) -> tuple[str, str]:
    count = len(error.instance) if isinstance(error.instance, (str, list)) else 0
    unit_en = "characters" if isinstance(error.instance, str) else "items"
    unit_zh = "字" if isinstance(error.instance, str) else "项"
    too_long = str(error.validator) in ("maxLength", "maxItems")
    message = pick(
        "{field}：共 {count} {unit_zh}，" + ("最多 {limit} {unit_zh}" if too_long else "至少 {limit} {unit_zh}"),
        "{field}: {count} {unit_en}, " + ("at most {limit} allowed" if too_long else "at least {limit} required"),
        field=label, count=count, limit=error.validator_value, unit_en=unit_en, unit_zh=unit_zh,
    )
    if too_long:
        return message, f"过长（{count} {unit_zh}），最多 {error.validator_value} {unit_zh}，请只保留要点。"
    return message, f"太短（{count} {unit_zh}），至少 {error.validator_value} {unit_zh}。"


def _describe_pattern(label: str, error: ValidationError) -> tuple[str, str]:
    message = pick("{field}：{value} 不符合模式 {pattern}", "{field}: {value} does not match the pattern {pattern}",
                   field=label, value=preview(error.instance), pattern=error.validator_value)
    return message, f"值 {preview(error.instance)} 应符合正则表达式 {error.validator_value}。"


_DESCRIBERS = {
    "type": _describe_type,
    "enum": _describe_enum,
    "format": _describe_format,
    "minimum": _describe_bound,
    "maximum": _describe_bound,
    "exclusiveMinimum": _describe_bound,
    "exclusiveMaximum": _describe_bound,
    "minLength": _describe_length,
    "maxLength": _describe_length,
    "minItems": _describe_length,
    "maxItems": _describe_length,
    "pattern": _describe_pattern,
}
