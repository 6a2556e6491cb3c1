"""Rich tables for ``eval``: the run summary (one column per run) and per-field scores.

Pure functions from ``RunMetrics`` to ``rich.table.Table``, so that tests render them on a pinned console.
With two or more runs the best value of each row is bold and marked with ★.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

from .i18n import pick
from .metrics import FieldScore, RunMetrics

BEST_MARK = " ★"
MISSING = "—"


@dataclass(frozen=True)
class _Row:
    """One summary row: its label, how to read the run's value, and which direction is better."""

    zh: str
    en: str
    read: Callable[[RunMetrics], tuple[float | None, str]]
    better: str | None = None
    """``high``, ``low``, or None when no run is better (plain counts)."""


def format_score(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3f}"


def format_rate(count: int, metrics: RunMetrics) -> tuple[float | None, str]:
    rate = metrics.rate(count)
    if rate is None:
        return None, MISSING
    return rate, f"{rate:.1%} ({count}/{metrics.n_gold})"


def _score(value: float | None) -> tuple[float | None, str]:
    return value, format_score(value)


def _count(value: int) -> tuple[float | None, str]:
    return value, str(value)


def _mean(value: float | None, digits: int) -> tuple[float | None, str]:
    return value, MISSING if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> tuple[float | None, str]:
    return value, MISSING if value is None else f"{value:.1%}"


_SUMMARY_ROWS = (
    _Row("记录", "Records", lambda m: _count(m.n_gold)),
    _Row("精确率（micro）", "Precision (micro)", lambda m: _score(m.micro.precision), "high"),
    _Row("召回率（micro）", "Recall (micro)", lambda m: _score(m.micro.recall), "high"),
    _Row("F1（micro）", "F1 (micro)", lambda m: _score(m.micro.f1), "high"),
    _Row("F1（macro）", "F1 (macro)", lambda m: _score(m.macro_f1), "high"),
    _Row("完全匹配", "Exact match", lambda m: format_rate(m.n_exact, m), "high"),
    _Row("符合 schema", "Schema compliance", lambda m: format_rate(m.n_valid, m), "high"),
    _Row("解析失败", "Parse failures", lambda m: format_rate(m.n_failed, m), "low"),
    _Row("缺少预测", "Missing predictions", lambda m: _count(m.n_missing), "low"),
    _Row("字段状态一致", "Field status agreement", lambda m: _percent(m.status_agreement_rate), "high"),
    _Row("未提及（字段）", "Not mentioned (fields)", lambda m: _count(m.status_totals()["not_mentioned"])),
    _Row("明确否认（字段）", "Negative (fields)", lambda m: _count(m.status_totals()["negative"])),
    _Row("失败（字段）", "Failed (fields)", lambda m: _count(m.status_totals()["failed"]), "low"),
    _Row("平均 token 数/记录", "Mean tokens / record", lambda m: _mean(m.mean_tokens, 1), "low"),
    _Row("平均秒数/记录", "Mean seconds / record", lambda m: _mean(m.mean_seconds, 2), "low"),
)


def best_values(values: list[float | None], better: str | None) -> set[float]:
    """Return the best value(s) of a row, or nothing when there is no direction, one run, or a full tie."""
    present = [v for v in values if v is not None]
    if better is None or len(values) < 2 or len(set(present)) < 2:
        return set()
    return {max(present) if better == "high" else min(present)}


def _cells(values: list[tuple[float | None, str]], better: str | None) -> list[Text]:
    best = best_values([v for v, _ in values], better)
    cells = []
    for value, text in values:
        if value is not None and value in best:
            cells.append(Text(text + BEST_MARK, style="bold"))
        else:
            cells.append(Text(text))
    return cells


def compare_table(runs: Mapping[str, RunMetrics]) -> Table:
    """Summarise one or more runs, one column per run, best value per row marked when there are several."""
    table = Table(title=pick("评测汇总", "Evaluation summary"), title_justify="left")
    table.add_column(pick("指标", "Metric"))
    for name in runs:
        table.add_column(name, justify="right")

    for row in _SUMMARY_ROWS:
        values = [row.read(metrics) for metrics in runs.values()]
        table.add_row(pick(row.zh, row.en), *_cells(values, row.better))
    return table


def _status_pair(score: FieldScore, status: str) -> str:
    return f"{score.predicted_status[status]}/{score.gold_status[status]}"


def field_table(metrics: RunMetrics) -> Table:
    """Per-field counts and scores for one run, with a micro total as the last row."""
    table = Table(
        title=pick("各字段得分：{name}", "Scores per field: {name}", name=metrics.name),
        title_justify="left",
        caption=pick("未提及、否认：预测/金标准中该状态的记录数。失败：预测失败的记录数。",
                     "Not mentioned, Negative: records in that state, predicted/gold. Failed: records whose prediction failed."),
        caption_justify="left",
    )
    table.add_column(pick("字段", "Field"))
    for header in ("TP", "FP", "FN", "P", "R", "F1"):
        table.add_column(header, justify="right")
    table.add_column(pick("未提及", "Not mentioned"), justify="right")
    table.add_column(pick("否认", "Negative"), justify="right")
    table.add_column(pick("失败", "Failed"), justify="right")

    for name, score in metrics.fields.items():
        table.add_row(name, *_field_cells(score))
    if table.rows:
        table.rows[-1].end_section = True
    table.add_row(pick("全部（micro）", "All (micro)"), *_field_cells(metrics.micro), style="bold")
    return table


def _field_cells(score: FieldScore) -> list[str]:
    return [
        str(score.tp),
        str(score.fp),
        str(score.fn),
        format_score(score.precision),
        format_score(score.recall),
        format_score(score.f1),
        _status_pair(score, "not_mentioned"),
        _status_pair(score, "negative"),
        str(score.predicted_status["failed"]),
    ]


def field_f1_table(runs: Mapping[str, RunMetrics]) -> Table:
    """F1 per field across runs, best run per field marked, with the spread (best minus worst) last."""
    table = Table(title=pick("各字段 F1 对比", "F1 per field across runs"), title_justify="left")
    table.add_column(pick("字段", "Field"))
    for name in runs:
        table.add_column(name, justify="right")
    table.add_column(pick("差距", "Spread"), justify="right")

    names: dict[str, None] = {}
    for metrics in runs.values():
        names.update(dict.fromkeys(metrics.fields))
    for field_name in names:
        scores = [m.fields[field_name].f1 if field_name in m.fields else None for m in runs.values()]
        values = [_score(value) for value in scores]
        present = [v for v in scores if v is not None]
        spread = format_score(max(present) - min(present)) if present else MISSING
        table.add_row(field_name, *_cells(values, "high"), spread)
    return table


def eval_tables(runs: Mapping[str, RunMetrics]) -> list[Table]:
    """Build the tables ``eval`` prints: the summary, then per-field scores (one run) or per-field F1 (several)."""
    if len(runs) == 1:
        (metrics,) = runs.values()
        return [compare_table(runs), field_table(metrics)]
    return [compare_table(runs), field_f1_table(runs)]
