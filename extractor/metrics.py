"""Scoring extractions against gold: per-field precision, recall and F1, exact match and run statistics.

The rules are written out for users in docs/scoring.md. In short: every field is scored per leaf path
(``生命体征.体温``). A non-null value is one unit, and a list contributes one unit per element (an empty
list is one unit meaning "explicitly none"). Units are matched as multisets: a predicted unit that matches
a gold unit is a true positive, an unmatched predicted unit a false positive, an unmatched gold unit a
false negative. Gold null with predicted null is a correct "not mentioned": it counts toward exact match
but adds nothing to precision or recall.

Usage::

    metrics = evaluate(load_gold("gold.jsonl"), load_predictions("run.jsonl"), schema=schema)
    metrics.micro.f1, metrics.exact_match_rate
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .errors import InputError
from .grounding import fold_text
from .i18n import pick
from .results import classify_field
from .schema import Field, Schema

logger = logging.getLogger(__name__)

Path_ = tuple[str, ...]
"""A leaf path as its keys, e.g. ``("生命体征", "体温")``."""

STATUSES = ("present", "not_mentioned", "negative", "failed")
EMPTY_LIST: Hashable = ("list", ())
"""The unit an empty list contributes: the record states that there is none."""

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_OPENING = "([{（【〔［｛"
_CLOSING = ")]}）】〕］｝"
_SEPARATORS = ",，;；\n"


# ---------------------------------------------------------------------------------------------------------
# Reading gold and prediction files


def read_jsonl_objects(path: str | Path, what: str) -> list[tuple[int, dict[str, Any]]]:
    """Read a JSONL file of objects as ``(line number, object)`` pairs.

    ``what`` names the file's role ("gold", "predictions") in error messages. Raises ``InputError`` for a
    missing file, a line that is not valid JSON or a line that is not an object, naming the line.
    """
    path = Path(path)
    try:
        content = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise InputError(
            pick("找不到{what}文件：{path}。请检查路径。", "The {what} file was not found: {path}. Check the path.",
                 what=what, path=path)
        ) from exc
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise InputError(
            pick("无法读取{what}文件 {path}：{error}。请传入 UTF-8 编码的 JSONL 文件。",
                 "Cannot read the {what} file {path}: {error}. Pass a UTF-8 JSONL file.",
                 what=what, path=path, error=exc)
        ) from exc

    items = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                pick("{path} 第 {line} 行不是合法的 JSON（{error}）。请修正或删除该行。",
                     "{path}:{line} is not valid JSON ({error}). Fix or remove the line.",
                     path=path, line=number, error=exc.msg)
            ) from exc
        if not isinstance(item, dict):
            raise InputError(
                pick("{path} 第 {line} 行应为 JSON 对象。", "{path}:{line} must be a JSON object.", path=path, line=number)
            )
        items.append((number, item))
    return items


def _require_id(item: dict[str, Any], path: Path, number: int, seen: dict[str, int]) -> str:
    record_id = item.get("id")
    if not isinstance(record_id, (str, int)) or isinstance(record_id, bool) or str(record_id) == "":
        raise InputError(
            pick('{path} 第 {line} 行缺少 "id"（应为字符串或整数）。每行都需要 id 才能与金标准对齐。',
                 '{path}:{line} has no "id" (a string or integer). Every row needs an id to join gold and predictions.',
                 path=path, line=number)
        )
    record_id = str(record_id)
    if record_id in seen:
        raise InputError(
            pick('{path} 第 {line} 行的 id "{id}" 与第 {first} 行重复。请删除重复行。',
                 '{path}:{line} repeats id "{id}" from line {first}. Remove the duplicate row.',
                 path=path, line=number, id=record_id, first=seen[record_id])
        )
    seen[record_id] = number
    return record_id


def load_gold(path: str | Path) -> list[dict[str, Any]]:
    """Read gold rows ``{"id": ..., "fields": {...}}``. Raises ``InputError`` naming the bad line."""
    rows = []
    seen: dict[str, int] = {}
    for number, item in read_jsonl_objects(path, pick("金标准", "gold")):
        record_id = _require_id(item, Path(path), number, seen)
        if not isinstance(item.get("fields"), dict):
            raise InputError(
                pick('{path} 第 {line} 行缺少 "fields" 对象。金标准每行的格式为 {{"id": ..., "fields": {{...}}}}。',
                     '{path}:{line} has no "fields" object. Each gold row reads {{"id": ..., "fields": {{...}}}}.',
                     path=path, line=number)
            )
        rows.append({**item, "id": record_id})
    return rows


def load_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Read result rows written by ``extract``. Raises ``InputError`` naming the bad line."""
    rows = []
    seen: dict[str, int] = {}
    for number, item in read_jsonl_objects(path, pick("预测结果", "predictions")):
        record_id = _require_id(item, Path(path), number, seen)
        if "fields" not in item:
            raise InputError(
                pick('{path} 第 {line} 行缺少 "fields"。请传入 extract 命令输出的结果文件。',
                     '{path}:{line} has no "fields". Pass a results file written by the extract command.',
                     path=path, line=number)
            )
        rows.append({**item, "id": record_id})
    return rows


# ---------------------------------------------------------------------------------------------------------
# Units: what one value contributes to the multiset comparison


def canonical(value: Any, normalize_strings: bool = True) -> Hashable:
    """Return a hashable form of a value under which equal values compare equal.

    Numbers compare numerically (8 == 8.0). With ``normalize_strings`` a string is folded (``fold_text``),
    a string of only blanks becomes None, and a numeric string equals the number ("8" == 8). Objects drop
    their null members, and lists compare as multisets.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", _decimal(value))
    if isinstance(value, str):
        return _canonical_string(value, normalize_strings)
    if isinstance(value, list):
        items = (canonical(item, normalize_strings) for item in value)
        return ("list", tuple(sorted(items, key=repr)))
    if isinstance(value, Mapping):
        members = ((str(k), canonical(v, normalize_strings)) for k, v in value.items())
        return ("object", tuple(sorted((k, v) for k, v in members if v is not None)))
    return ("other", repr(value))


def _decimal(value: int | float) -> Decimal | str:
    try:
        return Decimal(str(value)).normalize()
    except InvalidOperation:
        return str(value)  # NaN and infinities compare by their spelling


def _canonical_string(value: str, normalize_strings: bool) -> Hashable:
    if not normalize_strings:
        return ("string", value)
    folded = fold_text(value)
    if not folded:
        return None
    if _NUMBER.fullmatch(folded):
        return ("number", Decimal(folded).normalize())
    return ("string", folded)


def units(value: Any, normalize_strings: bool = True) -> Counter[Hashable]:
    """Return the multiset of units a leaf value contributes.

    None (or a blank string when normalising) gives no unit. A list gives one unit per non-null element,
    or ``EMPTY_LIST`` when it has none. An object at a leaf gives no unit, because its members are scored
    at their own paths.
    """
    if isinstance(value, Mapping):
        return Counter()
    if isinstance(value, list):
        items = [canonical(item, normalize_strings) for item in value]
        kept = [item for item in items if item is not None]
        return Counter(kept) if kept else Counter([EMPTY_LIST])
    unit = canonical(value, normalize_strings)
    return Counter() if unit is None else Counter([unit])


def split_items(text: str) -> list[str]:
    """Split a string that lists several items ("肺部感染,颈动脉硬化") at commas, semicolons and line breaks.

    Separators inside brackets do not split, so "胃恶性肿瘤(腺癌，IV期)" stays one item.
    """
    items, current, depth = [], [], 0
    for char in text:
        if char in _OPENING:
            depth += 1
        elif char in _CLOSING:
            depth = max(0, depth - 1)
        if char in _SEPARATORS and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def align(gold: Any, predicted: Any, normalize_strings: bool) -> tuple[Any, Any]:
    """When normalising and one side is a list and the other a string, split the string into items."""
    if not normalize_strings:
        return gold, predicted
    if isinstance(gold, str) and isinstance(predicted, list):
        return split_items(gold), predicted
    if isinstance(predicted, str) and isinstance(gold, list):
        return gold, split_items(predicted)
    return gold, predicted


# ---------------------------------------------------------------------------------------------------------
# Paths


def leaf_items(value: Any, prefix: Path_ = ()) -> list[tuple[Path_, Any]]:
    """List ``(path, value)`` for every leaf: nested non-empty objects are walked, anything else is a leaf."""
    if isinstance(value, Mapping) and (value or not prefix):
        leaves = []
        for key, child in value.items():
            leaves.extend(leaf_items(child, (*prefix, str(key))))
        return leaves
    return [(prefix, value)]


def lookup(fields: Any, path: Path_) -> Any:
    """Return the value at ``path``, or None when a key is missing or a parent is null or not an object."""
    value = fields
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def schema_leaf_paths(schema: Schema) -> list[Path_]:
    """Leaf paths of the schema in its order: nested objects are walked, arrays are leaves."""
    paths: list[Path_] = []

    def walk(item: Field, prefix: Path_) -> None:
        path = (*prefix, item.name)
        if "object" in item.types and item.children:
            for child in item.children:
                walk(child, path)
        else:
            paths.append(path)

    for item in schema.fields:
        walk(item, ())
    return paths


def gold_keys(gold_fields: Sequence[Any]) -> set[str]:
    """Top-level field names that at least one gold row annotates (as a key, null included)."""
    return {str(key) for fields in gold_fields if isinstance(fields, Mapping) for key in fields}


def scored_paths(
    schema: Schema | None, gold_fields: Sequence[Any], predicted_fields: Sequence[Any]
) -> list[Path_]:
    """Return the leaf paths to score: the schema's, then any others seen in gold or predictions.

    Only paths under a top-level field that gold annotates are scored, so a gold file that covers five of
    the schema's fields does not turn the other fields' predictions into false positives. A path that is a
    parent of another path is scored only where some record contains a non-object value at it (a model that
    wrote a string where the schema wants an object). Otherwise its children carry the units.
    """
    annotated = gold_keys(gold_fields)
    ordered: dict[Path_, None] = {}
    if schema is not None:
        ordered.update(dict.fromkeys(schema_leaf_paths(schema)))
    for fields in (*gold_fields, *predicted_fields):
        if isinstance(fields, Mapping):
            ordered.update(dict.fromkeys(path for path, _ in leaf_items(fields)))

    parents = {path[:i] for path in ordered for i in range(1, len(path))}
    everything = (*gold_fields, *predicted_fields)

    def holds_value(path: Path_) -> bool:
        return any(_is_scalar_or_list(lookup(f, path)) for f in everything)

    return [p for p in ordered if p and p[0] in annotated and (p not in parents or holds_value(p))]


def _is_scalar_or_list(value: Any) -> bool:
    return value is not None and not isinstance(value, Mapping)


def path_label(path: Path_) -> str:
    return ".".join(path)


def error_paths(errors: Iterable[Mapping[str, Any]]) -> list[Path_]:
    """Turn validation error paths (``$.用药[0].药名``) into index-free key paths; root errors are dropped."""
    paths = []
    for error in errors:
        raw = str(error.get("path", "")) if isinstance(error, Mapping) else ""
        keys = tuple(match.group(1) for match in re.finditer(r"\.([^.\[\]]+)", raw))
        if raw.startswith("$") and keys:
            paths.append(keys)
    return paths


def status_of(value: Any, failed: bool, normalize_strings: bool) -> str:
    """``classify_field`` of a leaf value; when normalising, a blank string counts as null (not mentioned)."""
    if normalize_strings and isinstance(value, str) and not fold_text(value):
        value = None
    return classify_field(value, failed)


def _is_failed(path: Path_, failed: Sequence[Path_]) -> bool:
    """True when an error sits at the path, at one of its parents, or inside it (a list element)."""
    return any(path[: len(f)] == f or f[: len(path)] == path for f in failed)


# ---------------------------------------------------------------------------------------------------------
# Scores


@dataclass
class FieldScore:
    """Counts for one leaf path over all records."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    fn_failed: int = 0
    """The part of ``fn`` from records whose prediction failed to parse or is missing."""
    predicted_status: Counter[str] = field(default_factory=Counter)
    gold_status: Counter[str] = field(default_factory=Counter)

    @property
    def gold_units(self) -> int:
        return self.tp + self.fn

    @property
    def predicted_units(self) -> int:
        return self.tp + self.fp

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        """2·TP / (2·TP + FP + FN): the harmonic mean of precision and recall, 0 when one of them is 0."""
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else None

    def add(self, other: FieldScore) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.fn_failed += other.fn_failed
        self.predicted_status.update(other.predicted_status)
        self.gold_status.update(other.gold_status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp, "fp": self.fp, "fn": self.fn, "fn_failed": self.fn_failed,
            "precision": self.precision, "recall": self.recall, "f1": self.f1,
            "predicted_status": {s: self.predicted_status[s] for s in STATUSES},
            "gold_status": {s: self.gold_status[s] for s in STATUSES[:3]},
        }


@dataclass
class RecordScore:
    """The outcome of one gold record."""

    id: str
    outcome: str
    """``scored`` (a parsed prediction), ``failed`` (fields null) or ``missing`` (no prediction row)."""
    exact: bool
    wrong_paths: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "outcome": self.outcome, "exact": self.exact, "wrong_paths": self.wrong_paths}


@dataclass
class RunMetrics:
    """Everything ``eval`` reports for one prediction file."""

    name: str
    normalize_strings: bool = True
    fields: dict[str, FieldScore] = field(default_factory=dict)
    records: list[RecordScore] = field(default_factory=list)
    n_valid: int = 0
    n_invalid: int = 0
    n_failed: int = 0
    n_missing: int = 0
    extra_ids: list[str] = field(default_factory=list)
    unscored_fields: list[str] = field(default_factory=list)
    """Top-level fields that predictions hold but no gold row annotates, so they are not scored."""
    n_with_costs: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    status_agreement: Counter[str] = field(default_factory=Counter)
    """``same`` and ``different`` counts of (record, field) cells whose predicted status equals gold's."""

    @property
    def n_gold(self) -> int:
        return len(self.records)

    @property
    def micro(self) -> FieldScore:
        total = FieldScore()
        for score in self.fields.values():
            total.add(score)
        return total

    @property
    def macro_f1(self) -> float | None:
        """Mean F1 over the fields that have at least one gold or predicted unit."""
        values = [s.f1 for s in self.fields.values() if s.f1 is not None]
        return sum(values) / len(values) if values else None

    @property
    def n_exact(self) -> int:
        return sum(r.exact for r in self.records)

    def rate(self, count: int) -> float | None:
        return count / self.n_gold if self.n_gold else None

    @property
    def exact_match_rate(self) -> float | None:
        return self.rate(self.n_exact)

    @property
    def schema_compliance(self) -> float | None:
        return self.rate(self.n_valid)

    @property
    def parse_failure_rate(self) -> float | None:
        return self.rate(self.n_failed)

    @property
    def status_agreement_rate(self) -> float | None:
        total = self.status_agreement["same"] + self.status_agreement["different"]
        return self.status_agreement["same"] / total if total else None

    @property
    def mean_tokens(self) -> float | None:
        """Mean prompt plus completion tokens per prediction row that has a gold record."""
        return (self.prompt_tokens + self.completion_tokens) / self.n_with_costs if self.n_with_costs else None

    @property
    def mean_seconds(self) -> float | None:
        return self.seconds / self.n_with_costs if self.n_with_costs else None

    def status_totals(self) -> Counter[str]:
        return self.micro.predicted_status

    def to_dict(self) -> dict[str, Any]:
        micro = self.micro
        return {
            "name": self.name,
            "normalize_strings": self.normalize_strings,
            "records": self.n_gold,
            "valid": self.n_valid,
            "invalid": self.n_invalid,
            "failed": self.n_failed,
            "missing": self.n_missing,
            "extra_ids": self.extra_ids,
            "unscored_fields": self.unscored_fields,
            "micro": micro.to_dict(),
            "macro_f1": self.macro_f1,
            "exact_match": self.n_exact,
            "exact_match_rate": self.exact_match_rate,
            "schema_compliance": self.schema_compliance,
            "parse_failure_rate": self.parse_failure_rate,
            "status_agreement_rate": self.status_agreement_rate,
            "mean_tokens": self.mean_tokens,
            "mean_prompt_tokens": self.prompt_tokens / self.n_with_costs if self.n_with_costs else None,
            "mean_completion_tokens": self.completion_tokens / self.n_with_costs if self.n_with_costs else None,
            "mean_seconds": self.mean_seconds,
            "fields": {name: score.to_dict() for name, score in self.fields.items()},
            "per_record": [r.to_dict() for r in self.records],
        }


def evaluate(
    gold_rows: Iterable[Mapping[str, Any]],
    pred_rows: Iterable[Mapping[str, Any]],
    schema: Schema | None = None,
    normalize_strings: bool = True,
    name: str = "run",
) -> RunMetrics:
    """Score prediction rows against gold rows, joined on ``id``.

    A gold record without a prediction counts as a failed prediction: its gold units become false negatives.
    A prediction whose id is not in gold is listed in ``extra_ids`` and otherwise ignored. Raises
    ``InputError`` when an id repeats on either side.
    """
    gold = _index_by_id(gold_rows, pick("金标准", "gold"))
    predicted = _index_by_id(pred_rows, pick("预测结果", "predictions"))
    metrics = RunMetrics(name=name, normalize_strings=normalize_strings)
    metrics.extra_ids = [record_id for record_id in predicted if record_id not in gold]

    gold_fields = [row.get("fields") for row in gold.values()]
    predicted_fields = [predicted[i].get("fields") for i in gold if i in predicted]
    paths = scored_paths(schema, gold_fields, predicted_fields)
    annotated = gold_keys(gold_fields)
    predicted_keys = (str(k) for f in predicted_fields if isinstance(f, Mapping) for k in f)
    metrics.unscored_fields = [k for k in dict.fromkeys(predicted_keys) if k not in annotated]
    metrics.fields = {path_label(p): FieldScore() for p in paths}

    for record_id, gold_row in gold.items():
        row = predicted.get(record_id)
        _count_row(metrics, row)
        metrics.records.append(_score_record(metrics, paths, record_id, gold_row.get("fields"), row))
    return metrics


def _index_by_id(rows: Iterable[Mapping[str, Any]], what: str) -> dict[str, Mapping[str, Any]]:
    indexed: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        record_id = str(row.get("id"))
        if record_id in indexed:
            raise InputError(
                pick('{what}中的 id "{id}" 重复。每个 id 只能出现一次。',
                     'The id "{id}" appears twice in the {what}. Each id may appear once.',
                     what=what, id=record_id)
            )
        indexed[record_id] = row
    return indexed


def _count_row(metrics: RunMetrics, row: Mapping[str, Any] | None) -> None:
    """Count the row's outcome (valid, invalid, failed, missing) and its token and time costs."""
    if row is None:
        metrics.n_missing += 1
        return
    if not isinstance(row.get("fields"), Mapping):
        metrics.n_failed += 1
    elif row.get("valid") is True:
        metrics.n_valid += 1
    else:
        metrics.n_invalid += 1
    metrics.n_with_costs += 1
    metrics.prompt_tokens += _number(row.get("prompt_tokens"))
    metrics.completion_tokens += _number(row.get("completion_tokens"))
    metrics.seconds += _number(row.get("seconds"))


def _number(value: Any) -> Any:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _score_record(
    metrics: RunMetrics, paths: Sequence[Path_], record_id: str, gold_fields: Any, row: Mapping[str, Any] | None
) -> RecordScore:
    """Add one record's units to every field score and decide whether the record is an exact match."""
    predicted_fields = row.get("fields") if row is not None else None
    parsed = isinstance(predicted_fields, Mapping)
    failed_paths = error_paths(row.get("errors") or []) if row is not None else []
    wrong = []

    for path in paths:
        gold_value, predicted_value = align(
            lookup(gold_fields, path), lookup(predicted_fields, path), metrics.normalize_strings
        )
        gold_units = units(gold_value, metrics.normalize_strings)
        predicted_units = units(predicted_value, metrics.normalize_strings) if parsed else Counter()
        score = metrics.fields[path_label(path)]
        matched = sum((gold_units & predicted_units).values())
        score.tp += matched
        score.fp += sum(predicted_units.values()) - matched
        score.fn += sum(gold_units.values()) - matched
        if not parsed:
            score.fn_failed += sum(gold_units.values()) - matched

        gold_status = status_of(gold_value, False, metrics.normalize_strings)
        predicted_status = status_of(
            predicted_value, not parsed or _is_failed(path, failed_paths), metrics.normalize_strings
        )
        score.gold_status[gold_status] += 1
        score.predicted_status[predicted_status] += 1
        metrics.status_agreement["same" if gold_status == predicted_status else "different"] += 1
        if gold_units != predicted_units:
            wrong.append(path_label(path))

    if parsed:
        outcome = "scored"
    elif row is None:
        outcome = "missing"
    else:
        outcome = "failed"
    return RecordScore(id=record_id, outcome=outcome, exact=parsed and not wrong, wrong_paths=wrong)
