"""``extractor compare``: extract the same records under several named configurations, then score them together.

A configuration file (TOML or YAML) names the records, the gold file, the output folder, shared defaults and
one table per run. Run keys are the long ``extract`` options with underscores::

    records = ["examples/records"]
    gold = "examples/gold.jsonl"
    schema = "admission"
    out = "runs/compare"

    [defaults]
    model = "Qwen/Qwen3-1.7B"
    max_new_tokens = 512

    [runs.history]
    examples_mode = "history"

    [runs.inline]
    examples_mode = "inline"

Relative paths are taken from the current folder, as on the command line.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

import typer

from ..decoding.base import GenerationSettings
from ..errors import InputError
from ..i18n import pick
from ..metrics import RunMetrics, evaluate, load_gold
from ..tables_eval import eval_tables
from . import app
from .common import console, user_errors
from .extract_cmd import RunOptions, build_extractor, load_inputs, run_extraction

logger = logging.getLogger(__name__)

GENERATION_KEYS = {f.name for f in dataclasses.fields(GenerationSettings)}
RUN_KEYS = {f.name for f in dataclasses.fields(RunOptions)} - {"generation"}
TOP_LEVEL_KEYS = {"records", "gold", "schema", "out", "defaults", "runs", "id_key", "text_key", "max_record_chars"}


def load_config(path: Path) -> dict[str, Any]:
    """Read a TOML or YAML configuration file into a dict."""
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise InputError(pick("找不到配置文件：{path}。", "Config file not found: {path}.", path=path)) from exc
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(raw)
        else:
            data = _toml_loads(raw)
    except Exception as exc:  # tomllib and yaml raise their own error types; both mean a malformed file
        raise InputError(
            pick("配置文件 {path} 格式错误：{error}", "Config file {path} is malformed: {error}", path=path, error=exc)
        ) from exc
    if not isinstance(data, dict):
        raise InputError(pick("配置文件 {path} 的顶层必须是表（映射）。", "Config file {path} must contain a table at the top.", path=path))
    return data


def _toml_loads(raw: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised only on Python 3.10
        import tomli as tomllib
    return tomllib.loads(raw)


def run_options(name: str, defaults: dict[str, Any], overrides: dict[str, Any], schema: str) -> RunOptions:
    """Merge a run's table over the shared defaults into ``RunOptions``; unknown keys are rejected by name."""
    merged = {**defaults, **overrides}
    unknown = sorted(set(merged) - RUN_KEYS - GENERATION_KEYS - {"schema"})
    if unknown:
        raise InputError(
            pick(
                "运行「{name}」中有未知选项：{keys}。可用选项即 extract 的长选项名（用下划线），如 examples_mode、adapter、max_new_tokens。",
                'Run "{name}" has unknown options: {keys}. Use the long extract option names with underscores, '
                "e.g. examples_mode, adapter, max_new_tokens.",
                name=name, keys=", ".join(unknown),
            )
        )
    generation = GenerationSettings(**{k: v for k, v in merged.items() if k in GENERATION_KEYS})
    values = {k: v for k, v in merged.items() if k in RUN_KEYS}
    values.setdefault("schema", schema)
    return RunOptions(generation=generation, **values)


@app.command(help=pick(
    "按配置文件中的多组设置分别抽取同一批病历，并与金标准一起评估、对比。",
    "Extract the same records under several named configurations from one config file, then score them together.",
))
def compare(
    config: Path = typer.Argument(..., help=pick("TOML 或 YAML 配置文件。", "TOML or YAML config file.")),
    only: list[str] = typer.Option([], "--only", help=pick("只运行这些名称的配置，可重复。", "Run only the configurations with these names; repeatable.")),
) -> None:
    with user_errors():
        settings = load_config(config)
        unknown = sorted(set(settings) - TOP_LEVEL_KEYS)
        if unknown:
            raise InputError(pick("配置文件中有未知的顶层键：{keys}。", "The config file has unknown top-level keys: {keys}.", keys=", ".join(unknown)))
        runs = _selected_runs(settings, only)
        for key in ("records", "gold", "schema"):
            if key not in settings:
                raise InputError(pick("配置文件缺少 {key}。", "The config file is missing {key}.", key=key))

        gold = load_gold(settings["gold"])
        inputs = [Path(p) for p in _as_list(settings["records"])]
        records = load_inputs(
            inputs, settings.get("id_key", "id"), settings.get("text_key", "text"), int(settings.get("max_record_chars", 0))
        )
        out = Path(settings.get("out", "runs/compare"))
        out.mkdir(parents=True, exist_ok=True)

        metrics: dict[str, RunMetrics] = {}
        for name, overrides in runs.items():
            options = run_options(name, dict(settings.get("defaults", {})), overrides, settings["schema"])
            console.rule(pick("运行 {name}", "Run {name}", name=name))
            extractor = build_extractor(options)
            rows = run_extraction(extractor, records, str(out / f"{name}.jsonl"))
            metrics[name] = evaluate(gold, rows, schema=extractor.schema, name=name)

        for table in eval_tables(metrics):
            console.print(table)


def _selected_runs(settings: dict[str, Any], only: list[str]) -> dict[str, dict[str, Any]]:
    runs = settings.get("runs")
    if not isinstance(runs, dict) or not runs:
        raise InputError(pick("配置文件中没有 [runs.名称] 表。", "The config file has no [runs.NAME] tables."))
    missing = [name for name in only if name not in runs]
    if missing:
        raise InputError(
            pick("没有名为 {names} 的运行。可选：{known}。", "No runs named {names}. Known: {known}.", names=", ".join(missing), known=", ".join(runs))
        )
    return {name: dict(table or {}) for name, table in runs.items() if not only or name in only}


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]
