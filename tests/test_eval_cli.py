"""``extractor eval`` through CliRunner, and its tables on a pinned console."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from extractor.cli import app
from extractor.metrics import evaluate, load_gold, load_predictions
from extractor.tables_eval import compare_table, field_f1_table, field_table

GOLD = [
    {"id": "r1", "fields": {"姓名": "张三", "年龄": "45", "诊断": ["高血压", "糖尿病"]}},
    {"id": "r2", "fields": {"姓名": "李四", "年龄": 60, "诊断": []}},
    {"id": "r3", "fields": {"姓名": "王五", "年龄": 30, "诊断": ["胃炎"]}},
]

# Run "good": everything right except r3's age (31 for 30).
# 姓名 TP 3; 年龄 TP 2, FP 1, FN 1; 诊断 TP 2 + 1 ([] = one "none" unit) + 1 = 4.
# Micro TP 9, FP 1, FN 1 → P = R = F1 = 0.9. Exact match r1, r2 → 2/3.
GOOD = [
    {"id": "r1", "valid": True, "fields": {"姓名": "张三", "年龄": 45, "诊断": ["高血压", "糖尿病"]},
     "prompt_tokens": 100, "completion_tokens": 20, "seconds": 1.0},
    {"id": "r2", "valid": True, "fields": {"姓名": "李四", "年龄": 60, "诊断": []},
     "prompt_tokens": 100, "completion_tokens": 10, "seconds": 1.0},
    {"id": "r3", "valid": True, "fields": {"姓名": "王五", "年龄": 31, "诊断": ["胃炎"]},
     "prompt_tokens": 100, "completion_tokens": 10, "seconds": 1.0},
]

# Run "weak": r1 right after folding except a lost diagnosis, r2 unparsed, r3 missing, r9 not in gold.
# 姓名 TP 1, FN 2; 年龄 TP 1, FN 2; 诊断 TP 1, FN 3 (糖尿病, r2's [], r3's 胃炎).
# Micro TP 3, FP 0, FN 7 → P 1.0, R 0.3, F1 = 6/13 ≈ 0.462.
WEAK = [
    {"id": "r1", "valid": True, "fields": {"姓名": "张 三", "年龄": "45", "诊断": ["高血压"]},
     "prompt_tokens": 80, "completion_tokens": 10, "seconds": 0.5},
    {"id": "r2", "valid": False, "fields": None, "prompt_tokens": 80, "completion_tokens": 30, "seconds": 0.5,
     "errors": [{"path": "$", "message": "no JSON object found", "keyword": "no_json"}]},
    {"id": "r9", "valid": True, "fields": {"姓名": "某"}},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "gold": write_jsonl(tmp_path / "gold.jsonl", GOLD),
        "good": write_jsonl(tmp_path / "good.jsonl", GOOD),
        "weak": write_jsonl(tmp_path / "weak.jsonl", WEAK),
    }


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "120"})


def render(table) -> str:
    """Print on a pinned console; titles and captions are padded to the table width, so strip line ends."""
    console = Console(file=io.StringIO(), width=100, no_color=True, force_terminal=False)
    console.print(table)
    return "".join(line.rstrip() + "\n" for line in console.file.getvalue().splitlines())


def runs() -> dict:
    return {"good": evaluate(GOLD, GOOD, name="good"), "weak": evaluate(GOLD, WEAK, name="weak")}


def test_compare_table_marks_best():
    # Macro F1: good (1 + 2/3 + 1)/3 = 0.889, weak (0.5 + 0.5 + 0.4)/3 = 0.467. Status agreement: good 9/9;
    # weak 3/9 (r1's three fields agree, r2 failed and r3 missing disagree). Mean tokens: good (120+110+110)/3,
    # weak (90+110)/2 with r9 left out.
    expected = """\
Evaluation summary
┏━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━┓
┃ Metric                 ┃           good ┃        weak ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━┩
│ Records                │              3 │           3 │
│ Precision (micro)      │          0.900 │     1.000 ★ │
│ Recall (micro)         │        0.900 ★ │       0.300 │
│ F1 (micro)             │        0.900 ★ │       0.462 │
│ F1 (macro)             │        0.889 ★ │       0.467 │
│ Exact match            │  66.7% (2/3) ★ │  0.0% (0/3) │
│ Schema compliance      │ 100.0% (3/3) ★ │ 33.3% (1/3) │
│ Parse failures         │   0.0% (0/3) ★ │ 33.3% (1/3) │
│ Missing predictions    │            0 ★ │           1 │
│ Field status agreement │       100.0% ★ │       33.3% │
│ Not mentioned (fields) │              0 │           0 │
│ Negative (fields)      │              1 │           0 │
│ Failed (fields)        │            0 ★ │           6 │
│ Mean tokens / record   │          113.3 │     100.0 ★ │
│ Mean seconds / record  │           1.00 │      0.50 ★ │
└────────────────────────┴────────────────┴─────────────┘
"""
    assert render(compare_table(runs())) == expected


def test_field_table_one_run():
    expected = """\
Scores per field: good
┏━━━━━━━━━━━━━┳━━━━┳━━━━┳━━━━┳━━━━━━━┳━━━━━━━┳━━━━━━━┳━━━━━━━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━┓
┃ Field       ┃ TP ┃ FP ┃ FN ┃     P ┃     R ┃    F1 ┃ Not mentioned ┃ Negative ┃ Failed ┃
┡━━━━━━━━━━━━━╇━━━━╇━━━━╇━━━━╇━━━━━━━╇━━━━━━━╇━━━━━━━╇━━━━━━━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━┩
│ 姓名        │  3 │  0 │  0 │ 1.000 │ 1.000 │ 1.000 │           0/0 │      0/0 │      0 │
│ 年龄        │  2 │  1 │  1 │ 0.667 │ 0.667 │ 0.667 │           0/0 │      0/0 │      0 │
│ 诊断        │  4 │  0 │  0 │ 1.000 │ 1.000 │ 1.000 │           0/0 │      1/1 │      0 │
├─────────────┼────┼────┼────┼───────┼───────┼───────┼───────────────┼──────────┼────────┤
│ All (micro) │  9 │  1 │  1 │ 0.900 │ 0.900 │ 0.900 │           0/0 │      1/1 │      0 │
└─────────────┴────┴────┴────┴───────┴───────┴───────┴───────────────┴──────────┴────────┘
Not mentioned, Negative: records in that state, predicted/gold. Failed: records whose
prediction failed.
"""
    assert render(field_table(runs()["good"])) == expected


def test_field_f1_table_across_runs():
    # 姓名: good 1.0, weak 2/(2+2) = 0.5. 年龄: good 4/6, weak 2/(2+2) = 0.5. 诊断: good 1.0, weak 2/(2+3) = 0.4.
    expected = """\
F1 per field across runs
┏━━━━━━━┳━━━━━━━━━┳━━━━━━━┳━━━━━━━━┓
┃ Field ┃    good ┃  weak ┃ Spread ┃
┡━━━━━━━╇━━━━━━━━━╇━━━━━━━╇━━━━━━━━┩
│ 姓名  │ 1.000 ★ │ 0.500 │  0.500 │
│ 年龄  │ 0.667 ★ │ 0.500 │  0.167 │
│ 诊断  │ 1.000 ★ │ 0.400 │  0.600 │
└───────┴─────────┴───────┴────────┘
"""
    assert render(field_f1_table(runs())) == expected


def test_single_run_marks_nothing():
    assert "★" not in render(compare_table({"good": runs()["good"]}))


def test_eval_one_run(files):
    result = invoke("eval", "--gold", files["gold"], files["good"])
    assert result.exit_code == 0, result.output
    assert "Scores per field: good" in result.output
    assert "│ F1 (micro)             │        0.900 │" in result.output
    assert "│ All (micro) │  9 │  1 │  1 │ 0.900 │ 0.900 │ 0.900 │" in result.output


def test_eval_two_runs_named(files):
    result = invoke("eval", "--gold", files["gold"], f"base={files['good']}", files["weak"])
    assert result.exit_code == 0, result.output
    assert "┃ Metric                 ┃           base ┃        weak ┃" in result.output
    assert "F1 per field across runs" in result.output
    assert "│ 姓名  │ 1.000 ★ │ 0.500 │  0.500 │" in result.output
    assert "weak: 1 prediction(s) have ids not in gold and were ignored: r9" in result.output


def test_eval_json(files, tmp_path):
    out = tmp_path / "out" / "metrics.json"
    result = invoke("eval", "--gold", files["gold"], files["good"], files["weak"], "--json", out)
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["normalize_strings"] is True
    assert list(document["runs"]) == ["good", "weak"]
    good, weak = document["runs"]["good"], document["runs"]["weak"]
    assert good["micro"]["f1"] == pytest.approx(0.9)
    assert good["exact_match"] == 2
    assert weak["micro"]["f1"] == pytest.approx(6 / 13)
    assert (weak["failed"], weak["missing"], weak["extra_ids"]) == (1, 1, ["r9"])
    assert (weak["fields"]["诊断"]["tp"], weak["fields"]["诊断"]["fn"]) == (1, 3)
    assert weak["per_record"][2] == {"id": "r3", "outcome": "missing", "exact": False, "wrong_paths": ["姓名", "年龄", "诊断"]}


def test_eval_strict(files):
    result = invoke("eval", "--gold", files["gold"], files["good"], "--strict", "--json", files["gold"].parent / "m.json")
    assert result.exit_code == 0, result.output
    # Strict: gold "45" is not 45, so r1's age is FP 1 + FN 1 more than normalised: TP 8, FP 2, FN 2.
    micro = json.loads((files["gold"].parent / "m.json").read_text(encoding="utf-8"))["runs"]["good"]["micro"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (8, 2, 2)


def test_fail_under_exit_codes(files):
    failing = invoke("eval", "--gold", files["gold"], files["good"], files["weak"], "--fail-under", "0.5")
    assert failing.exit_code == 1
    assert "weak: micro F1 0.462 is below --fail-under 0.5." in failing.output
    assert "good: micro F1" not in failing.output

    passing = invoke("eval", "--gold", files["gold"], files["good"], files["weak"], "--fail-under", "0.46")
    assert passing.exit_code == 0, passing.output

    out_of_range = invoke("eval", "--gold", files["gold"], files["good"], "--fail-under", "1.5")
    assert out_of_range.exit_code == 2


def test_missing_prediction_file(files, tmp_path):
    result = invoke("eval", "--gold", files["gold"], tmp_path / "nope.jsonl")
    assert result.exit_code == 2
    assert "The predictions file was not found" in result.output
    assert "nope.jsonl" in result.output


def test_broken_line_named(files):
    files["weak"].write_text('{"id": "r1", "fields": null}\n{"id": "r2", "fields": {\n', encoding="utf-8")
    result = invoke("eval", "--gold", files["gold"], files["weak"])
    assert result.exit_code == 2
    assert "weak.jsonl:2 is not valid JSON" in result.output
    assert "Traceback" not in result.output


def test_row_without_id(files):
    files["good"].write_text('{"fields": {}}\n', encoding="utf-8")
    result = invoke("eval", "--gold", files["gold"], files["good"])
    assert result.exit_code == 2
    assert 'good.jsonl:1 has no "id"' in result.output


def test_gold_without_fields(files):
    files["gold"].write_text('{"id": "r1", "姓名": "张三"}\n', encoding="utf-8")
    result = invoke("eval", "--gold", files["gold"], files["good"])
    assert result.exit_code == 2
    assert 'gold.jsonl:1 has no "fields" object' in result.output


def test_same_stem_gets_parent(files, tmp_path):
    other = tmp_path / "second"
    other.mkdir()
    write_jsonl(other / "good.jsonl", WEAK)
    result = invoke("eval", "--gold", files["gold"], files["good"], other / "good.jsonl")
    assert result.exit_code == 0, result.output
    assert f"{tmp_path.name}/good" in result.output
    assert "second/good" in result.output


def test_duplicate_run_names(files):
    result = invoke("eval", "--gold", files["gold"], f"a={files['good']}", f"a={files['weak']}")
    assert result.exit_code == 2
    assert 'Two prediction files are both named "a"' in result.output


def test_chinese_labels(files, zh_locale):
    result = invoke("eval", "--gold", files["gold"], files["good"])
    assert result.exit_code == 0, result.output
    assert "评测汇总" in result.output
    assert "完全匹配" in result.output


def test_loaders_round_trip(files):
    assert [row["id"] for row in load_gold(files["gold"])] == ["r1", "r2", "r3"]
    assert [row["id"] for row in load_predictions(files["weak"])] == ["r1", "r2", "r9"]
