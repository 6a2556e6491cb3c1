from __future__ import annotations

import json
from pathlib import Path

import pytest

from extractor.errors import InputError
from extractor.records import TRUNCATION_MARKER, decode_bytes, read_records, truncate_middle

TEXT = "【主诉】反复胸闷3年，加重2天。\n【既往史】否认糖尿病史。"


def test_gb18030_file_reads(tmp_path: Path) -> None:
    (tmp_path / "gbk.txt").write_bytes(TEXT.encode("gb18030"))
    [record] = read_records([tmp_path / "gbk.txt"])
    assert record.error is None
    assert record.text == TEXT


def test_utf8_bom_file_reads(tmp_path: Path) -> None:
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + TEXT.encode("utf-8"))
    [record] = read_records([tmp_path / "bom.txt"])
    assert record.text == TEXT
    assert not record.text.startswith("\ufeff")


def test_utf16_and_crlf_decode() -> None:
    text, encoding = decode_bytes(TEXT.encode("utf-16"))
    assert (text, encoding) == (TEXT, "utf-16")


def test_crlf_becomes_newline(tmp_path: Path) -> None:
    (tmp_path / "crlf.txt").write_bytes(TEXT.replace("\n", "\r\n").encode("utf-8"))
    [record] = read_records([tmp_path / "crlf.txt"])
    assert record.text == TEXT


def test_folder_is_searched_recursively_in_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_text("乙", encoding="utf-8")
    (tmp_path / "a.txt").write_text("甲", encoding="utf-8")
    (tmp_path / "notes.md").write_text("not a record", encoding="utf-8")
    records = list(read_records([tmp_path]))
    assert [r.id for r in records] == ["a", "b/2"]
    assert [r.text for r in records] == ["甲", "乙"]


def test_undecodable_file_becomes_error_record(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"\x81\x30\xff\xff\xfe")
    [record] = read_records([tmp_path / "bad.txt"])
    assert record.error is not None
    assert "UTF-8" in record.error


def test_jsonl_with_custom_keys(tmp_path: Path) -> None:
    lines = [
        json.dumps({"pid": "p1", "body": "病历一"}, ensure_ascii=False),
        "",
        json.dumps({"pid": "p2", "body": "病历二"}, ensure_ascii=False),
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(lines), encoding="utf-8")
    records = list(read_records([tmp_path / "in.jsonl"], id_key="pid", text_key="body"))
    assert [(r.id, r.text) for r in records] == [("p1", "病历一"), ("p2", "病历二")]
    assert records[1].source.endswith("in.jsonl:3")


def test_jsonl_bad_lines_keep_their_place(tmp_path: Path) -> None:
    lines = ['{"id": "ok", "text": "病历"}', "{broken", '{"id": "no-text"}', '["list"]', '{"id": "blank", "text": "  "}']
    (tmp_path / "in.jsonl").write_text("\n".join(lines), encoding="utf-8")
    records = list(read_records([tmp_path / "in.jsonl"]))
    assert len(records) == 5
    assert records[0].error is None
    assert "not valid JSON" in (records[1].error or "")
    assert records[2].id == "no-text"
    assert '"text"' in (records[2].error or "")
    assert "JSON object" in (records[3].error or "")
    assert "empty" in (records[4].error or "")


def test_missing_path_raises_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        list(read_records([tmp_path / "nope.txt"]))


def test_unsupported_file_type_raises(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b", encoding="utf-8")
    with pytest.raises(InputError, match="Unsupported"):
        list(read_records([tmp_path / "x.csv"]))


def test_truncate_middle_keeps_both_ends() -> None:
    text = "头" * 50 + "中" * 100 + "尾" * 50
    short = truncate_middle(text, 80)
    assert len(short) <= 80
    assert short.startswith("头")
    assert short.endswith("尾")
    assert TRUNCATION_MARKER in short
    assert truncate_middle("短", 80) == "短"
