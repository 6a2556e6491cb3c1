"""Converting annotated records into training rows: both input forms, every drop reason, the seeded split, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from extractor.cli import app
from extractor.prompts import Example, PromptBuilder, format_answer
from extractor.schema import load_schema
from extractor.training.data import (
    CONVERSION_NAME,
    Dropped,
    convert_records,
    detect_format,
    read_training_rows,
    split_rows,
    write_conversion,
)
from extractor.training.tables import dropped_table

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = load_schema(ROOT / "schemas" / "basic_info.json")
GOLD = {"姓名": "张伟", "性别": "男", "年龄": 45, "科别": "心内科", "入院诊断": ["高血压"]}
TEXT = "姓名：张伟，男，45岁，心内科。入院诊断：高血压"


def gold(**changes: object) -> dict:
    return {**GOLD, **changes}


def write_lines(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def builder() -> PromptBuilder:
    return PromptBuilder(ROOT / "prompts" / "default.j2", SCHEMA)


@pytest.fixture
def raw_file(tmp_path: Path) -> Path:
    return write_lines(
        tmp_path / "raw.jsonl",
        [
            {"id": "ok-1", "text": TEXT, "fields": GOLD},
            {"id": "alpaca-1", "instruction": "抽取信息", "input": "李娜，女，30岁，妇科。", "output": json.dumps(gold(姓名="李娜", 性别="女", 年龄=30, 科别="妇科", 入院诊断=None), ensure_ascii=False)},
            {"id": "bad-gold", "text": TEXT, "fields": gold(年龄="45岁")},
            {"id": "no-text", "text": "  ", "fields": GOLD},
            {"id": "bad-output", "instruction": "", "input": TEXT, "output": "{not json"},
            "{broken line",
            {"id": "ok-1", "text": TEXT + "。", "fields": GOLD},
            {"id": "no-fields", "text": TEXT},
            [1, 2],
        ],
    )


def test_convert_keeps_both_forms(raw_file: Path, builder: PromptBuilder) -> None:
    conversion = convert_records(raw_file, builder)

    assert [row["id"] for row in conversion.rows] == ["ok-1", "alpaca-1"]
    first = conversion.rows[0]
    assert first["messages"][:-1] == builder.messages(TEXT)
    assert first["messages"][-1] == {"role": "assistant", "content": format_answer(GOLD)}
    assert first["text"] == TEXT
    assert conversion.rows[1]["messages"][:-1] == builder.messages("李娜，女，30岁，妇科。")
    assert conversion.ignored_instructions == 1


def test_convert_drop_reasons(raw_file: Path, builder: PromptBuilder) -> None:
    dropped = {d.id: d for d in convert_records(raw_file, builder).dropped}

    assert dropped["bad-gold"].reason == "gold_invalid_under_schema"
    assert dropped["bad-gold"].detail.startswith("年龄:")
    assert dropped["no-text"].reason == "missing_text"
    assert dropped["bad-output"].reason == "unparseable_output"
    assert dropped["raw-6"].reason == "invalid_json_line"
    assert dropped["ok-1"].reason == "duplicate_id"
    assert dropped["ok-1"].source.endswith("raw.jsonl:7")
    assert dropped["no-fields"].reason == "missing_fields"
    assert dropped["raw-9"].reason == "not_an_object"
    assert len(dropped) == 7


def test_convert_drops_example_text(tmp_path: Path) -> None:
    example = Example(id="e", text=TEXT, fields=GOLD)
    builder = PromptBuilder(ROOT / "prompts" / "default.j2", SCHEMA, [example])
    raw = write_lines(tmp_path / "raw.jsonl", [{"id": "a", "text": TEXT, "fields": GOLD}])

    conversion = convert_records(raw, builder)

    assert conversion.rows == []
    assert [d.reason for d in conversion.dropped] == ["same_text_as_example"]


def test_split_is_seeded_and_disjoint() -> None:
    rows = [{"id": str(i)} for i in range(20)]

    train, val = split_rows(rows, 0.1, seed=3)
    again_train, again_val = split_rows(rows, 0.1, seed=3)
    _, other_val = split_rows(rows, 0.1, seed=4)

    assert len(val) == 2
    assert len(train) == 18
    assert (train, val) == (again_train, again_val)
    assert val != other_val
    assert {r["id"] for r in train} | {r["id"] for r in val} == {str(i) for i in range(20)}
    assert not {r["id"] for r in train} & {r["id"] for r in val}


def test_split_keeps_one_on_each_side() -> None:
    assert [len(part) for part in split_rows([{"id": "a"}, {"id": "b"}], 0.9, seed=0)] == [1, 1]
    assert [len(part) for part in split_rows([{"id": "a"}], 0.5, seed=0)] == [1, 0]
    assert [len(part) for part in split_rows([{"id": "a"}, {"id": "b"}], 0.0, seed=0)] == [2, 0]


def test_write_conversion_files(tmp_path: Path, raw_file: Path, builder: PromptBuilder) -> None:
    conversion = convert_records(raw_file, builder)
    paths = write_conversion(tmp_path / "out", builder, conversion, val_ratio=0.5, seed=0)

    train = read_training_rows(paths["train"])
    val = read_training_rows(paths["val"])
    dropped = [json.loads(line) for line in paths["dropped"].read_text(encoding="utf-8").splitlines()]
    summary = json.loads((tmp_path / "out" / CONVERSION_NAME).read_text(encoding="utf-8"))

    assert len(train) == 1
    assert len(val) == 1
    assert len(dropped) == 7
    assert dropped[0]["reason_text"]
    assert summary["prompt"]["template_sha256"] == builder.stamp()["template_sha256"]
    assert summary["prompt"]["schema_sha256"] == SCHEMA.sha256
    assert summary["prompt"]["system_prompt"].startswith("你是一名医学信息抽取助手")
    assert detect_format(paths["train"]) == "messages"
    assert detect_format(raw_file) == "raw"


DROPPED_TABLE = """\
Dropped records
┏━━━━━━━━━━┳━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓
┃ id       ┃ Source      ┃ Reason                                       ┃ Detail                                       ┃
┡━━━━━━━━━━╇━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┩
│ bad-gold │ raw.jsonl:3 │ the gold fields are invalid under the schema │ 年龄: '45岁' is not of type 'integer',       │
│          │             │                                              │ 'null'                                       │
│ no-text  │ raw.jsonl:4 │ the record text (text or input) is missing   │                                              │
│          │             │ or empty                                     │                                              │
│ …        │             │ 1 more in dropped.jsonl                      │                                              │
└──────────┴─────────────┴──────────────────────────────────────────────┴──────────────────────────────────────────────┘
"""


def test_dropped_table_text() -> None:
    dropped = [
        Dropped("bad-gold", "/data/raw.jsonl:3", "gold_invalid_under_schema", "年龄: '45岁' is not of type 'integer', 'null'"),
        Dropped("no-text", "/data/raw.jsonl:4", "missing_text"),
        Dropped("r9", "", "too_long", "900 tokens without the record text > max_length 200"),
    ]
    console = Console(width=120, no_color=True, force_terminal=False, record=True)
    console.print(dropped_table(dropped, limit=2))
    text = "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"

    assert text == DROPPED_TABLE


def test_data_convert_command(tmp_path: Path, raw_file: Path) -> None:
    out = tmp_path / "converted"
    result = CliRunner().invoke(
        app, ["data", "convert", "--schema", "basic_info", "--no-examples", "--input", str(raw_file), "--out", str(out), "--val-ratio", "0.5"]
    )

    assert result.exit_code == 0, result.output
    assert "Data conversion" in result.output
    assert "Dropped records" in result.output
    assert "ignored the instruction of 1 alpaca row(s)" in result.output
    for name in ("train.jsonl", "val.jsonl", "dropped.jsonl"):
        assert (out / name).is_file(), name


def test_data_convert_all_dropped_fails(tmp_path: Path) -> None:
    raw = write_lines(tmp_path / "raw.jsonl", [{"id": "x", "text": "", "fields": GOLD}])
    result = CliRunner().invoke(
        app, ["data", "convert", "--schema", "basic_info", "--no-examples", "--input", str(raw), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "No usable records" in result.output


def test_read_training_rows_rejects_raw(raw_file: Path) -> None:
    from extractor.errors import InputError

    with pytest.raises(InputError, match="malformed"):
        read_training_rows(raw_file)
