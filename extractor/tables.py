"""Rich tables for extraction runs, built by pure functions so tests can compare exact text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from .i18n import pick

STATUS_STYLE = {"valid": "green", "invalid": "yellow", "failed": "red"}


def status_label(status: str) -> str:
    labels = {
        "valid": pick("有效", "valid"),
        "invalid": pick("无效", "invalid"),
        "failed": pick("失败", "failed"),
    }
    return labels.get(status, status)


def rows_table(rows: Sequence[dict[str, Any]], max_error_chars: int = 48) -> Table:
    """Build a table with one line per record: status, filled fields, attempts, tokens, seconds, first error."""
    table = Table(title=pick("抽取结果", "Extraction results"), show_lines=False)
    table.add_column(pick("记录", "Record"), overflow="fold")
    table.add_column(pick("状态", "Status"))
    table.add_column(pick("已填字段", "Filled"), justify="right")
    table.add_column(pick("尝试", "Attempts"), justify="right")
    table.add_column(pick("token 输入/输出", "Tokens in/out"), justify="right")
    table.add_column(pick("秒", "Seconds"), justify="right")
    table.add_column(pick("首个错误", "First error"), overflow="fold")

    for row in rows:
        status = row.get("status", "failed")
        field_status = row.get("field_status") or {}
        filled = sum(1 for s in field_status.values() if s in ("present", "negative"))
        errors = row.get("errors") or []
        first_error = _first_error(errors, max_error_chars)
        table.add_row(
            Text(str(row.get("id"))),
            Text(status_label(status), style=STATUS_STYLE.get(status, "")),
            f"{filled}/{len(field_status)}" if field_status else "-",
            str(row.get("n_attempts", 0)),
            f"{row.get('prompt_tokens', 0)}/{row.get('completion_tokens', 0)}",
            f"{row.get('seconds', 0.0):.1f}",
            Text(first_error),
        )
    return table


def summary_table(rows: Sequence[dict[str, Any]], wall_seconds: float) -> Table:
    """Build the totals of a run: records by status, tokens and throughput."""
    counts = {status: sum(1 for r in rows if r.get("status") == status) for status in ("valid", "invalid", "failed")}
    completion_tokens = sum(int(r.get("completion_tokens", 0)) for r in rows)
    table = Table(title=pick("汇总", "Summary"), show_header=False)
    table.add_column(pick("项目", "Item"))
    table.add_column(pick("数值", "Value"), justify="right")
    table.add_row(pick("记录数", "Records"), str(len(rows)))
    for status, count in counts.items():
        table.add_row(status_label(status), str(count))
    table.add_row(pick("生成 token 数", "Completion tokens"), str(completion_tokens))
    table.add_row(pick("总用时（秒）", "Wall time (s)"), f"{wall_seconds:.1f}")
    rate = completion_tokens / wall_seconds if wall_seconds > 0 else 0.0
    table.add_row(pick("生成速度（token/秒）", "Completion tokens/s"), f"{rate:.1f}")
    return table


def _first_error(errors: Sequence[dict[str, Any]], max_chars: int) -> str:
    if not errors:
        return ""
    first = errors[0]
    # Messages already name their field, so the JSON path would only repeat it.
    text = str(first.get("message") or first.get("path", "$"))
    if len(errors) > 1:
        text += pick(f"（另有 {len(errors) - 1} 条）", f" (+{len(errors) - 1} more)")
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"
