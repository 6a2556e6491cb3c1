"""The HTML evidence report, checked by parsing the page: highlights, escaping, nesting, record loading."""

from __future__ import annotations

import hashlib
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from extractor.cli import app
from extractor.report import (
    Highlight,
    RecordText,
    build_report,
    field_key,
    field_lines,
    load_record_texts,
    nest_pieces,
    render_highlighted,
)

# Invented record: a value across a line break, a crossing overlap (主诉 / 症状), nested values (部位 in 主诉,
# 诊断 in 既往史), a repeated value, markup characters, a tab, full-width digits and a CRLF ending.
TEXT = (
    "姓名：张三　性别：男\n主诉：左下肢\n疼痛3天，加重1天。\n既往史：否认高血压、糖尿病史。检查：阴性；复查：阴性。\n"
    "备注：<无>特殊 & 其他\n\t用药：阿莫西林胶囊 0.5g tid\n体温：３８.５℃\r\n"
)
FIELDS = {
    "姓名": "张三", "主诉": "左下肢 疼痛3天", "症状": "疼痛3天，加重", "部位": "左下肢", "既往史": "否认高血压、糖尿病史",
    "诊断": ["高血压", "糖尿病"], "检查": "阴性", "备注": "<无>特殊", "过敏史": "青霉素过敏",
    "用药": [{"药名": "阿莫西林胶囊", "剂量": "0.5g"}], "生命体征": {"体温": 38.5, "脉搏": None},
}
# (path, start, end) of every highlight, counted by hand on TEXT.
EXPECTED_SPANS = [
    ("$.姓名", 3, 5), ("$.主诉", 14, 22), ("$.症状", 18, 25), ("$.部位", 14, 17), ("$.既往史", 33, 43),
    ("$.诊断[0]", 35, 38), ("$.诊断[1]", 39, 42), ("$.检查", 47, 49), ("$.检查", 53, 55), ("$.备注", 60, 65),
    ("$.用药[0].药名", 75, 81), ("$.用药[0].剂量", 82, 86), ("$.生命体征.体温", 94, 98),
]
VOID_TAGS = {"meta", "br", "input", "link", "img"}


def make_row(**overrides) -> dict:
    row = {
        "id": "rec-1", "source": "", "record_sha256": hashlib.sha256(TEXT.encode()).hexdigest(), "fields": FIELDS,
        "valid": False, "status": "invalid", "errors": [{"path": "$.生命体征.体温", "message": "38.5 is too high", "keyword": "maximum"}],
        "completion": "{…}", "changes": [], "spans": {}, "prompt_tokens": 300, "completion_tokens": 60, "seconds": 1.5,
        "stamp": {"model": "tiny-model", "schema": "demo"},
    }
    row.update(overrides)
    return row


class PageParser(HTMLParser):
    """Collect every <mark> with its text, the text of each record pane, and fail on mis-nested tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict, list[str]]] = []
        self.marks: list[dict] = []
        self.panes: dict[str, str] = {}
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID_TAGS:
            self.stack.append((tag, dict(attrs), []))

    def handle_endtag(self, tag):
        open_tag, attrs, chunks = self.stack.pop()
        assert open_tag == tag, f"</{tag}> closes <{open_tag}>"
        if tag == "mark":
            self.marks.append({**attrs, "text": "".join(chunks)})
        if tag == "div" and "data-record" in attrs:
            self.panes[attrs["data-record"]] = "".join(chunks)

    def handle_data(self, data):
        for _, _, chunks in self.stack:
            chunks.append(data)


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    assert parser.stack == [], "unclosed tags"
    return parser


def span_texts(marks: list[dict]) -> dict[str, tuple[str, int, int, str]]:
    """Join the pieces of each highlight: span id → (path, start, end, text)."""
    joined: dict[str, tuple[str, int, int, str]] = {}
    for mark in marks:
        path, start, end, text = joined.get(mark["data-span"], (mark["data-path"], int(mark["data-start"]), int(mark["data-end"]), ""))
        joined[mark["data-span"]] = (path, start, end, text + mark["text"])
    return joined


def highlight(start: int, end: int, name: str) -> Highlight:
    return Highlight(start=start, end=end, path=f"$.{name}", key=name, status="found", value="", span_id=name)


def test_nest_pieces_cuts_crossing_span():
    pieces = nest_pieces([highlight(0, 5, "a"), highlight(3, 8, "b")], length=10)
    assert [(p.start, p.end, p.highlight.span_id, p.part) for p in pieces] == [(0, 5, "a", 0), (3, 5, "b", 0), (5, 8, "b", 1)]


def test_nest_pieces_keeps_contained_span_whole():
    pieces = nest_pieces([highlight(2, 4, "inner"), highlight(0, 10, "outer")], length=10)
    assert [(p.start, p.end, p.highlight.span_id) for p in pieces] == [(0, 10, "outer"), (2, 4, "inner")]


def test_nest_pieces_clamps_and_drops():
    pieces = nest_pieces([highlight(-3, 2, "a"), highlight(8, 20, "b"), highlight(5, 5, "empty"), highlight(30, 40, "gone")], length=10)
    assert [(p.start, p.end) for p in pieces] == [(0, 2), (8, 10)]


def test_render_escapes_markup():
    text = "a<b>&c\r\n"
    page = render_highlighted(text, [highlight(1, 5, "x")], {"x": "f0"})
    assert "<b>" not in page
    assert '&lt;b&gt;&amp;</mark>c&#13;\n' in page
    parsed = parse(page)
    assert parsed.marks[0]["text"] == "<b>&"


def test_render_three_way_overlap_stays_well_formed():
    text = "0123456789"
    items = [highlight(0, 6, "a"), highlight(2, 8, "b"), highlight(4, 10, "c"), highlight(4, 6, "d")]
    parsed = parse(f'<div data-record="0">{render_highlighted(text, items, {})}</div>')
    assert parsed.panes["0"] == text
    joined = span_texts(parsed.marks)
    assert {span: text for span, (_, _, _, text) in joined.items()} == {"a": "012345", "b": "234567", "c": "456789", "d": "45"}


def test_report_highlights_match_offsets():
    page = build_report([make_row()], [RecordText(TEXT)])
    parsed = parse(page)
    assert parsed.panes["0"] == TEXT
    joined = span_texts(parsed.marks)
    assert sorted((path, start, end) for path, start, end, _ in joined.values()) == sorted(EXPECTED_SPANS)
    for path, start, end, text in joined.values():
        assert text == TEXT[start:end], path
    assert TEXT[14:22] == "左下肢\n疼痛3天"
    assert TEXT[94:98] == "３８.５"


def test_report_marks_carry_field_and_status():
    parsed = parse(build_report([make_row()], [RecordText(TEXT)]))
    by_path = {}
    for mark in parsed.marks:
        by_path.setdefault(mark["data-path"], mark)
    assert by_path["$.诊断[0]"]["data-field"] == "诊断"
    assert by_path["$.用药[0].药名"]["data-field"] == "用药[].药名"
    assert by_path["$.检查"]["data-status"] == "ambiguous"
    assert by_path["$.备注"]["data-value"] == "<无>特殊"
    assert "$.过敏史" not in by_path


def test_report_is_self_contained():
    page = build_report([make_row()], [RecordText(TEXT)])
    assert "http://" not in page
    assert "https://" not in page
    assert "<link" not in page
    assert " src=" not in page
    assert "<style>" in page
    assert "<script>" in page


def test_report_side_table_and_summary():
    page = build_report([make_row()], [RecordText(TEXT)])
    parsed = parse(page)
    rows = {attrs["data-path"]: attrs["class"] for tag, attrs in parsed.tags if tag == "tr" and "data-path" in attrs}
    assert rows["$.生命体征.体温"] == "st-failed gr-found"
    assert rows["$.生命体征.脉搏"] == "st-not_mentioned gr-none"
    assert rows["$.既往史"] == "st-negative gr-found"
    assert rows["$.过敏史"] == "st-present gr-not_found"
    assert rows["$.检查"] == "st-negative gr-ambiguous"  # 阴性 is one of the negation prefixes
    assert "38.5 is too high" in page
    assert "tiny-model" in page
    assert "300 + 60" in page


def test_failed_row_without_text():
    row = make_row(id="bad", fields=None, status="failed", completion="<oops>",
                   errors=[{"path": "$", "message": "invalid JSON", "keyword": "invalid_json"}])
    page = build_report([row], [RecordText(None, "missing")])
    parsed = parse(page)
    assert parsed.marks == []
    assert "&lt;oops&gt;" in page
    assert "invalid JSON" in page
    assert "No fields to show" in page


def test_field_lines_statuses():
    row = make_row(fields={"过敏史": "否认", "用药": [], "主诉": None, "生命体征": {"体温": 41}},
                   errors=[{"path": "$.生命体征", "message": "bad", "keyword": "type"}])
    lines = {line.path: (line.status, line.errors) for line in field_lines(row, {}, None)}
    assert lines == {
        "$.过敏史": ("negative", []),
        "$.用药": ("negative", []),
        "$.主诉": ("not_mentioned", []),
        "$.生命体征.体温": ("failed", ["bad"]),
    }


@pytest.mark.parametrize(
    ("path", "key"),
    [("$.姓名", "姓名"), ("$.诊断[3]", "诊断"), ("$.用药[0].药名", "用药[].药名"), ("$.生命体征.体温", "生命体征.体温")],
)
def test_field_key(path, key):
    assert field_key(path) == key


def test_load_texts_from_sources(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("甲乙丙\r\n", encoding="utf-8")
    jsonl = tmp_path / "batch.jsonl"
    jsonl.write_text('{"id": "j1", "text": "第一条"}\n\n{"id": "j2", "text": "第二条"}\n', encoding="utf-8")
    rows = [
        {"id": "a", "source": str(txt)},
        {"id": "j2", "source": f"{jsonl}:3"},
        {"id": "gone", "source": str(tmp_path / "missing.txt")},
        {"id": "a2", "source": str(txt), "record_sha256": "0" * 64},
    ]
    texts = load_record_texts(rows)
    assert texts[0] == RecordText("甲乙丙\n")
    assert texts[1] == RecordText("第二条")
    assert texts[2].text is None
    assert "not found" in texts[2].note
    assert texts[3].text == "甲乙丙\n"
    assert "changed after extraction" in texts[3].note


def test_load_texts_from_records_option(tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "r1.txt").write_text("新位置的病历", encoding="utf-8")
    texts = load_record_texts([{"id": "r1", "source": "/old/place/r1.txt"}], records_path=folder)
    assert texts == [RecordText("新位置的病历")]


def write_results(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_report_command(tmp_path):
    record = tmp_path / "rec-1.txt"
    record.write_text(TEXT, encoding="utf-8", newline="")
    results = write_results(tmp_path / "results.jsonl", [make_row(source=str(record))])
    result = CliRunner().invoke(app, ["report", str(results)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    page = (tmp_path / "results.html").read_text(encoding="utf-8")
    # read_text_file turns the CRLF into LF, but the row's hash was taken before that, so the report warns.
    assert "changed after extraction" in page
    assert len(parse(page).marks) == len(EXPECTED_SPANS) + 1  # 主诉's crossing partner 症状 is cut in two
    assert "Wrote" in result.output
    assert "0 without record text" in result.output


def test_report_command_bad_results(tmp_path):
    results = tmp_path / "results.jsonl"
    results.write_text('{"id": "a", "fields": null}\n{"id": \n', encoding="utf-8")
    result = CliRunner().invoke(app, ["report", str(results), "--out", str(tmp_path / "r.html")], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "results.jsonl:2 is not valid JSON" in result.output

    missing = CliRunner().invoke(app, ["report", str(tmp_path / "none.jsonl")], env={"COLUMNS": "200"})
    assert missing.exit_code == 2
    assert "not found" in missing.output


def test_empty_report_builds():
    parsed = parse(build_report([], []))
    assert parsed.marks == []
    assert parsed.panes == {}
