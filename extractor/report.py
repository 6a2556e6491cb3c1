"""A self-contained HTML evidence report: each record's text with every extracted value highlighted.

The page has no network dependency: CSS and JavaScript are inline and nothing is fetched. Each highlight is
a ``<mark>`` with ``data-field``, ``data-path``, ``data-start`` and ``data-end`` (offsets into the record
text), so a reviewer's tools and the browser test can read them back.

Usage::

    write_report("results.jsonl", "report.html", records_path="records/")
"""

from __future__ import annotations

import heapq
import html
import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError
from .grounding import AMBIGUOUS, FOUND, NOT_FOUND, ground_row
from .i18n import pick
from .metrics import read_jsonl_objects
from .records import Record, read_records
from .report_assets import REPORT_CSS, REPORT_JS
from .results import classify_field
from .schema import Schema

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordText:
    """The text a row was extracted from, or why it is not available."""

    text: str | None
    note: str | None = None
    """A warning for the reader: the text is missing, unreadable or changed since extraction."""


@dataclass(frozen=True)
class ReportSummary:
    records: int
    without_text: int


@dataclass(frozen=True)
class Highlight:
    """One evidence span to mark in a record text."""

    start: int
    end: int
    path: str
    key: str
    """The field the colour follows: the path without indices, e.g. ``用药[].药名``."""
    status: str
    value: str
    span_id: str


@dataclass(frozen=True)
class Piece:
    """A highlight, or the part of one, that nests properly inside the pieces around it."""

    start: int
    end: int
    highlight: Highlight
    part: int


# ---------------------------------------------------------------------------------------------------------
# Loading rows and record texts


def load_result_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read a results JSONL file; raises ``InputError`` naming a bad line."""
    rows = [item for _, item in read_jsonl_objects(path, pick("结果", "results"))]
    if not rows:
        raise InputError(
            pick("结果文件 {path} 中没有任何行。请先运行 extract。", "The results file {path} has no rows. Run extract first.",
                 path=path)
        )
    return rows


def load_record_texts(rows: Sequence[Mapping[str, Any]], records_path: str | Path | None = None) -> list[RecordText]:
    """Find each row's record text: by id in ``records_path`` first, else by re-reading the row's ``source``."""
    by_id: dict[str, Record] = {}
    if records_path is not None:
        for record in read_records([records_path]):
            by_id.setdefault(record.id, record)

    cache: dict[str, list[Record]] = {}
    texts = []
    for row in rows:
        record = by_id.get(str(row.get("id"))) or _record_from_source(row, cache)
        texts.append(_record_text(row, record))
    return texts


def _record_from_source(row: Mapping[str, Any], cache: dict[str, list[Record]]) -> Record | None:
    """Re-read the record named by ``source``: a file path, or ``path:line`` for JSONL input."""
    source = str(row.get("source") or "")
    match = re.fullmatch(r"(.+):(\d+)", source)
    file, line = (match.group(1), match.group(2)) if match and not Path(source).exists() else (source, None)
    if not file or not Path(file).is_file():
        return None

    if file not in cache:
        try:
            cache[file] = list(read_records([file]))
        except InputError as exc:
            logger.warning("cannot re-read records from %s: %s", file, exc)
            cache[file] = []
    records = cache[file]
    if line is not None:
        return next((r for r in records if r.source.endswith(f":{line}")), None)
    return records[0] if len(records) == 1 else next((r for r in records if r.id == row.get("id")), None)


def _record_text(row: Mapping[str, Any], record: Record | None) -> RecordText:
    if record is None:
        return RecordText(None, pick("找不到病历原文，可用 --records 指定病历所在位置。",
                                     "The record text was not found. Point --records at the records."))
    if record.error is not None:
        return RecordText(None, record.error)
    if row.get("record_sha256") and row.get("record_sha256") != record.sha256:
        return RecordText(record.text, pick("病历原文在抽取之后被修改过，高亮位置可能不准。",
                                            "The record text changed after extraction, so highlights may be misplaced."))
    return RecordText(record.text)


# ---------------------------------------------------------------------------------------------------------
# Highlighting


def nest_pieces(highlights: Sequence[Highlight], length: int) -> list[Piece]:
    """Cut highlights into pieces that nest properly, so overlapping spans still give well-formed HTML.

    Spans are taken by start, longer first. A span that starts inside an open piece but ends after it is
    cut at that piece's end, and its remainder is queued as a new piece of the same highlight.
    """
    queue: list[tuple[int, int, int, Highlight]] = []
    for order, item in enumerate(highlights):
        start, end = max(0, item.start), min(length, item.end)
        if start < end:
            heapq.heappush(queue, (start, -end, order, item))

    open_pieces: list[Piece] = []
    pieces: list[Piece] = []
    parts: Counter[str] = Counter()
    while queue:
        start, negative_end, order, item = heapq.heappop(queue)
        end = -negative_end
        while open_pieces and open_pieces[-1].end <= start:
            open_pieces.pop()
        if open_pieces and end > open_pieces[-1].end:
            cut = open_pieces[-1].end
            heapq.heappush(queue, (cut, -end, order, item))
            end = cut
        piece = Piece(start, end, item, parts[item.span_id])
        parts[item.span_id] += 1
        open_pieces.append(piece)
        pieces.append(piece)
    return pieces


def escape_text(text: str) -> str:
    """Escape record text for HTML; carriage returns become ``&#13;`` so the parser keeps them."""
    return html.escape(text, quote=False).replace("\r", "&#13;")


def _attribute(value: Any) -> str:
    return html.escape(str(value), quote=True).replace("\r", "&#13;").replace("\n", "&#10;")


def render_highlighted(text: str, highlights: Sequence[Highlight], classes: Mapping[str, str]) -> str:
    """Return the escaped text with a ``<mark>`` around each highlight piece; ``classes`` maps field key to CSS class."""
    pieces = nest_pieces(highlights, len(text))
    opening: defaultdict[int, list[Piece]] = defaultdict(list)
    closing: Counter[int] = Counter()
    for piece in pieces:
        opening[piece.start].append(piece)
        closing[piece.end] += 1

    cuts = sorted({0, len(text), *opening, *closing})
    out = []
    for position, following in zip(cuts, [*cuts[1:], None]):
        out.append("</mark>" * closing[position])
        for piece in sorted(opening[position], key=lambda p: -p.end):
            out.append(_mark_tag(piece, classes))
        if following is not None:
            out.append(escape_text(text[position:following]))
    return "".join(out)


def _mark_tag(piece: Piece, classes: Mapping[str, str]) -> str:
    item = piece.highlight
    attributes = {
        "class": f"ev {classes.get(item.key, '')} st-{item.status}",
        "data-field": item.key,
        "data-path": item.path,
        "data-start": item.start,
        "data-end": item.end,
        "data-status": item.status,
        "data-span": item.span_id,
        "data-part": piece.part,
        "data-value": item.value,
        "title": f"{item.path[2:]}: {item.value}",
    }
    return "<mark " + " ".join(f'{name}="{_attribute(value)}"' for name, value in attributes.items()) + ">"


def field_key(path: str) -> str:
    """Return the colour key of a JSON path: indices dropped, ``$.`` and a trailing ``[]`` removed."""
    key = re.sub(r"\[\d+\]", "[]", path)
    key = key[2:] if key.startswith("$.") else key.lstrip("$")
    return key[:-2] if key.endswith("[]") else key


def highlights_for(evidence: Mapping[str, Mapping[str, Any]], record_index: int) -> list[Highlight]:
    """List one highlight per span of every value, with ``span_id`` ``r<record>-v<value>-<occurrence>``."""
    items = []
    for value_index, (path, entry) in enumerate(evidence.items()):
        for number, (start, end) in enumerate(entry.get("spans") or []):
            items.append(
                Highlight(
                    start=start, end=end, path=path, key=field_key(path), status=str(entry.get("status")),
                    value=_value_text(entry.get("value")), span_id=f"r{record_index}-v{value_index}-{number}",
                )
            )
    return items


# ---------------------------------------------------------------------------------------------------------
# The side table of fields


@dataclass(frozen=True)
class FieldLine:
    path: str
    value: Any
    status: str
    grounding: str
    occurrences: int
    errors: list[str]


def iter_leaves(value: Any, path: str = "$") -> list[tuple[str, Any]]:
    """List ``(json path, value)`` for every leaf; empty objects and lists are leaves themselves."""
    if isinstance(value, Mapping) and value:
        return [leaf for key, child in value.items() for leaf in iter_leaves(child, f"{path}.{key}")]
    if isinstance(value, list) and value:
        return [leaf for index, child in enumerate(value) for leaf in iter_leaves(child, f"{path}[{index}]")]
    return [(path, value)]


def _related(path: str, error_path: str) -> bool:
    """True when the error sits at the path, above it, or inside it."""
    def within(inner: str, outer: str) -> bool:
        return inner == outer or inner.startswith((outer + ".", outer + "["))

    return within(path, error_path) or within(error_path, path)


def ordered_fields(fields: Mapping[str, Any], schema: Schema | None) -> dict[str, Any]:
    """Return the row's fields in schema order, then any others in their own order."""
    if schema is None:
        return dict(fields)
    names = [name for name in schema.field_names() if name in fields]
    return {**{name: fields[name] for name in names}, **fields}


def field_lines(row: Mapping[str, Any], evidence: Mapping[str, Mapping[str, Any]], schema: Schema | None) -> list[FieldLine]:
    fields = row.get("fields")
    if not isinstance(fields, Mapping):
        return []
    errors = [e for e in row.get("errors") or [] if isinstance(e, Mapping)]
    lines = []
    for path, value in iter_leaves(ordered_fields(fields, schema)):
        related = [str(e.get("message", "")) for e in errors if e.get("path", "$") != "$" and _related(path, str(e.get("path")))]
        entry = evidence.get(path)
        lines.append(
            FieldLine(
                path=path, value=value, status=classify_field(value, failed=bool(related)),
                grounding=str(entry.get("status")) if entry else "",
                occurrences=len(entry.get("spans") or []) if entry else 0, errors=related,
            )
        )
    return lines


def _status_label(status: str) -> str:
    labels = {
        "present": pick("有值", "present"),
        "not_mentioned": pick("未提及", "not mentioned"),
        "negative": pick("明确否认", "negative"),
        "failed": pick("失败", "failed"),
        FOUND: pick("已找到", "found"),
        AMBIGUOUS: pick("多处出现", "ambiguous"),
        NOT_FOUND: pick("未找到", "not found"),
    }
    return labels.get(status, status)


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render_field_table(lines: Sequence[FieldLine], classes: Mapping[str, str]) -> str:
    head = "".join(
        f"<th>{html.escape(label)}</th>"
        for label in (pick("字段", "Field"), pick("值", "Value"), pick("状态", "Status"), pick("原文依据", "Evidence"),
                      pick("校验错误", "Errors"))
    )
    body = []
    for line in lines:
        grounding = _status_label(line.grounding) if line.grounding else "—"
        if line.grounding == AMBIGUOUS:
            grounding += f" ×{line.occurrences}"
        swatch = f'<span class="swatch {classes.get(field_key(line.path), "")}"></span>' if line.grounding else ""
        body.append(
            f'<tr data-path="{_attribute(line.path)}" class="st-{line.status} gr-{line.grounding or "none"}">'
            f"<td>{swatch}{html.escape(line.path[2:])}</td>"
            f"<td>{html.escape(_value_text(line.value))}</td>"
            f'<td><span class="badge b-{line.status}">{html.escape(_status_label(line.status))}</span></td>'
            f'<td class="g-{line.grounding or "none"}">{html.escape(grounding)}</td>'
            f"<td>{'<br>'.join(html.escape(e) for e in line.errors)}</td></tr>"
        )
    return f'<table class="fields"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


# ---------------------------------------------------------------------------------------------------------
# The page


def row_status(row: Mapping[str, Any]) -> str:
    """``valid``, ``invalid`` or ``failed``, as ``ResultRow.status`` defines them."""
    status = row.get("status")
    if status in ("valid", "invalid", "failed"):
        return str(status)
    if row.get("valid") is True:
        return "valid"
    return "failed" if row.get("fields") is None else "invalid"


def colour_classes(evidences: Sequence[Mapping[str, Any]], schema: Schema | None) -> dict[str, str]:
    """Give each field key that has evidence a CSS class ``f<n>``, in schema order when a schema is given."""
    keys = list(dict.fromkeys(field_key(path) for evidence in evidences for path in evidence))
    if schema is not None:
        order = {key: index for index, key in enumerate(schema_keys(schema))}
        keys.sort(key=lambda key: order.get(key, len(order)))
    return {key: f"f{index}" for index, key in enumerate(keys)}


def schema_keys(schema: Schema) -> list[str]:
    keys = []
    stack = list(reversed(schema.fields))
    while stack:
        item = stack.pop()
        if item.children:
            stack.extend(reversed(item.children))
        else:
            keys.append(field_key(item.path))
    return keys


def colour_css(classes: Mapping[str, str]) -> str:
    """Write one CSS rule per field class. Hues step by the golden angle so that neighbouring fields differ."""
    rules = []
    for index, css_class in enumerate(classes.values()):
        hue = round(index * 137.508) % 360
        rules.append(f".{css_class}{{--bg:hsl({hue} 90% 83%);--edge:hsl({hue} 60% 38%)}}")
    return "\n".join(rules)


def _rows_html(pairs: Sequence[tuple[str, Any]], css_class: str) -> str:
    body = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(str(value))}</td></tr>" for label, value in pairs)
    return f'<table class="{css_class}">{body}</table>'


def render_summary(rows: Sequence[Mapping[str, Any]], evidences: Sequence[Mapping[str, Any]], texts: Sequence[RecordText]) -> str:
    statuses = Counter(row_status(row) for row in rows)
    grounding = Counter(str(entry.get("status")) for evidence in evidences for entry in evidence.values())
    prompt_tokens = sum(int(row.get("prompt_tokens") or 0) for row in rows)
    completion_tokens = sum(int(row.get("completion_tokens") or 0) for row in rows)
    seconds = sum(float(row.get("seconds") or 0) for row in rows)
    stamps = {json.dumps(row.get("stamp") or {}, ensure_ascii=False, sort_keys=True) for row in rows}
    stamp = (rows[0].get("stamp") or {}) if rows else {}
    count = len(rows)
    per_record = max(count, 1)

    pairs = [
        (pick("记录", "Records"), count),
        (pick("有效", "Valid"), statuses["valid"]),
        (pick("无效", "Invalid"), statuses["invalid"]),
        (pick("失败", "Failed"), statuses["failed"]),
        (pick("缺少病历原文", "Without record text"), sum(text.text is None for text in texts)),
        (pick("原文依据：找到 / 多处 / 未找到", "Evidence: found / ambiguous / not found"),
         f"{grounding[FOUND]} / {grounding[AMBIGUOUS]} / {grounding[NOT_FOUND]}"),
        (pick("模型", "Model"), stamp.get("model", "—")),
        (pick("Token（提示词 + 生成）", "Tokens (prompt + completion)"),
         f"{prompt_tokens} + {completion_tokens} ({(prompt_tokens + completion_tokens) / per_record:.0f} {pick('每条', 'per record')})"),
        (pick("耗时", "Seconds"), f"{seconds:.1f} ({seconds / per_record:.2f} {pick('每条', 'per record')})"),
    ]
    if len(stamps) > 1:
        pairs.append((pick("不同的运行设置", "Distinct run stamps"), len(stamps)))
    stamp_pairs = [(str(k), v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v, ensure_ascii=False))
                   for k, v in stamp.items()]
    details = f"<details><summary>{html.escape(pick('运行设置', 'Run stamp'))}</summary>{_rows_html(stamp_pairs, 'stamp')}</details>"
    return f'<section id="summary"><h2>{html.escape(pick("运行概况", "Run summary"))}</h2>{_rows_html(pairs, "summary")}{details}</section>'


def render_legend(classes: Mapping[str, str]) -> str:
    items = "".join(f'<li><span class="swatch {css}"></span>{html.escape(key)}</li>' for key, css in classes.items())
    explanation = pick("实线：原文中只出现一次；虚线：出现多次（全部标出）。点击右侧字段可跳到原文。",
                       "Solid: the value occurs once; dashed: it occurs several times (all marked). Click a field to jump to its text.")
    toggle = pick("隐藏多处出现的高亮", "Hide ambiguous highlights")
    return (
        f'<section id="legend"><h2>{html.escape(pick("字段颜色", "Fields"))}</h2><ul class="legend">{items}</ul>'
        f"<p>{html.escape(explanation)}</p>"
        f'<label><input type="checkbox" id="hide-ambiguous"> {html.escape(toggle)}</label></section>'
    )


def render_index(rows: Sequence[Mapping[str, Any]]) -> str:
    items = "".join(
        f'<li><a href="#rec-{index}">{html.escape(str(row.get("id")))}</a> '
        f'<span class="badge b-{row_status(row)}">{html.escape(row_status(row))}</span></li>'
        for index, row in enumerate(rows)
    )
    return f'<nav id="index"><h2>{html.escape(pick("记录列表", "Records"))}</h2><ol>{items}</ol></nav>'


def render_record(
    index: int, row: Mapping[str, Any], text: RecordText, evidence: Mapping[str, Mapping[str, Any]],
    schema: Schema | None, classes: Mapping[str, str],
) -> str:
    status = row_status(row)
    header = (
        f'<h2>{html.escape(str(row.get("id")))} <span class="badge b-{status}">{html.escape(status)}</span></h2>'
        f'<p class="source">{html.escape(str(row.get("source") or ""))}</p>'
    )
    if text.note:
        header += f'<p class="note">{html.escape(text.note)}</p>'

    if text.text is not None:
        body = render_highlighted(text.text, highlights_for(evidence, index), classes)
        text_pane = f'<div class="text" data-record="{index}">{body}</div>'
    else:
        text_pane = f'<div class="text missing">{html.escape(pick("（无病历原文）", "(no record text)"))}</div>'

    lines = field_lines(row, evidence, schema)
    if lines:
        side = render_field_table(lines, classes)
    else:
        side = f'<p class="note">{html.escape(pick("没有可显示的字段：模型输出无法解析。", "No fields to show: the completion could not be parsed."))}</p>'
    root_errors = [e for e in row.get("errors") or [] if isinstance(e, Mapping) and e.get("path", "$") == "$"]
    if row.get("fields") is None or root_errors:
        items = "".join(f"<li>{html.escape(str(e.get('message', '')))}</li>" for e in root_errors)
        side += f'<ul class="errors">{items}</ul>'
    if status != "valid" and row.get("completion"):
        side += (f"<details><summary>{html.escape(pick('模型原始输出', 'Raw completion'))}</summary>"
                 f'<pre class="completion">{escape_text(str(row["completion"]))}</pre></details>')
    return (
        f'<article class="record" id="rec-{index}" data-id="{_attribute(row.get("id"))}">{header}'
        f'<div class="record-body">{text_pane}<div class="side">{side}</div></div></article>'
    )


def build_report(
    rows: Sequence[Mapping[str, Any]], texts: Sequence[RecordText], schema: Schema | None = None, title: str = ""
) -> str:
    """Return the whole HTML page for result rows and their record texts (``texts[i]`` belongs to ``rows[i]``)."""
    evidences = [ground_row(row, text.text) if text.text is not None else {} for row, text in zip(rows, texts)]
    classes = colour_classes(evidences, schema)
    title = title or pick("抽取证据报告", "Extraction evidence report")
    records = "".join(
        render_record(index, row, text, evidence, schema, classes)
        for index, (row, text, evidence) in enumerate(zip(rows, texts, evidences))
    )
    return (
        '<!DOCTYPE html>\n<html lang="zh"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{REPORT_CSS}\n{colour_css(classes)}</style></head>"
        f"<body><header><h1>{html.escape(title)}</h1></header><main>"
        f"{render_summary(rows, evidences, texts)}{render_legend(classes)}{render_index(rows)}{records}"
        f"</main><script>{REPORT_JS}</script></body></html>\n"
    )


def write_report(
    results_path: str | Path, out_path: str | Path, records_path: str | Path | None = None, schema: Schema | None = None
) -> ReportSummary:
    """Read result rows and their record texts, and write the HTML report to ``out_path``."""
    rows = load_result_rows(results_path)
    texts = load_record_texts(rows, records_path)
    page = build_report(rows, texts, schema, title=pick("抽取证据报告：{name}", "Extraction evidence report: {name}",
                                                       name=Path(results_path).name))
    out_path = Path(out_path)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(
            pick("无法写入 {path}：{error}。请换一个可写的路径。", "Cannot write {path}: {error}. Choose a writable path.",
                 path=out_path, error=exc.strerror or exc)
        ) from exc
    without_text = sum(text.text is None for text in texts)
    logger.info("report written to %s: %d rows, %d without record text", out_path, len(rows), without_text)
    return ReportSummary(records=len(rows), without_text=without_text)
