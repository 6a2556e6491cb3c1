"""``extractor parse`` and ``extractor validate`` through the Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from extractor.cli import app
from extractor.cli.parse_cmd import check_rows, compliance_table, overall_line
from extractor.schema import schema_from_dict

runner = CliRunner()

SCHEMA_DATA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "姓名": {"type": ["string", "null"]},
        "年龄": {"type": ["integer", "null"], "description": "岁"},
        "过敏史": {"type": ["string", "null"]},
        "诊断": {"type": ["array", "null"], "items": {"type": "string"}},
    },
}


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(SCHEMA_DATA, ensure_ascii=False), encoding="utf-8")
    return path


def flat(text: str) -> str:
    """Join lines that rich wrapped at the console width."""
    return " ".join(text.split())


def render(renderable: object) -> str:
    console = Console(width=100, no_color=True, force_terminal=False, color_system=None, record=True)
    console.print(renderable)
    return console.export_text()


# --- parse ---

def test_parse_valid_prints_json(schema_file: Path) -> None:
    result = runner.invoke(app, ["parse", "--schema", str(schema_file), "-"], input='好的：{"姓名": "刘", "年龄": "45岁"}')
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"姓名": "刘", "年龄": 45}
    assert result.stdout == '{\n  "姓名": "刘",\n  "年龄": 45\n}\n'


def test_parse_notes_go_to_stderr(schema_file: Path) -> None:
    result = runner.invoke(app, ["parse", "--schema", str(schema_file)], input='```json\n{"年龄": "45岁"}\n```')
    assert result.exit_code == 0
    assert "Repaired: fence" in result.stderr
    assert 'Normalised $.年龄: "45岁" → 45 (unit_stripped)' in result.stderr
    assert "Normalised" not in result.stdout


def test_parse_rejection_exit_one(schema_file: Path) -> None:
    result = runner.invoke(app, ["parse", "--schema", str(schema_file)], input='{"姓名": "刘')
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Completion rejected" in result.stderr
    assert "Incomplete JSON" in result.stderr


def test_parse_invalid_lists_fields(schema_file: Path) -> None:
    result = runner.invoke(app, ["parse", "--schema", str(schema_file)], input='{"年龄": "很大", "备注": 1}')
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "does not match the schema" in result.stderr
    assert '年龄: expected an integer or null, got "很大"' in result.stderr
    assert "备注: not a field of the schema" in result.stderr


def test_parse_reads_file(schema_file: Path, tmp_path: Path) -> None:
    completion = tmp_path / "c.txt"
    completion.write_text("{'姓名': '刘', '诊断': '胃炎'}", encoding="utf-8")
    result = runner.invoke(app, ["parse", "--schema", str(schema_file), str(completion)])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"姓名": "刘", "诊断": ["胃炎"]}


def test_parse_bundled_schema_name() -> None:
    completion = '{"姓名": "刘", "性别": "女性", "年龄": 30, "科别": null, "入院诊断": []}'
    result = runner.invoke(app, ["parse", "--schema", "basic_info"], input=completion)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["性别"] == "女"


def test_parse_missing_file(schema_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["parse", "--schema", str(schema_file), str(tmp_path / "none.txt")])
    assert result.exit_code == 2
    assert "File not found" in flat(result.stderr)
    assert "Traceback" not in result.output


def test_parse_missing_schema() -> None:
    result = runner.invoke(app, ["parse", "--schema", "no-such-schema"], input="{}")
    assert result.exit_code == 2
    assert "Schema file not found" in flat(result.stderr)


def test_parse_chinese_messages(schema_file: Path, zh_locale: None) -> None:
    result = runner.invoke(app, ["parse", "--schema", str(schema_file)], input='{"年龄": NaN}')
    assert result.exit_code == 1
    assert "输出无法解析" in result.stderr
    assert "NaN" in result.stderr


# --- validate ---

ROWS = [
    {"id": "a", "fields": {"姓名": "张", "年龄": 3, "过敏史": "否认药物过敏史", "诊断": []}},
    {"id": "b", "fields": {"姓名": None, "年龄": "x", "过敏史": None, "诊断": ["胃炎"]}},
    {"id": "c", "fields": None},
]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_compliance_table_exact_text() -> None:
    report = check_rows(list(enumerate(ROWS, start=1)), schema_from_dict(SCHEMA_DATA))
    expected = """\
                        Field compliance                        
┏━━━━━━━━┳━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━┓
┃ Field  ┃ valid ┃ negative ┃ not mentioned ┃ invalid ┃ failed ┃
┡━━━━━━━━╇━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━┩
│ 姓名   │     1 │        0 │             1 │       0 │      1 │
│ 年龄   │     1 │        0 │             0 │       1 │      1 │
│ 过敏史 │     0 │        1 │             1 │       0 │      1 │
│ 诊断   │     1 │        1 │             0 │       0 │      1 │
└────────┴───────┴──────────┴───────────────┴─────────┴────────┘
"""
    assert render(compliance_table(report)) == expected
    assert overall_line(report) == "3 rows: 1 valid, 1 invalid, 1 failed"


def test_compliance_root_error_marks_all_invalid() -> None:
    report = check_rows([(1, {"fields": ["not", "an", "object"]})], schema_from_dict(SCHEMA_DATA))
    assert report.counts["姓名"]["invalid"] == 1
    assert report.counts["诊断"]["invalid"] == 1
    assert report.rows["invalid"] == 1


def test_compliance_extra_key_row_invalid() -> None:
    report = check_rows([(1, {"fields": {"姓名": "张", "备注": "x"}})], schema_from_dict(SCHEMA_DATA))
    assert report.rows == {"valid": 0, "invalid": 1, "failed": 0}
    assert report.counts["姓名"]["valid"] == 1
    assert report.problems[0][1].path == "$.备注"


def test_validate_command_reports_and_fails(schema_file: Path, tmp_path: Path) -> None:
    results = write_rows(tmp_path / "rows.jsonl", ROWS)
    result = runner.invoke(app, ["validate", "--schema", str(schema_file), str(results)])
    assert result.exit_code == 1
    assert "│ 年龄   │     1 │        0 │             0 │       1 │      1 │" in result.stdout
    assert "3 rows: 1 valid, 1 invalid, 1 failed" in result.stdout
    assert '- b: 年龄: expected an integer or null, got "x"' in result.stdout


def test_validate_all_valid_exit_zero(schema_file: Path, tmp_path: Path) -> None:
    results = write_rows(tmp_path / "rows.jsonl", ROWS[:1])
    result = runner.invoke(app, ["validate", "--schema", str(schema_file), str(results)])
    assert result.exit_code == 0
    assert "1 rows: 1 valid, 0 invalid, 0 failed" in result.stdout


def test_validate_failed_row_exit_one(schema_file: Path, tmp_path: Path) -> None:
    results = write_rows(tmp_path / "rows.jsonl", [ROWS[0], ROWS[2]])
    result = runner.invoke(app, ["validate", "--schema", str(schema_file), str(results)])
    assert result.exit_code == 1


def test_validate_missing_file(schema_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "--schema", str(schema_file), str(tmp_path / "none.jsonl")])
    assert result.exit_code == 2
    assert "Results file not found" in flat(result.stderr)
    assert "Traceback" not in result.output


def test_validate_directory_unreadable(schema_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "--schema", str(schema_file), str(tmp_path)])
    assert result.exit_code == 2
    assert "Cannot read" in flat(result.stderr)


def test_validate_broken_lines_named(schema_file: Path, tmp_path: Path) -> None:
    results = tmp_path / "rows.jsonl"
    results.write_text(json.dumps(ROWS[0]) + "\n{broken\n\n[1, 2]\n", encoding="utf-8")
    result = runner.invoke(app, ["validate", "--schema", str(schema_file), str(results)])
    assert result.exit_code == 2
    assert "line 2: not valid JSON" in flat(result.stderr)
    assert "line 4: not a result row" in flat(result.stderr)
    assert "Traceback" not in result.output


def test_validate_not_utf8(schema_file: Path, tmp_path: Path) -> None:
    results = tmp_path / "rows.jsonl"
    results.write_bytes(b"\xff\xfe\x00broken")
    result = runner.invoke(app, ["validate", "--schema", str(schema_file), str(results)])
    assert result.exit_code == 2
    assert "not UTF-8" in flat(result.stderr)


def test_validate_chinese_table(schema_file: Path, tmp_path: Path, zh_locale: None) -> None:
    results = write_rows(tmp_path / "rows.jsonl", ROWS)
    result = runner.invoke(app, ["validate", "--schema", str(schema_file), str(results)])
    assert "字段合规统计" in result.stdout
    assert "共 3 行：有效 1，无效 1，失败 1" in result.stdout
