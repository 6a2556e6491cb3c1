"""The training configuration: a dataclass that checks itself, loaded from TOML, YAML or JSON plus CLI overrides.

A config file is a flat table of the field names below (hyphens or underscores). Values given on the command
line replace the file's. The resolved config is saved as ``train_config.json`` beside the adapter, and that file
can be passed back with ``--config`` to repeat a run.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..decoding.loading import DEFAULT_MODEL, HUBS
from ..errors import InputError
from ..i18n import pick
from ..prompts import EXAMPLES_MODES

logger = logging.getLogger(__name__)

CONFIG_NAME = "train_config.json"
REPORT_TARGETS: tuple[str, ...] = ("none", "tensorboard", "swanlab")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
SCHEDULERS: tuple[str, ...] = ("cosine", "linear", "constant", "constant_with_warmup")


@dataclass
class TrainConfig:
    """Everything that determines a training run. Paths are kept as strings so the config serialises as is."""

    model: str = DEFAULT_MODEL
    """Base model: a hub id, a local Hugging Face folder or a ``.gguf`` file."""
    hub: str = "modelscope"
    revision: str | None = None
    data: str | None = None
    """Training data: raw annotated records or converted ``messages`` JSONL (detected per file)."""
    val: str | None = None
    """Validation data in either form. Without it, raw data is split with ``val_ratio``."""
    out: str | None = None
    schema: str | None = None
    """Schema for raw data (needed to build prompts and check gold fields)."""
    template: str | None = None
    examples: str | None = None
    no_examples: bool = False
    examples_mode: str = "history"
    val_ratio: float = 0.1
    thinking: bool = False
    """Qwen3 thinking mode. Off: the empty think block is part of the prompt, as at extraction time."""

    # LoRA. all-linear, rank 16 and alpha 32 are argued in docs/fine-tuning.md.
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"

    # optimisation
    epochs: float = 3.0
    max_steps: int = -1
    """Stop after this many optimiser steps; -1 trains for ``epochs``."""
    max_minutes: float | None = None
    """Stop (and save) once training has run this long, even if ``epochs`` or ``max_steps`` allow more."""
    lr: float = 2e-4
    scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    batch_size: int = 4
    grad_accum: int = 4
    max_length: int = 2048
    """Maximum tokens of prompt plus completion; longer records are cut in the middle of the record text."""
    seed: int = 0

    # evaluation, checkpoints, monitoring
    eval_steps: int | None = None
    """Evaluate and save a checkpoint every N steps; None picks about ten evaluations per run."""
    logging_steps: int = 5
    early_stopping_patience: int = 3
    save_total_limit: int = 2
    save_checkpoints: bool = True
    """Save checkpoints during training (needed for ``resume`` and for picking the best one on validation)."""
    resume: str | None = None
    """``latest`` (newest checkpoint under ``out``) or a checkpoint folder."""
    report_to: str = "none"
    device: str = "auto"
    precision: str = "auto"
    gradient_checkpointing: bool | None = None
    """None: on for GPUs, off on CPU (where it only costs time for the small models that fit)."""
    trust_remote_code: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes copied into the manifest (for example the demo's description)."""

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, tuple):
            self.target_modules = list(self.target_modules)
        self._check_choices()
        self._check_ranges()

    def _check_choices(self) -> None:
        choices = [
            ("hub", self.hub, HUBS),
            ("examples_mode", self.examples_mode, EXAMPLES_MODES),
            ("report_to", self.report_to, REPORT_TARGETS),
            ("device", self.device, DEVICES),
            ("precision", self.precision, PRECISIONS),
            ("scheduler", self.scheduler, SCHEDULERS),
        ]
        for name, value, allowed in choices:
            if value not in allowed:
                raise InputError(
                    pick(
                        "训练参数 {name}={value} 无效。可选：{allowed}。",
                        "Training setting {name}={value} is invalid. Choose one of: {allowed}.",
                        name=name, value=value, allowed=", ".join(allowed),
                    )
                )

    def _check_ranges(self) -> None:
        checks = [
            ("rank", self.rank >= 1, ">= 1"),
            ("alpha", self.alpha >= 1, ">= 1"),
            ("dropout", 0 <= self.dropout < 1, "in [0, 1)"),
            ("epochs", self.epochs > 0 and math.isfinite(self.epochs), "> 0"),
            ("max_steps", self.max_steps == -1 or self.max_steps >= 1, "-1 or >= 1"),
            ("max_minutes", self.max_minutes is None or self.max_minutes > 0, "> 0"),
            ("lr", 0 < self.lr < 1, "in (0, 1)"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("grad_accum", self.grad_accum >= 1, ">= 1"),
            ("max_length", self.max_length >= 16, ">= 16"),
            ("val_ratio", 0 <= self.val_ratio < 1, "in [0, 1)"),
            ("eval_steps", self.eval_steps is None or self.eval_steps >= 1, ">= 1"),
            ("logging_steps", self.logging_steps >= 1, ">= 1"),
            ("early_stopping_patience", self.early_stopping_patience >= 0, ">= 0"),
            ("save_total_limit", self.save_total_limit >= 1, ">= 1"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise InputError(
                    pick(
                        "训练参数 {name}={value} 无效，应 {rule}。",
                        "Training setting {name}={value} is invalid: it must be {rule}.",
                        name=name, value=getattr(self, name), rule=rule,
                    )
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, folder: str | Path) -> Path:
        """Write the resolved config as JSON into ``folder`` and return the file's path."""
        path = Path(folder) / CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return path


def load_config(path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Build a config from a file (TOML, YAML or JSON; optional) with non-None ``overrides`` on top."""
    values: dict[str, Any] = read_config_file(path) if path is not None else {}
    values.update({key: value for key, value in (overrides or {}).items() if value is not None})
    return TrainConfig(**values)


def with_overrides(config: TrainConfig, **overrides: Any) -> TrainConfig:
    """Return a copy of ``config`` with the non-None ``overrides`` applied and checked again."""
    return replace(config, **{key: value for key, value in overrides.items() if value is not None})


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a flat table of settings, mapping ``hyphen-names`` to field names and rejecting unknown keys."""
    path = Path(path)
    raw = _parse_config_text(path)
    if not isinstance(raw, dict):
        raise InputError(
            pick("配置文件 {path} 的顶层必须是键值表。", "Config file {path} must contain a table of settings at the top.", path=path)
        )

    known = {f.name for f in fields(TrainConfig)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise InputError(
                pick(
                    "配置文件 {path} 中有未知的设置 {key}。可用的设置：{known}。",
                    "Config file {path} has an unknown setting {key}. Known settings: {known}.",
                    path=path, key=key, known=", ".join(sorted(known)),
                )
            )
        values[name] = value
    return values


def _parse_config_text(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise InputError(
            pick("找不到配置文件：{path}。", "Config file not found: {path}.", path=path)
        ) from exc

    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            return _load_toml(text)
        if suffix in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text) or {}
        if suffix == ".json":
            return json.loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError and json.JSONDecodeError are ValueErrors
        raise _syntax_error(path, exc) from exc
    except Exception as exc:  # yaml.YAMLError has no common base with the others
        if type(exc).__module__.startswith("yaml"):
            raise _syntax_error(path, exc) from exc
        raise
    raise InputError(
        pick(
            "不支持的配置文件类型：{path}。请用 .toml、.yaml 或 .json。",
            "Unsupported config file type: {path}. Use .toml, .yaml or .json.",
            path=path,
        )
    )


def _load_toml(text: str) -> Any:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10 has no tomllib; tomli is the same parser
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads(text)


def _syntax_error(path: Path, exc: Exception) -> InputError:
    return InputError(
        pick("配置文件 {path} 解析失败：{error}", "Config file {path} could not be parsed: {error}", path=path, error=exc)
    )
