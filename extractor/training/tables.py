"""Rich tables for data conversion, training and the demo, built by pure functions so tests can pin their text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.cells import cell_len
from rich.table import Table

from ..i18n import pick
from .data import Dropped, reason_label


def dropped_table(dropped: Sequence[Dropped], limit: int = 20) -> Table:
    """List dropped records (id, source, reason, detail), at most ``limit`` rows plus a count of the rest."""
    table = Table(title=pick("丢弃的记录", "Dropped records"), title_justify="left")
    table.add_column("id")
    table.add_column(pick("位置", "Source"))
    table.add_column(pick("原因", "Reason"))
    table.add_column(pick("详情", "Detail"), overflow="fold")
    for item in dropped[:limit]:
        table.add_row(item.id, Path(item.source).name if item.source else "", reason_label(item.reason), item.detail)
    if len(dropped) > limit:
        table.add_row("…", "", pick("另有 {n} 条，见 dropped.jsonl", "{n} more in dropped.jsonl", n=len(dropped) - limit), "")
    return table


def conversion_table(counts: Mapping[str, int], paths: Mapping[str, Any]) -> Table:
    """Summarise a conversion: rows written per file."""
    table = Table(title=pick("数据转换", "Data conversion"), title_justify="left")
    table.add_column(pick("文件", "File"))
    table.add_column(pick("条数", "Rows"), justify="right")
    for name in ("train", "val", "dropped"):
        table.add_row(str(paths[name]), str(counts[name]))
    return table


def training_table(manifest: Mapping[str, Any], out: str, seconds: float) -> Table:
    """Summarise a finished run from its manifest."""
    metrics = manifest.get("metrics", {})
    training = manifest.get("training", {})
    data = manifest.get("data", {})
    table = Table(title=pick("训练完成", "Training finished"), title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        (pick("adapter", "Adapter"), out),
        (pick("基座模型", "Base model"), str(manifest.get("base_model", {}).get("name"))),
        (pick("样本（训练/验证）", "Samples (train/val)"), f"{data.get('n_train')}/{data.get('n_val')}"),
        (pick("步数", "Steps"), str(training.get("global_step"))),
        (pick("训练损失（首/末）", "Train loss (first/last)"), f"{_number(metrics.get('first_train_loss'))} → {_number(metrics.get('train_loss'))}"),
        (pick("最佳验证损失", "Best eval loss"), _number(metrics.get("best_eval_loss"))),
        (pick("设备/精度", "Device/precision"), f"{training.get('device')}/{training.get('precision')}"),
        (pick("用时", "Time"), f"{seconds:.0f} s"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def comparison_table(before: Mapping[str, Any], after: Mapping[str, Any], fields: Sequence[str], title: str) -> Table:
    """Compare two evaluations side by side: accuracy per field, JSON and schema validity, stops and time.

    Each evaluation maps ``accuracy`` (field → fraction), ``json_rate``, ``valid_rate``, ``stopped_rate``,
    ``seconds`` and ``n``.
    """
    table = Table(title=title, title_justify="left", min_width=cell_len(title))
    table.add_column(pick("指标", "Metric"))
    table.add_column(pick("微调前", "Untuned"), justify="right")
    table.add_column(pick("微调后", "Tuned"), justify="right")
    for name in fields:
        table.add_row(pick("{name} 准确率", "{name} accuracy", name=name), _percent(before["accuracy"][name]), _percent(after["accuracy"][name]))
    rows = [
        (pick("合法 JSON", "Valid JSON"), "json_rate"),
        (pick("符合 schema", "Valid under schema"), "valid_rate"),
        (pick("在 <|im_end|> 处停止", "Stopped on <|im_end|>"), "stopped_rate"),
    ]
    for label, key in rows:
        table.add_row(label, _percent(before[key]), _percent(after[key]))
    table.add_row(
        pick("抽取用时（{n} 条病历）", "Extraction time ({n} records)", n=before["n"]),
        f"{before['seconds']:.0f} s",
        f"{after['seconds']:.0f} s",
    )
    return table


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"
