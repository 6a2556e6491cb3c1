"""``extractor eval`` (score predictions against gold) and ``extractor report`` (HTML evidence report)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

from ..errors import InputError
from ..i18n import pick
from ..metrics import RunMetrics, evaluate, load_gold, load_predictions
from ..paths import SCHEMAS_DIR, resolve
from ..schema import Schema, load_schema
from ..tables_eval import eval_tables
from . import app
from .common import console, error_console, user_errors

logger = logging.getLogger(__name__)


def parse_run_arguments(arguments: list[str]) -> dict[str, Path]:
    """Name each prediction file: ``name=path``, else the file stem, else ``parent/stem`` when stems repeat.

    Raises ``InputError`` when two runs still end up with the same name.
    """
    named: list[tuple[str | None, Path]] = []
    for argument in arguments:
        name, separator, path = argument.partition("=")
        named.append((name, Path(path)) if separator and name else (None, Path(argument)))

    stems = [path.stem for name, path in named if name is None]
    runs: dict[str, Path] = {}
    for name, path in named:
        if name is None:
            name = path.stem if stems.count(path.stem) == 1 else f"{path.parent.name}/{path.stem}"
        if name in runs:
            raise InputError(
                pick("两个预测文件的运行名称都是「{name}」。请用 名称=路径 的形式区分，例如 base={path}。",
                     'Two prediction files are both named "{name}". Name them as name=path, e.g. base={path}.',
                     name=name, path=path)
            )
        runs[name] = path
    return runs


def _load_schema_option(schema: Optional[str]) -> Schema | None:
    return load_schema(resolve(schema, SCHEMAS_DIR, ".json")) if schema else None


def write_metrics_json(runs: dict[str, RunMetrics], gold: Path, out: Path) -> None:
    """Write every run's metrics as one JSON document for scripts."""
    document = {
        "gold": str(gold),
        "normalize_strings": next(iter(runs.values())).normalize_strings,
        "runs": {name: metrics.to_dict() for name, metrics in runs.items()},
    }
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(
            pick("无法写入 {path}：{error}。请换一个可写的路径。", "Cannot write {path}: {error}. Choose a writable path.",
                 path=out, error=exc.strerror or exc)
        ) from exc


def _print_notes(runs: dict[str, RunMetrics]) -> None:
    for name, metrics in runs.items():
        if metrics.extra_ids:
            shown = ", ".join(metrics.extra_ids[:5]) + (" …" if len(metrics.extra_ids) > 5 else "")
            console.print(
                pick("{name}：{n} 条预测的 id 不在金标准中，已忽略：{ids}",
                     "{name}: {n} prediction(s) have ids not in gold and were ignored: {ids}",
                     name=name, n=len(metrics.extra_ids), ids=shown),
                highlight=False, markup=False,
            )
        if metrics.unscored_fields:
            console.print(
                pick("{name}：金标准未标注这些字段，未计分：{fields}",
                     "{name}: gold does not annotate these fields, so they were not scored: {fields}",
                     name=name, fields=", ".join(metrics.unscored_fields)),
                highlight=False, markup=False,
            )


def check_fail_under(runs: dict[str, RunMetrics], threshold: float) -> list[str]:
    """Return a message for each run whose micro F1 is below ``threshold``; a run with nothing to score fails."""
    messages = []
    for name, metrics in runs.items():
        f1 = metrics.micro.f1
        if f1 is None or f1 < threshold:
            shown = "—" if f1 is None else f"{f1:.3f}"
            messages.append(
                pick("{name} 的 micro F1 为 {f1}，低于 --fail-under {threshold}。",
                     "{name}: micro F1 {f1} is below --fail-under {threshold}.",
                     name=name, f1=shown, threshold=threshold)
            )
    return messages


@app.command("eval")
def eval_command(
    predictions: list[str] = typer.Argument(
        ..., help=pick("extract 输出的结果 JSONL，可多个；可写成 名称=路径。", "Results JSONL written by extract, one or more; name a run as name=path."),
        show_default=False,
    ),
    gold: Path = typer.Option(
        ..., "--gold", "-g", help=pick("金标准 JSONL，每行 {\"id\", \"fields\"}。", 'Gold JSONL, one {"id", "fields"} object per line.'),
    ),
    schema: Optional[str] = typer.Option(
        None, "--schema", "-s", help=pick("JSON Schema（可选），用于字段顺序和嵌套字段。", "JSON Schema (optional), for field order and nested fields."),
    ),
    strict: bool = typer.Option(
        False, "--strict",
        help=pick("字符串逐字比较（不做全角/半角、空白、标点归一化，数字字符串不等于数字）。",
                  "Compare strings exactly: no width, whitespace or punctuation folding, and \"8\" differs from 8."),
    ),
    json_out: Optional[Path] = typer.Option(None, "--json", help=pick("把指标写成 JSON 文件。", "Write the metrics to this JSON file.")),
    fail_under: Optional[float] = typer.Option(
        None, "--fail-under", min=0.0, max=1.0,
        help=pick("任一运行的 micro F1 低于该值（0–1）时退出码为 1。", "Exit with code 1 when any run's micro F1 is below this value (0–1)."),
    ),
) -> None:
    """Score extraction results against gold: precision, recall, F1 per field, exact match and failures."""
    failures: list[str] = []
    with user_errors():
        loaded_schema = _load_schema_option(schema)
        gold_rows = load_gold(gold)
        runs = {
            name: evaluate(gold_rows, load_predictions(path), loaded_schema, normalize_strings=not strict, name=name)
            for name, path in parse_run_arguments(predictions).items()
        }

        for table in eval_tables(runs):
            console.print(table)
        _print_notes(runs)
        if json_out is not None:
            write_metrics_json(runs, gold, json_out)

        if fail_under is not None:
            failures = check_fail_under(runs, fail_under)
        for message in failures:
            error_console.print(message, highlight=False, markup=False)
    if failures:
        raise typer.Exit(code=1)


@app.command("report")
def report_command(
    results: Path = typer.Argument(..., help=pick("extract 输出的结果 JSONL。", "Results JSONL written by extract."), show_default=False),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help=pick("HTML 报告路径（默认与结果文件同名的 .html）。", "HTML report path (default: the results path with .html)."),
    ),
    records: Optional[Path] = typer.Option(
        None, "--records", "-r",
        help=pick("病历所在的文件夹或 JSONL（默认按结果行中的 source 重新读取）。",
                  "Folder or JSONL holding the records (default: re-read each row's source)."),
    ),
    schema: Optional[str] = typer.Option(
        None, "--schema", "-s", help=pick("JSON Schema（可选），决定字段顺序。", "JSON Schema (optional), for field order."),
    ),
) -> None:
    """Write one self-contained HTML page that highlights every extracted value in its record."""
    from ..report import write_report

    with user_errors():
        target = out or results.with_suffix(".html")
        summary = write_report(results, target, records_path=records, schema=_load_schema_option(schema))
        console.print(
            pick("已写入 {path}：{n} 条记录，{missing} 条找不到病历原文。",
                 "Wrote {path}: {n} record(s), {missing} without record text.",
                 path=target, n=summary.records, missing=summary.without_text),
            highlight=False, markup=False,
        )
