"""Turning annotated records into chat-format training rows built by the same ``PromptBuilder`` as ``extract``.

Raw input is JSONL, one annotated record per line, in either form:

- ``{"id"?, "text", "fields"}``: the record text and its gold fields (an object, or a JSON string of one);
- alpaca ``{"instruction", "input", "output"}``: ``input`` is the record text and ``output`` the gold JSON text.
  ``instruction`` is ignored because our template writes the instruction; the summary counts how often.

Each kept record becomes ``{"id", "messages", "text"}``: the prompt messages from the builder plus the assistant
answer ``format_answer(fields)`` with the top-level keys in schema order. ``text`` is the record text, which
tokenisation needs to cut an overlong record in the middle. A record that cannot be used is dropped with a
reason, never silently.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from ..errors import InputError
from ..i18n import pick
from ..prompts import Message, PromptBuilder, format_answer
from ..records import decode_bytes
from ..schema import Schema

logger = logging.getLogger(__name__)

CONVERSION_NAME = "conversion.json"
"""Written beside converted data: the prompt stamp and counts, read back by ``train`` for the manifest."""

# Drop reasons: stable codes for dropped.jsonl, explained to the user by ``reason_label``.
INVALID_LINE = "invalid_json_line"
NOT_OBJECT = "not_an_object"
MISSING_TEXT = "missing_text"
MISSING_FIELDS = "missing_fields"
UNPARSEABLE_OUTPUT = "unparseable_output"
INVALID_GOLD = "gold_invalid_under_schema"
DUPLICATE_ID = "duplicate_id"
EXAMPLE_OVERLAP = "same_text_as_example"
ALREADY_CONVERTED = "already_converted"
TOO_LONG = "too_long"


def reason_label(code: str) -> str:
    """Describe a drop reason in the user's language."""
    labels = {
        INVALID_LINE: ("这一行不是合法的 JSON", "the line is not valid JSON"),
        NOT_OBJECT: ("这一行不是 JSON 对象", "the line is not a JSON object"),
        MISSING_TEXT: ("缺少病历文本（text 或 input）", "the record text (text or input) is missing or empty"),
        MISSING_FIELDS: ("缺少标注（fields 或 output）", "the gold fields (fields or output) are missing"),
        UNPARSEABLE_OUTPUT: ("标注不是可解析的 JSON 对象", "the gold output is not a parseable JSON object"),
        INVALID_GOLD: ("标注不符合 schema", "the gold fields are invalid under the schema"),
        DUPLICATE_ID: ("id 重复", "the id repeats an earlier record"),
        EXAMPLE_OVERLAP: ("与少样本示例的病历相同", "the record text equals a few-shot example's"),
        ALREADY_CONVERTED: ("已是 messages 格式，无需转换", "the row is already in messages form"),
        TOO_LONG: ("去掉病历文本后仍超过 --max-length", "it exceeds --max-length even with the record text cut"),
    }
    zh, en = labels.get(code, (code, code))
    return pick(zh, en)


@dataclass(frozen=True)
class Annotated:
    """One usable annotated record."""

    id: str
    text: str
    fields: dict[str, Any]
    source: str = ""
    """File and line, for messages about this record."""


@dataclass(frozen=True)
class Dropped:
    """A record left out of the training data, with where it came from and why."""

    id: str
    source: str
    reason: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {**asdict(self), "reason_text": reason_label(self.reason)}


@dataclass
class Conversion:
    """The outcome of converting one raw file: training rows in input order, dropped records and notes."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    ignored_instructions: int = 0


# ---- reading raw annotated records ----


def read_raw_lines(path: str | Path) -> list[tuple[int, str]]:
    """Return the non-empty lines of a JSONL file with their line numbers."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            pick(
                "找不到数据文件：{path}。请传入带 text 和 fields（或 instruction/input/output）的 JSONL 文件。",
                "Data file not found: {path}. Pass a JSONL file with text and fields (or instruction/input/output).",
                path=path,
            )
        )
    try:
        content, _ = decode_bytes(path.read_bytes())
    except UnicodeDecodeError as exc:
        raise InputError(
            pick("无法解码 {path}。请另存为 UTF-8。", "Cannot decode {path}. Save it as UTF-8.", path=path)
        ) from exc
    return [(number, line) for number, line in enumerate(content.splitlines(), start=1) if line.strip()]


def detect_format(path: str | Path) -> str:
    """Return ``"messages"`` when the file's first row is converted training data, else ``"raw"``."""
    for _, line in read_raw_lines(path):
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            return "raw"
        return "messages" if isinstance(item, dict) and isinstance(item.get("messages"), list) else "raw"
    raise InputError(pick("数据文件 {path} 是空的。", "Data file {path} is empty.", path=path))


def parse_raw(lines: Iterable[tuple[int, str]], source: str, schema: Schema) -> tuple[list[Annotated], Conversion]:
    """Parse raw annotated lines, keeping the usable records and recording every drop."""
    validator = jsonschema.validators.validator_for(schema.data)(schema.data)
    conversion = Conversion()
    usable: list[Annotated] = []
    seen: set[str] = set()
    stem = Path(source).stem
    for number, line in lines:
        where = f"{source}:{number}"
        record, dropped, used_instruction = _parse_line(line, f"{stem}-{number}", where)
        conversion.ignored_instructions += used_instruction
        if record is not None:
            dropped = _check_record(record, where, validator, seen)
        if dropped is not None:
            conversion.dropped.append(dropped)
            continue
        assert record is not None  # _parse_line returns a record whenever it returns no drop
        seen.add(record.id)
        usable.append(record)
    return usable, conversion


def _parse_line(line: str, fallback_id: str, where: str) -> tuple[Annotated | None, Dropped | None, int]:
    """Parse one line into a record or a drop; the int is 1 when an alpaca instruction was ignored."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, Dropped(fallback_id, where, INVALID_LINE, exc.msg), 0
    if not isinstance(item, dict):
        return None, Dropped(fallback_id, where, NOT_OBJECT), 0

    record_id = str(item.get("id", fallback_id))
    if isinstance(item.get("messages"), list):
        return None, Dropped(record_id, where, ALREADY_CONVERTED), 0
    alpaca = "output" in item and "fields" not in item
    text = item.get("input" if alpaca else "text")
    if not isinstance(text, str) or not text.strip():
        return None, Dropped(record_id, where, MISSING_TEXT), 0

    gold, problem = _gold_fields(item.get("output" if alpaca else "fields"))
    if problem is not None:
        return None, Dropped(record_id, where, problem), 0
    ignored = int(alpaca and bool(str(item.get("instruction") or "").strip()))
    return Annotated(id=record_id, text=text, fields=gold, source=where), None, ignored


def _gold_fields(value: Any) -> tuple[dict[str, Any], str | None]:
    if value is None:
        return {}, MISSING_FIELDS
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return {}, UNPARSEABLE_OUTPUT
    if not isinstance(value, dict):
        return {}, UNPARSEABLE_OUTPUT
    return value, None


def _check_record(record: Annotated, where: str, validator: Any, seen: set[str]) -> Dropped | None:
    if record.id in seen:
        return Dropped(record.id, where, DUPLICATE_ID)
    error = next(iter(validator.iter_errors(record.fields)), None)
    if error is not None:
        location = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return Dropped(record.id, where, INVALID_GOLD, f"{location}: {error.message}")
    return None


# ---- building training rows ----


def schema_ordered(fields: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """Reorder top-level keys to the schema's property order, which constrained decoding also follows."""
    order = [f.name for f in schema.fields]
    ordered = {name: fields[name] for name in order if name in fields}
    ordered.update({key: value for key, value in fields.items() if key not in ordered})
    return ordered


def training_row(record: Annotated, builder: PromptBuilder) -> dict[str, Any]:
    """Build one training row: the prompt messages ``extract`` would send, then the gold answer."""
    messages: list[Message] = builder.messages(record.text)
    answer = format_answer(schema_ordered(record.fields, builder.schema))
    messages.append({"role": "assistant", "content": answer})
    return {"id": record.id, "messages": messages, "text": record.text}


def convert_records(path: str | Path, builder: PromptBuilder) -> Conversion:
    """Read raw annotated records and build training rows, dropping unusable ones with a reason."""
    records, conversion = parse_raw(read_raw_lines(path), str(path), builder.schema)
    example_texts = {example.text.strip() for example in builder.examples}
    for record in records:
        if record.text.strip() in example_texts:
            conversion.dropped.append(Dropped(record.id, record.source, EXAMPLE_OVERLAP))
            continue
        conversion.rows.append(training_row(record, builder))
    if conversion.ignored_instructions:
        logger.info("ignored the instruction of %d alpaca row(s)", conversion.ignored_instructions)
    return conversion


def split_rows(rows: Sequence[dict[str, Any]], val_ratio: float, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Shuffle with ``seed`` and split off ``val_ratio`` of the rows, keeping at least one on each side."""
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    if val_ratio <= 0 or len(shuffled) < 2:
        return shuffled, []
    n_val = min(max(1, round(len(shuffled) * val_ratio)), len(shuffled) - 1)
    return shuffled[n_val:], shuffled[:n_val]


def read_training_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read converted training JSONL, checking that every row ends with the assistant message."""
    rows = []
    for number, line in read_raw_lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _bad_row(path, number) from exc
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or len(messages) < 2 or not _is_answer(messages[-1]):
            raise _bad_row(path, number)
        row.setdefault("id", f"{Path(path).stem}-{number}")
        rows.append(row)
    return rows


def _is_answer(message: Any) -> bool:
    return isinstance(message, dict) and message.get("role") == "assistant" and isinstance(message.get("content"), str)


def _bad_row(path: str | Path, number: int) -> InputError:
    return InputError(
        pick(
            "训练数据 {path}:{line} 格式错误：每行应为 messages 列表，最后一条是 assistant 的答案。"
            "原始标注请用 extractor data convert 转换。",
            "Training data {path}:{line} is malformed: each row needs a messages list ending with the assistant's "
            "answer. Convert raw annotated records with extractor data convert.",
            path=path, line=number,
        )
    )


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as UTF-8 JSONL and return how many were written."""
    count = 0
    with open(path, "w", encoding="utf-8") as stream:
        for row in rows:
            stream.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def prompt_stamp(builder: PromptBuilder) -> dict[str, Any]:
    """Describe how prompts were built: the builder's stamp plus the schema and the rendered system prompt."""
    system = next((m["content"] for m in builder.messages("") if m["role"] == "system"), "")
    return {
        **builder.stamp(),
        "schema": builder.schema.name,
        "schema_sha256": builder.schema.sha256,
        "system_prompt": system,
    }


def write_conversion(out: str | Path, builder: PromptBuilder, conversion: Conversion, val_ratio: float, seed: int) -> dict[str, Path]:
    """Split and write ``train.jsonl``, ``val.jsonl``, ``dropped.jsonl`` and ``conversion.json`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train, val = split_rows(conversion.rows, val_ratio, seed)
    paths = {name: out / f"{name}.jsonl" for name in ("train", "val", "dropped")}
    write_jsonl(paths["train"], train)
    write_jsonl(paths["val"], val)
    write_jsonl(paths["dropped"], (d.to_dict() for d in conversion.dropped))

    summary = {
        "prompt": prompt_stamp(builder),
        "seed": seed,
        "val_ratio": val_ratio,
        "counts": {"train": len(train), "val": len(val), "dropped": len(conversion.dropped)},
        "ignored_instructions": conversion.ignored_instructions,
    }
    paths["conversion"] = out / CONVERSION_NAME
    paths["conversion"].write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return paths


def read_conversion(data_path: str | Path) -> dict[str, Any] | None:
    """Return the ``conversion.json`` written beside converted data, or None when there is none."""
    path = Path(data_path).parent / CONVERSION_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        logger.warning("ignoring unreadable %s", path)
        return None
