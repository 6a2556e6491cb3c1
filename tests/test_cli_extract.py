from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from extractor.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture
def record_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "r1.txt").write_text("【一般情况】钱某，男，70岁。\n【入院诊断】1.肺部感染", encoding="utf-8")
    (folder / "r2.txt").write_bytes("【一般情况】孙某，女，33岁。".encode("gb18030"))
    (folder / "r3.txt").write_bytes(b"\x81\x30\xff\xff")  # cannot be decoded as UTF-8 or GB18030
    return folder


def test_extract_writes_one_row_per_record(tiny_qwen3_dir: Path, record_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    result = runner.invoke(
        app,
        ["extract", str(record_folder), "--schema", "basic_info", "--model", str(tiny_qwen3_dir),
         "--max-new-tokens", "8", "--no-examples", "--out", str(out)],
    )
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["r1", "r2", "r3"]
    assert result.exit_code == 1  # a random model produces no valid JSON
    assert "Extraction results" in result.output
    assert "Summary" in result.output
    assert "r3" in result.output
    assert rows[2]["errors"][0]["keyword"] == "input"
    assert rows[0]["stamp"]["model_source"] == "local"
    assert rows[0]["attempts"][0]["truncated"] is True


def test_extract_missing_input_message(tmp_path: Path) -> None:
    result = runner.invoke(app, ["extract", str(tmp_path / "missing"), "--schema", "basic_info"])
    assert result.exit_code == 2
    assert "Input not found" in result.output
    assert "Traceback" not in result.output


def test_extract_missing_schema_message(record_folder: Path) -> None:
    result = runner.invoke(app, ["extract", str(record_folder), "--schema", "no-such-schema"])
    assert result.exit_code == 2
    assert "Schema file not found" in result.output


def test_extract_model_path_not_found(record_folder: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["extract", str(record_folder), "--schema", "basic_info", "--model", str(tmp_path / "nomodel.gguf")]
    )
    assert result.exit_code == 2
    assert "Model not found" in result.output


def test_extract_offline_hub_is_one_sentence(record_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    modelscope = pytest.importorskip("modelscope")

    def unreachable(*args, **kwargs):
        raise ConnectionError("name resolution failed")

    monkeypatch.setattr(modelscope, "snapshot_download", unreachable)
    result = runner.invoke(app, ["extract", str(record_folder), "--schema", "basic_info", "--model", "Qwen/Qwen3-1.7B"])
    assert result.exit_code == 3
    assert "is not cached and the hub cannot be reached" in result.output
    assert "--model" in result.output
    assert "Traceback" not in result.output


def test_render_prints_exact_prompt(tiny_qwen3_dir: Path, record_folder: Path) -> None:
    result = runner.invoke(
        app, ["render", str(record_folder / "r1.txt"), "--schema", "basic_info", "--model", str(tiny_qwen3_dir), "--no-examples"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("<|im_start|>system\n")
    assert "钱某" in result.output
    assert result.output.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_render_messages_without_tokenizer(record_folder: Path) -> None:
    result = runner.invoke(
        app, ["render", str(record_folder / "r2.txt"), "--schema", "basic_info", "--messages", "--no-examples"]
    )
    assert result.exit_code == 0, result.output
    messages = json.loads(result.output)
    assert messages[-1]["role"] == "user"
    assert "孙某" in messages[-1]["content"]


def run_in_chinese(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LANG": "zh_CN.UTF-8", "EXTRACTOR_LANG": "zh_CN.UTF-8", "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "extractor", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


def test_extract_help_in_chinese() -> None:
    result = run_in_chinese("extract", "--help")
    assert result.returncode == 0
    assert "从病历批量抽取结构化字段" in result.stdout
    assert "少样本示例" in result.stdout
    assert "贪心解码" in result.stdout


def test_error_message_in_chinese(tmp_path: Path) -> None:
    result = run_in_chinese("extract", str(tmp_path / "missing"), "--schema", "basic_info")
    assert result.returncode == 2
    assert "找不到输入" in result.stderr
    assert "Traceback" not in result.stderr


def test_extract_warns_on_adapter_mismatch(tiny_qwen3_dir: Path, record_folder: Path, tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    from extractor.training.manifest import new_manifest, write_manifest

    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_qwen3_dir)
    adapter_dir = tmp_path / "adapter"
    peft.get_peft_model(base, peft.LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(adapter_dir)
    manifest = new_manifest(
        base_model={"name": str(tiny_qwen3_dir)},
        prompt={"examples_mode": "inline", "template_sha256": "0" * 64},
        thinking=False,
    )
    write_manifest(adapter_dir, manifest)

    result = runner.invoke(
        app,
        ["extract", str(record_folder / "r1.txt"), "--schema", "basic_info", "--model", str(tiny_qwen3_dir),
         "--adapter", str(adapter_dir), "--max-new-tokens", "4", "--no-examples", "--out", str(tmp_path / "o.jsonl")],
    )
    assert "Warning" in result.output
    assert "inline" in result.output
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows[0]["stamp"]["adapter"] == str(adapter_dir)
