"""Schema-driven normalisation of extracted values before validation.

Each rule runs only where the schema's type at that path calls for it, and every rewrite is recorded as a
``Change`` so that a reviewer can see it. The rules never invent a value: anything they cannot read with
certainty is left as it is, so that validation reports it.

- ``numeric_string``, ``fullwidth_digits``, ``unit_stripped``, ``chinese_numeral``: a number written as text
  (``"45"``, ``"４５"``, ``"45岁"``, ``"六十五"``) where the schema wants a number or integer. A unit is
  stripped only when it is a known unit of the family named in the field's description (``岁``, ``cm``,
  ``kg``, ``℃``, ``次/分``, ``mmHg``, ``%``), or of any known family when the description names none.
  Units that would need a conversion (``斤``, ``m``, ``g``) are never stripped.
- ``integer_from_float``: ``45.0`` (or ``"45.0"``) where the schema wants an integer.
- ``boolean_from_text``: ``"true"``, ``"false"``, ``"是"`` or ``"否"`` where the schema wants a boolean.
- ``enum_synonym``: a string that is not an allowed value but reads as exactly one of them (see
  ``match_enum``).
- ``date_iso``: a date with a four-digit year written in a common Chinese style where the schema says
  ``format: date``. A time of day after it is dropped. An impossible date or one without a year stays.
- ``wrap_in_list``: a single value where the schema wants an array becomes a one-item list. A text listing
  several items (``"高血压、糖尿病"``) is not split, because commas and 、 also occur inside one diagnosis
  (``"高血压（2级，极高危）"``). A bare negation such as ``"无"`` or ``"否认…"`` is not wrapped either: the
  convention for an explicit negative in a list field is ``[]``, so validation asks the model for that.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from .schema import Schema, schema_types


@dataclass(frozen=True)
class Change:
    """One value rewritten by the normaliser, kept so that a reviewer can see it."""

    path: str
    original: Any
    normalized: Any
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "original": self.original, "normalized": self.normalized, "rule": self.rule}


def normalize(value: Any, schema: Schema) -> tuple[Any, list[Change]]:
    """Return a normalised copy of ``value`` and the list of changes made; the input is not modified."""
    changes: list[Change] = []
    return _normalize_node(value, schema.data, "$", changes), changes


# --- walking the schema -----------------------------------------------------------------------------------


def branches(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Return a subschema and its ``anyOf``/``oneOf``/``allOf`` branches, where facets such as ``enum`` may sit."""
    found = [spec]
    for keyword in ("anyOf", "oneOf", "allOf"):
        found.extend(b for b in spec.get(keyword, []) if isinstance(b, dict))
    return found


def facet(spec: dict[str, Any], name: str) -> Any:
    """Return the first value of keyword ``name`` in the subschema or its branches, or None."""
    for branch in branches(spec):
        if name in branch:
            return branch[name]
    return None


def property_spec(spec: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """Return the subschema of property ``key`` of an object subschema, or None when it declares none."""
    properties = facet(spec or {}, "properties")
    if isinstance(properties, dict) and isinstance(properties.get(key), dict):
        return properties[key]
    return None


def items_spec(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return the item subschema of an array subschema, or None."""
    items = facet(spec or {}, "items")
    return items if isinstance(items, dict) else None


def _normalize_node(value: Any, spec: dict[str, Any] | None, path: str, changes: list[Change]) -> Any:
    # NOTE: "$ref" is not followed, so a field defined through a reference is left as it is; the bundled
    # schemas use none. Exit: resolve references here once a schema needs them.
    if spec is None:
        return value
    types = schema_types(spec)
    if isinstance(value, list):
        items = items_spec(spec)
        return [_normalize_node(v, items, f"{path}[{i}]", changes) for i, v in enumerate(value)]
    if isinstance(value, dict) and "array" in types and "object" not in types:
        return _wrap_in_list(value, spec, path, changes)
    if isinstance(value, dict):
        return {k: _normalize_node(v, property_spec(spec, k), f"{path}.{k}", changes) for k, v in value.items()}
    if value is None or not types:
        return value
    if _json_types(value) & set(types):
        return _normalize_fitting(value, spec, types, path, changes)
    return _convert(value, spec, types, path, changes)


def _wrap_in_list(value: Any, spec: dict[str, Any], path: str, changes: list[Change]) -> Any:
    _record(changes, path, value, [value], "wrap_in_list")
    return _normalize_node([value], spec, path, changes)


def _json_types(value: Any) -> set[str]:
    """Return the schema types a scalar satisfies, the way JSON Schema counts them (``45.0`` is an integer)."""
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"integer", "number"} if value.is_integer() else {"number"}
    return {"string"} if isinstance(value, str) else set()


def _record(changes: list[Change], path: str, original: Any, normalized: Any, rule: str) -> Any:
    changes.append(Change(path, original, normalized, rule))
    return normalized


def _normalize_fitting(value: Any, spec: dict[str, Any], types: tuple[str, ...], path: str, changes: list[Change]) -> Any:
    """Tidy a scalar whose type the schema already accepts: enum synonyms, dates, integral floats."""
    if isinstance(value, str):
        allowed = facet(spec, "enum")
        if isinstance(allowed, list) and value not in allowed:
            matched = match_enum(value, [v for v in allowed if isinstance(v, str)])
            return _record(changes, path, value, matched, "enum_synonym") if matched is not None else value
        if facet(spec, "format") == "date" and not _ISO_DATE.fullmatch(value):
            iso = parse_date(value)
            return _record(changes, path, value, iso, "date_iso") if iso is not None else value
        return value
    if isinstance(value, float) and value.is_integer() and "integer" in types and "number" not in types:
        return _record(changes, path, value, int(value), "integer_from_float")
    return value


def _convert(value: Any, spec: dict[str, Any], types: tuple[str, ...], path: str, changes: list[Change]) -> Any:
    """Convert a scalar of the wrong type where the schema's type names the target; leave it otherwise."""
    if "array" in types:
        if isinstance(value, str) and (not value.strip() or _is_bare_negation(value)):
            return value
        return _wrap_in_list(value, spec, path, changes)
    if isinstance(value, str) and ("integer" in types or "number" in types):
        converted = parse_number(value, integer="number" not in types, description=_unit_hint(spec, path))
        return _record(changes, path, value, converted[0], converted[1]) if converted is not None else value
    if isinstance(value, str) and "boolean" in types:
        flag = _BOOLEAN_WORDS.get(value.strip().lower())
        return _record(changes, path, value, flag, "boolean_from_text") if flag is not None else value
    return value


def _unit_hint(spec: dict[str, Any], path: str) -> str:
    """Return the text that names a field's unit: its description and its name."""
    return f"{facet(spec, 'description') or ''} {path.rsplit('.', 1)[-1]}"


# --- numbers ----------------------------------------------------------------------------------------------

# Units after NFKC (which turns ℃ into °C, ㎏ into kg, full-width letters into ASCII), lower-cased, by family.
_UNIT_FAMILIES = {
    "age": ("周岁", "岁"),
    "temperature": ("°c", "度"),
    "mass": ("kg", "公斤", "千克"),
    "length": ("cm", "厘米"),
    "rate": ("次/分钟", "次/分", "次/min", "bpm", "次"),
    "pressure": ("mmhg",),
    "percent": ("%",),
    "dose": ("mg", "毫克"),
    "volume": ("ml", "毫升"),
}
_UNIT_TO_FAMILY = {unit: family for family, units in _UNIT_FAMILIES.items() for unit in units}
# Units that name a family when they appear in a description; 度 and 次 are left out because they occur in
# ordinary words (程度, 每次).
_DESCRIPTION_UNITS = sorted((u for u in _UNIT_TO_FAMILY if u not in ("度", "次")), key=len, reverse=True)

_NUMBER_WITH_REST = re.compile(r"([+-]?\d+(?:\.\d+)?)\s*(.*)", re.DOTALL)
_CHINESE_NUMBER_WITH_REST = re.compile(r"([零〇一二两三四五六七八九十百千万点]+)\s*(.*)", re.DOTALL)
_CHINESE_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CHINESE_MULTIPLIERS = {"十": 10, "百": 100, "千": 1000}
_BOOLEAN_WORDS = {"true": True, "false": False, "是": True, "否": False}


def parse_number(text: str, integer: bool, description: str = "") -> tuple[int | float, str] | None:
    """Read a number written as text, with an optional unit; return it and the rule name, or None.

    ``integer`` requires a whole number (``"45.0"`` gives 45, ``"38.5"`` gives None). ``description`` is
    searched for a unit: when it names one, only units of that family are stripped.
    """
    folded = unicodedata.normalize("NFKC", text).strip()
    rule = "fullwidth_digits" if folded != text.strip() else "numeric_string"
    digits, rest = _split_number(folded)
    if digits is None:
        digits, rest = _split_chinese_number(folded)
        rule = "chinese_numeral"
    if digits is None:
        return None
    if rest:
        if not _unit_allowed(rest, description):
            return None
        rule = "unit_stripped" if rule != "chinese_numeral" else rule

    number = float(digits)
    if "." not in digits or integer:
        if not number.is_integer():
            return None
        return int(number), rule
    return number, rule


def _split_number(text: str) -> tuple[str | None, str]:
    match = _NUMBER_WITH_REST.fullmatch(text)
    return (match.group(1), match.group(2).strip()) if match else (None, "")


def _split_chinese_number(text: str) -> tuple[str | None, str]:
    match = _CHINESE_NUMBER_WITH_REST.fullmatch(text)
    if not match:
        return None, ""
    digits = chinese_numeral(match.group(1))
    return (digits, match.group(2).strip()) if digits is not None else (None, "")


def _unit_allowed(unit: str, description: str) -> bool:
    family = _UNIT_TO_FAMILY.get(unit.lower())
    if family is None:
        return False
    hint = unicodedata.normalize("NFKC", description).lower()
    named = next((_UNIT_TO_FAMILY[u] for u in _DESCRIPTION_UNITS if u in hint), None)
    return named is None or named == family


def chinese_numeral(text: str) -> str | None:
    """Return the decimal digits of a Chinese numeral (``三十八点五`` → ``"38.5"``), or None when unsure.

    Colloquial short forms such as ``一百二`` (120) are refused, because they read differently from the
    positional ``一百零二`` and the value must not be guessed.
    """
    whole, separator, fraction = text.partition("点")
    integer = _chinese_integer(whole)
    if integer is None:
        return None
    if not separator:
        return str(integer)
    if not fraction or any(c not in _CHINESE_DIGITS for c in fraction):
        return None
    return f"{integer}." + "".join(str(_CHINESE_DIGITS[c]) for c in fraction)


def _chinese_integer(text: str) -> int | None:
    if not text:
        return None
    if all(c in _CHINESE_DIGITS for c in text):
        # A single digit is a number; a run such as 一二〇 is a digit-by-digit reading and is ambiguous.
        return _CHINESE_DIGITS[text] if len(text) == 1 else None
    total, section, pending = 0, 0, None
    last_multiplier, zero_seen = 0, False
    for char in text:
        if char in _CHINESE_DIGITS:
            if pending is not None and _CHINESE_DIGITS[char]:
                return None
            zero_seen = zero_seen or _CHINESE_DIGITS[char] == 0
            pending = _CHINESE_DIGITS[char] or None
        elif char in _CHINESE_MULTIPLIERS:
            if section and _CHINESE_MULTIPLIERS[char] >= last_multiplier:
                return None
            section += (pending if pending is not None else 1) * _CHINESE_MULTIPLIERS[char]
            pending, last_multiplier, zero_seen = None, _CHINESE_MULTIPLIERS[char], False
        elif char == "万":
            if total or not (section or pending):
                return None
            total += (section + (pending or 0)) * 10000
            section, pending, last_multiplier, zero_seen = 0, None, 10000, False
        else:
            return None
    if pending is not None and last_multiplier >= 100 and not zero_seen:
        return None
    return total + section + (pending or 0)


# --- enums ------------------------------------------------------------------------------------------------

_RH_SUFFIX = re.compile(r"\s*[(（]?\s*rh\s*[(（]?\s*(?:阳性|阴性|[+\-]|d)?\s*[)）]?\s*[)）]?\s*$", re.IGNORECASE)
_TYPE_SUFFIX = re.compile(r"(?:血型|型血|型|性)$")


def match_enum(value: str, allowed: list[str]) -> str | None:
    """Return the one allowed value that ``value`` names, or None when there is none or more than one.

    Three rules are tried in order. First, the same text after NFKC and case folding (``ｏ`` → ``O``).
    Second, the text without a trailing Rh factor and 型/性/血型 (``A型Rh阳性`` → ``A``, ``男性`` → ``男``).
    Third, the longest allowed value that starts the text, provided the rest contains no allowed value
    (``已婚已育`` → ``已婚``, but ``男女不详`` stays because 女 is allowed too).
    """
    folded = _fold(value).strip()
    exact = _unique_casefold(folded, allowed)
    if exact is not None:
        return exact

    stripped = _TYPE_SUFFIX.sub("", _RH_SUFFIX.sub("", folded)).strip()
    if stripped and stripped != folded:
        exact = _unique_casefold(stripped, allowed)
        if exact is not None:
            return exact

    prefixes = [v for v in allowed if v and folded.startswith(_fold(v))]
    if not prefixes:
        return None
    longest = max(prefixes, key=lambda v: len(_fold(v)))
    rest = folded[len(_fold(longest)):]
    if any(v and _fold(v) in rest for v in allowed):
        return None
    return longest


def _fold(text: str) -> str:
    """Return text in the form enum values are compared in: NFKC (full-width and Roman numerals to ASCII), case-folded."""
    return unicodedata.normalize("NFKC", text).casefold()


def _unique_casefold(text: str, allowed: list[str]) -> str | None:
    matches = [v for v in allowed if _fold(v) == text]
    return matches[0] if len(matches) == 1 else None


# --- dates ------------------------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_DATE = re.compile(
    r"(?P<year>\d{4})\s*[年./-]\s*(?P<month>\d{1,2})\s*[月./-]\s*(?P<day>\d{1,2})\s*[日号]?"
    r"(?P<time>(?:\s*T?\s*\d{1,2}\s*[:时点]\s*(?:\d{1,2}\s*分?)?(?:\s*:?\s*\d{1,2}(?:\.\d+)?\s*秒?)?)?)"
    r"\s*(?:Z|[+-]\d{2}:?\d{2})?",
    re.ASCII,
)
_COMPACT_DATE = re.compile(r"(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})", re.ASCII)


def parse_date(text: str) -> str | None:
    """Return ``YYYY-MM-DD`` for a date with a four-digit year, or None for anything else or an impossible date."""
    folded = unicodedata.normalize("NFKC", text).strip()
    match = _DATE.fullmatch(folded) or _COMPACT_DATE.fullmatch(folded)
    if match is None:
        return None
    try:
        return dt.date(int(match["year"]), int(match["month"]), int(match["day"])).isoformat()
    except ValueError:
        return None


# --- lists ------------------------------------------------------------------------------------------------

_BARE_NEGATIONS = ("无", "没有", "不详", "阴性", "未见", "未见异常")


def _is_bare_negation(text: str) -> bool:
    stripped = text.strip().rstrip("。.")
    return stripped in _BARE_NEGATIONS or stripped.startswith("否认")
