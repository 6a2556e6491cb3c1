"""``extractor parse`` and ``extractor validate``: check completions and results files without a model."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from ..checking import Checked, check_text
from ..errors import InputError
from ..i18n import pick
from ..paths import SCHEMAS_DIR, resolve
from ..results import classify_field
from ..schema import Schema, load_schema
from ..validation import FieldError, validate
from . import app
from .common import console, error_console, user_errors

FIELD_STATES = ("valid", "negative", "not_mentioned", "invalid", "failed")
ROW_STATES = ("valid", "invalid", "failed")
MAX_LISTED_PROBLEMS = 20
MAX_LISTED_BAD_LINES = 5

SchemaOption = typer.Option(
    ..., "--schema", "-s",
    help=pick("JSON Schema 文件，或内置名称（admission、basic_info）。", "JSON Schema file, or a bundled name (admission, basic_info)."),
)


# --- parse ------------------------------------------------------------------------------------------------


@app.command(help=pick(
    "检查一条模型原始输出：修复、规范化并按 schema 校验。通过时在标准输出打印 JSON，否则在标准错误输出原因并以 1 退出。",
    "Check one raw completion: repair, normalise and validate it against the schema. Prints the JSON on "
    "standard output when it is valid; otherwise prints the reasons on standard error and exits with 1.",
))
def parse(
    source: str = typer.Argument("-", help=pick("模型输出文件；- 表示标准输入。", "File holding the completion; - for standard input.")),
    schema: str = SchemaOption,
) -> None:
    with user_errors():
        loaded = load_schema(resolve(schema, SCHEMAS_DIR, ".json"))
        checked = check_text(read_completion(source), loaded)
    if checked.parsed:
        print_notes(checked)
    if not checked.valid:
        print_reasons(checked)
        raise typer.Exit(code=1)
    typer.echo(json.dumps(checked.fields, ensure_ascii=False, indent=2))


def read_completion(source: str) -> str:
    """Read a completion from a file, or from standard input for ``-``. Raises ``InputError`` naming the file."""
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(pick("找不到文件：{path}。", "File not found: {path}.", path=path)) from None
    except UnicodeDecodeError:
        raise InputError(pick("{path} 不是 UTF-8 文本。", "{path} is not UTF-8 text.", path=path)) from None
    except OSError as exc:
        raise InputError(pick("无法读取 {path}：{error}", "Cannot read {path}: {error}", path=path, error=exc.strerror or exc)) from None


def print_notes(checked: Checked) -> None:
    """Print the repairs and normalisation changes on standard error, so standard output stays pure JSON."""
    if checked.repairs:
        error_console.print(
            pick("已修复：", "Repaired: ") + escape(", ".join(checked.repairs)), highlight=False, soft_wrap=True,
        )
    for change in checked.changes:
        line = pick("已规范化 {path}：{original} → {normalized}（{rule}）", "Normalised {path}: {original} → {normalized} ({rule})",
                    path=change.path, original=_json(change.original), normalized=_json(change.normalized), rule=change.rule)
        error_console.print(escape(line), highlight=False, soft_wrap=True)


def print_reasons(checked: Checked) -> None:
    title = pick("输出无法解析：", "Completion rejected:") if not checked.parsed else pick("输出不符合 schema：", "Completion does not match the schema:")
    error_console.print(f"[bold red]{escape(title)}[/]", highlight=False)
    for error in checked.errors:
        error_console.print(f"- {escape(error.message)}", highlight=False, soft_wrap=True)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# --- validate ---------------------------------------------------------------------------------------------


@dataclass
class Compliance:
    """Per-field and per-row counts for a results file checked against a schema."""

    fields: list[str]
    counts: dict[str, dict[str, int]]
    """Field name → state (``FIELD_STATES``) → number of rows."""
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROW_STATES, 0))
    problems: list[tuple[str, FieldError]] = field(default_factory=list)
    """(row id, error) for every validation error, in file order."""

    @property
    def total(self) -> int:
        return sum(self.rows.values())


@app.command("validate", help=pick(
    "按 schema 重新校验 extract 写出的结果 JSONL，打印每个字段的合规统计。有无效或失败的行时以 1 退出。",
    "Re-check a results JSONL written by extract against a schema and print per-field compliance. "
    "Exits with 1 when any row is invalid or failed.",
))
def validate_results(
    results: Path = typer.Argument(..., help=pick("extract 输出的结果 JSONL。", "Results JSONL written by extract.")),
    schema: str = SchemaOption,
) -> None:
    with user_errors():
        loaded = load_schema(resolve(schema, SCHEMAS_DIR, ".json"))
        report = check_rows(read_result_rows(results), loaded)
    console.print(compliance_table(report))
    console.print(legend(), highlight=False)
    console.print(overall_line(report), highlight=False)
    for row_id, error in report.problems[:MAX_LISTED_PROBLEMS]:
        console.print(escape(f"- {row_id}: {error.message}"), highlight=False, soft_wrap=True)
    if len(report.problems) > MAX_LISTED_PROBLEMS:
        console.print(pick("……另有 {count} 条错误", "… and {count} more errors", count=len(report.problems) - MAX_LISTED_PROBLEMS))
    raise typer.Exit(code=0 if report.rows["valid"] == report.total else 1)


def read_result_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Read result rows with their line numbers. Raises ``InputError`` naming the file and each broken line."""
    try:
        with open(path, encoding="utf-8-sig") as stream:
            lines = list(stream)
    except FileNotFoundError:
        raise InputError(pick("找不到结果文件：{path}。请传入 extractor extract 写出的 JSONL。",
                              "Results file not found: {path}. Pass the JSONL written by extractor extract.", path=path)) from None
    except UnicodeDecodeError:
        raise InputError(pick("{path} 不是 UTF-8 文本。", "{path} is not UTF-8 text.", path=path)) from None
    except OSError as exc:
        raise InputError(pick("无法读取 {path}：{error}", "Cannot read {path}: {error}", path=path, error=exc.strerror or exc)) from None

    rows: list[tuple[int, dict[str, Any]]] = []
    broken: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row, problem = _parse_row(line)
        if problem:
            broken.append(pick("第 {line} 行：{problem}", "line {line}: {problem}", line=number, problem=problem))
        else:
            rows.append((number, row))
    if broken:
        raise InputError(_broken_lines_message(path, broken))
    return rows


def _parse_row(line: str) -> tuple[dict[str, Any], str]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return {}, pick("不是合法的 JSON（{error}，第 {column} 列）", "not valid JSON ({error} at column {column})", error=exc.msg, column=exc.colno)
    if not isinstance(row, dict) or "fields" not in row:
        return {}, pick("不是结果行（应为含 \"fields\" 的对象）", 'not a result row (expected an object with "fields")')
    return row, ""


def _broken_lines_message(path: Path, broken: list[str]) -> str:
    listed = "; ".join(broken[:MAX_LISTED_BAD_LINES])
    more = len(broken) - MAX_LISTED_BAD_LINES
    if more > 0:
        listed += pick("；另有 {count} 行", "; and {count} more", count=more)
    return pick("结果文件 {path} 有 {count} 行无法读取：{lines}。请修正或删除这些行后重试。",
                "Results file {path} has {count} unreadable line(s): {lines}. Fix or remove them and run again.",
                path=path, count=len(broken), lines=listed)


def check_rows(rows: Iterable[tuple[int, dict[str, Any]]], schema: Schema) -> Compliance:
    """Validate each row's ``fields`` and count, per top-level field, the state it is in."""
    names = schema.field_names()
    report = Compliance(fields=names, counts={name: dict.fromkeys(FIELD_STATES, 0) for name in names})
    for number, row in rows:
        row_id = str(row.get("id", pick("第 {line} 行", "line {line}", line=number)))
        fields = row.get("fields")
        if fields is None:
            report.rows["failed"] += 1
            for name in names:
                report.counts[name]["failed"] += 1
            continue

        errors = validate(fields, schema)
        report.rows["invalid" if errors else "valid"] += 1
        report.problems.extend((row_id, e) for e in errors)
        for name, state in field_states(fields, errors, names).items():
            report.counts[name][state] += 1
    return report


def field_states(fields: Any, errors: list[FieldError], names: list[str]) -> dict[str, str]:
    """Return each field's state: ``invalid`` when an error points into it (or at the whole object), else its class."""
    failed = {_top_field(e.path) for e in errors}
    values = fields if isinstance(fields, dict) else {}
    states = {}
    for name in names:
        if name in failed or "" in failed:
            states[name] = "invalid"
            continue
        state = classify_field(values.get(name), failed=False)
        states[name] = "valid" if state == "present" else state
    return states


def _top_field(path: str) -> str:
    """Return the top-level field a path points into, or ``""`` for the whole object."""
    if not path.startswith("$."):
        return ""
    return path[2:].split(".")[0].split("[")[0]


def _state_labels() -> dict[str, str]:
    return {
        "valid": pick("有效", "valid"),
        "negative": pick("明确否认", "negative"),
        "not_mentioned": pick("未提及", "not mentioned"),
        "invalid": pick("无效", "invalid"),
        "failed": pick("失败", "failed"),
    }


def compliance_table(report: Compliance) -> Table:
    """Build one line per schema field: how many rows hold a valid value, a negative, null, an invalid value or nothing."""
    labels = _state_labels()
    table = Table(title=pick("字段合规统计", "Field compliance"))
    table.add_column(pick("字段", "Field"), overflow="fold")
    for state in FIELD_STATES:
        table.add_column(labels[state], justify="right")
    for name in report.fields:
        table.add_row(escape(name), *(str(report.counts[name][state]) for state in FIELD_STATES))
    return table


def legend() -> str:
    return pick(
        "有效=通过校验的值；明确否认=false、[] 或否认原文；未提及=null；无效=未通过校验；失败=整行无法解析。",
        "valid: a value that passes the schema. negative: false, [] or a denial. not mentioned: null. "
        "invalid: fails the schema. failed: the row has no parsed fields.",
    )


def overall_line(report: Compliance) -> str:
    """Summarise the rows, e.g. ``3 rows: 1 valid, 1 invalid, 1 failed``."""
    return pick(
        "共 {total} 行：有效 {valid}，无效 {invalid}，失败 {failed}",
        "{total} rows: {valid} valid, {invalid} invalid, {failed} failed",
        total=report.total, **report.rows,
    )
