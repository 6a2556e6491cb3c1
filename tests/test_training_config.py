"""Training config: files in three formats, CLI overrides, self-checks and the saved resolved copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extractor.errors import InputError
from extractor.training.config import CONFIG_NAME, TrainConfig, load_config, with_overrides

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_loads() -> None:
    config = load_config(ROOT / "configs" / "lora-qwen.toml")
    assert config.model == "Qwen/Qwen3-1.7B"
    assert (config.rank, config.alpha, config.dropout, config.target_modules) == (16, 32, 0.05, "all-linear")
    assert config.thinking is False


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("run.toml", 'rank = 8\nmax-length = 1024\nlr = 1e-4\ntarget_modules = ["q_proj", "v_proj"]\n'),
        ("run.yaml", "rank: 8\nmax-length: 1024\nlr: 1.0e-4\ntarget_modules: [q_proj, v_proj]\n"),
        ("run.json", '{"rank": 8, "max-length": 1024, "lr": 1e-4, "target_modules": ["q_proj", "v_proj"]}'),
    ],
)
def test_config_file_formats(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")

    config = load_config(path)

    assert config.rank == 8
    assert config.max_length == 1024
    assert config.lr == pytest.approx(1e-4)
    assert config.target_modules == ["q_proj", "v_proj"]


def test_cli_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("rank = 8\nepochs = 2\n", encoding="utf-8")

    config = load_config(path, {"rank": 32, "epochs": None, "out": "runs/x"})

    assert config.rank == 32
    assert config.epochs == 2
    assert config.out == "runs/x"


def test_unknown_key_rejected(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("lora_rank = 8\n", encoding="utf-8")
    with pytest.raises(InputError, match="unknown setting lora_rank"):
        load_config(path)


def test_syntax_error_names_file(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("rank = = 8\n", encoding="utf-8")
    with pytest.raises(InputError, match="could not be parsed"):
        load_config(path)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("rank", 0), ("dropout", 1.0), ("lr", 0.0), ("max_steps", 0), ("report_to", "wandb"), ("precision", "fp8"), ("examples_mode", "x")],
)
def test_invalid_value_rejected(setting: str, value: object) -> None:
    with pytest.raises(InputError, match=setting):
        TrainConfig(**{setting: value})  # type: ignore[arg-type]


def test_overrides_are_checked() -> None:
    with pytest.raises(InputError, match="batch_size"):
        with_overrides(TrainConfig(), batch_size=0)


def test_saved_config_round_trips(tmp_path: Path) -> None:
    config = TrainConfig(rank=4, lr=5e-4, out=str(tmp_path), extra={"note": "x"})
    path = config.save(tmp_path)

    assert path.name == CONFIG_NAME
    assert json.loads(path.read_text(encoding="utf-8"))["rank"] == 4
    assert load_config(path) == config
