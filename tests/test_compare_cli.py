from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from extractor.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def write_config(tmp_path: Path, model: Path, runs: str) -> Path:
    config = tmp_path / "compare.toml"
    config.write_text(
        f"""
records = ["{ROOT / 'examples' / 'records'}"]
gold = "{ROOT / 'examples' / 'gold.jsonl'}"
schema = "admission"
out = "{tmp_path / 'runs'}"

[defaults]
model = "{model}"
max_new_tokens = 12
max_retries = 0
batch_size = 5
{runs}
""",
        encoding="utf-8",
    )
    return config


def test_compare_history_and_inline(tiny_qwen3_dir: Path, tmp_path: Path) -> None:
    runs = '[runs.history]\nexamples_mode = "history"\n[runs.inline]\nexamples_mode = "inline"\nfree = true\n'
    result = runner.invoke(app, ["compare", str(write_config(tmp_path, tiny_qwen3_dir, runs))])
    assert result.exit_code == 0, result.output
    for name in ("history", "inline"):
        rows = [json.loads(line) for line in (tmp_path / "runs" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
        assert len(rows) == 10
        assert rows[0]["stamp"]["examples_mode"] == name
    assert "history" in result.output
    assert "inline" in result.output
    assert "F1" in result.output


def test_compare_rejects_unknown_run_option(tiny_qwen3_dir: Path, tmp_path: Path) -> None:
    runs = '[runs.typo]\nexample_mode = "inline"\n'
    result = runner.invoke(app, ["compare", str(write_config(tmp_path, tiny_qwen3_dir, runs))])
    assert result.exit_code == 2
    assert "example_mode" in result.output


def test_compare_missing_config(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compare", str(tmp_path / "none.toml")])
    assert result.exit_code == 2
    assert "Config file not found" in result.output


@pytest.mark.parametrize("name", ["nope"])
def test_compare_only_unknown_name(tiny_qwen3_dir: Path, tmp_path: Path, name: str) -> None:
    runs = '[runs.history]\nexamples_mode = "history"\n'
    result = runner.invoke(app, ["compare", str(write_config(tmp_path, tiny_qwen3_dir, runs)), "--only", name])
    assert result.exit_code == 2
    assert "No runs named nope" in result.output
