"""Checks on the bundled few-shot examples, sample records and their gold fields."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from extractor.prompts import PromptBuilder, load_examples
from extractor.records import read_records
from extractor.schema import Schema, load_schema
from extractor.validation import validate

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
RECORDS = EXAMPLES / "records"
ADMISSION = load_schema(ROOT / "schemas" / "admission.json")
BASIC_INFO = load_schema(ROOT / "schemas" / "basic_info.json")
# In the bundled gold these free-text fields are copied verbatim from the record.
VERBATIM_FIELDS = ("主诉", "现病史", "既往史", "过敏史")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def grounded_values(value: Any, spec: dict[str, Any], path: str = "$") -> Iterator[tuple[str, str]]:
    """Yield ``(path, string)`` for every value that the schema marks ``x-grounded``."""
    if spec.get("x-grounded") and isinstance(value, str):
        yield path, value
    if isinstance(value, dict):
        for name, child in spec.get("properties", {}).items():
            if name in value:
                yield from grounded_values(value[name], child, f"{path}.{name}")
    if isinstance(value, list) and isinstance(spec.get("items"), dict):
        for index, item in enumerate(value):
            yield from grounded_values(item, spec["items"], f"{path}[{index}]")


def date_spellings(iso: str) -> set[str]:
    """Spell an ISO date the ways the bundled records write admission dates."""
    day = date.fromisoformat(iso)
    y, m, d = day.year, day.month, day.day
    return {
        day.isoformat(), f"{y}年{m}月{d}日", f"{y}年{m:02d}月{d:02d}日", f"{y}.{m}.{d}", f"{y}/{m}/{d}",
        f"{y}.{m:02d}.{d:02d}", f"{y}/{m:02d}/{d:02d}",
    }


def record_texts() -> dict[str, str]:
    return {record.id: record.text for record in read_records([RECORDS])}


GOLD = read_jsonl(EXAMPLES / "gold.jsonl")
ADMISSION_EXAMPLES = read_jsonl(EXAMPLES / "admission.jsonl")
BASIC_EXAMPLES = read_jsonl(EXAMPLES / "basic_info.jsonl")
TEXTS = record_texts()


def gold_cases() -> list[tuple[str, str, dict[str, Any]]]:
    """(id, record text, admission fields) for the sample records and the admission examples."""
    cases = [(row["id"], TEXTS[row["id"]], row["fields"]) for row in GOLD]
    cases += [(row["id"], row["text"], row["fields"]) for row in ADMISSION_EXAMPLES]
    return cases


def test_format_checker_rejects_bad_date() -> None:
    # Guards the checks below: without a working format checker, a wrong 入院日期 would pass silently.
    fields = dict(GOLD[0]["fields"], 入院日期="2024-3-5")
    assert [e.path for e in validate(fields, ADMISSION)] == ["$.入院日期"]


def test_records_read_without_errors() -> None:
    records = list(read_records([RECORDS]))
    assert len(records) >= 10
    assert [r.id for r in records if r.error] == []


@pytest.mark.parametrize("record_id", sorted(TEXTS))
def test_record_length(record_id: str) -> None:
    assert 600 <= len(TEXTS[record_id]) <= 1500


def test_gold_ids_match_records() -> None:
    ids = [row["id"] for row in GOLD]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(TEXTS)


@pytest.mark.parametrize(("row_id", "text", "fields"), gold_cases(), ids=[case[0] for case in gold_cases()])
def test_admission_gold_valid(row_id: str, text: str, fields: dict[str, Any]) -> None:
    assert validate(fields, ADMISSION) == []


@pytest.mark.parametrize(("row_id", "text", "fields"), gold_cases(), ids=[case[0] for case in gold_cases()])
def test_admission_gold_grounded(row_id: str, text: str, fields: dict[str, Any]) -> None:
    missing = [path for path, value in grounded_values(fields, ADMISSION.data) if value not in text]
    assert missing == []


@pytest.mark.parametrize(("row_id", "text", "fields"), gold_cases(), ids=[case[0] for case in gold_cases()])
def test_admission_gold_matches_text(row_id: str, text: str, fields: dict[str, Any]) -> None:
    for name in VERBATIM_FIELDS:
        assert fields[name] is None or fields[name] in text, name
    if fields["入院日期"] is not None:
        assert any(spelling in text for spelling in date_spellings(fields["入院日期"]))
    if fields["年龄"] is not None:
        assert re.search(rf"(年龄[:：]\s*{fields['年龄']}|\D{fields['年龄']}\s*岁)", text)
    for name, number in (fields["生命体征"] or {}).items():
        assert number is None or re.search(rf"(?<![\d.]){number}(?![\d.])", text), name
    for order in fields["用药"] or []:
        for key in ("剂量", "用法", "频次"):
            assert order[key] is None or order[key] in text, (order["药名"], key)


def test_gold_covers_hard_cases() -> None:
    fields = [row["fields"] for row in GOLD]
    assert any(f["年龄"] is None for f in fields), "a record that never states the age"
    assert any(f["用药"] is None for f in fields), "a record without any orders"
    assert any(f["用药"] == [] for f in fields), "a record that orders no drugs"
    assert any("（" in d and "，" in d for f in fields for d in f["入院诊断"]), "a diagnosis with brackets and a comma"
    assert any(not f["过敏史"].startswith(("否认", "无")) for f in fields), "a real allergy"
    assert len({f["科别"] for f in fields}) >= 8


@pytest.mark.parametrize(("path", "schema"), [("admission.jsonl", ADMISSION), ("basic_info.jsonl", BASIC_INFO)])
def test_load_examples_accepts_file(path: str, schema: Schema) -> None:
    examples = load_examples(EXAMPLES / path, schema)
    assert len(examples) == 3
    assert [e.id for e in examples] == [row["id"] for row in ADMISSION_EXAMPLES]


def test_example_records_short_and_new() -> None:
    for row in ADMISSION_EXAMPLES:
        assert 300 <= len(row["text"]) <= 600, row["id"]
        assert row["text"] not in TEXTS.values(), row["id"]
        assert row["fields"]["姓名"] not in {g["fields"]["姓名"] for g in GOLD}, row["id"]


def test_basic_examples_project_admission() -> None:
    names = list(BASIC_INFO.data["properties"])
    for basic, full in zip(BASIC_EXAMPLES, ADMISSION_EXAMPLES, strict=True):
        assert (basic["id"], basic["text"]) == (full["id"], full["text"])
        assert basic["fields"] == {name: full["fields"][name] for name in names}


@pytest.mark.parametrize("row", BASIC_EXAMPLES, ids=[row["id"] for row in BASIC_EXAMPLES])
def test_basic_examples_valid_and_grounded(row: dict[str, Any]) -> None:
    assert validate(row["fields"], BASIC_INFO) == []
    assert [p for p, v in grounded_values(row["fields"], BASIC_INFO.data) if v not in row["text"]] == []


def test_examples_render_in_default_template() -> None:
    examples = load_examples(EXAMPLES / "admission.jsonl", ADMISSION)
    builder = PromptBuilder(ROOT / "prompts" / "default.j2", ADMISSION, examples)
    messages = builder.messages(TEXTS["rec-01-cardiology"])

    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert json.loads(messages[2]["content"]) == ADMISSION_EXAMPLES[0]["fields"]
