"""Grounding on planted texts: offsets are checked against the original text by hand."""

from __future__ import annotations

import pytest

from extractor.grounding import (
    AMBIGUOUS,
    FOUND,
    NOT_FOUND,
    TextIndex,
    fold_text,
    fold_with_offsets,
    ground,
    ground_row,
    spans_from_decoding,
)


def by_path(evidence):
    return {item.path: item for item in evidence}


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("ＡＢＣ１２３", "abc123"),
        ("（左侧）", "(左侧)"),
        ("高血压、糖尿病。", "高血压,糖尿病."),
        ("左下肢\n 疼痛\t", "左下肢疼痛"),
        ("【血常规】“阴性”", '[血常规]"阴性"'),
        ("5㎎\u200b", "5mg"),
    ],
)
def test_fold_text(text, folded):
    assert fold_text(text) == folded


def test_fold_offsets_point_at_original():
    folded, origins = fold_with_offsets("a ㎎\nｂ")
    assert folded == "amgb"
    assert origins == [0, 2, 2, 4]


def test_repeated_mentions_are_ambiguous():
    text = "无发热。无咳嗽。无胸痛。"
    (item,) = ground({"既往史": "无"}, text)
    assert item.status == AMBIGUOUS
    assert item.spans == ((0, 1), (4, 5), (8, 9))


def test_single_mention_is_found():
    text = "患者：张三，男。"
    (item,) = ground({"姓名": "张三"}, text)
    assert item.status == FOUND
    assert item.spans == ((3, 5),)
    assert text[3:5] == "张三"


def test_full_width_text_half_width_value():
    text = "血压：１２０/８０ｍｍＨｇ，心率７２次/分"
    (item,) = ground({"血压": "120/80mmHg"}, text)
    assert item.status == FOUND
    assert item.spans == ((3, 13),)
    assert text[3:13] == "１２０/８０ｍｍＨｇ"


def test_half_width_text_full_width_value():
    text = "诊断(1):CIN III级"
    (item,) = ground({"诊断": "ＣＩＮ　Ⅲ级"}, text)
    assert item.spans == ((6, 14),)
    assert text[6:14] == "CIN III级"


@pytest.mark.parametrize("value", ["左下肢 疼痛", "左下肢疼痛", "左下肢\n疼痛"])
def test_line_break_inside_value(value):
    text = "主诉：左下肢\n疼痛3天。"
    (item,) = ground({"主诉": value}, text)
    assert item.status == FOUND
    assert item.spans == ((3, 9),)
    assert text[3:9] == "左下肢\n疼痛"


def test_absent_value_is_not_found():
    (item,) = ground({"用药": ["头孢曲松"]}, "患者无用药史。")
    assert item.path == "$.用药[0]"
    assert item.status == NOT_FOUND
    assert item.spans == ()


def test_normalised_number_uses_original_text():
    text = "患者男，45岁，体重45kg。"
    changes = [{"path": "$.年龄", "original": "45岁", "normalized": 45, "rule": "age"}]
    (with_change,) = ground({"年龄": 45}, text, changes)
    assert with_change.status == FOUND
    assert with_change.spans == ((4, 7),)
    assert with_change.query == "45岁"
    assert with_change.to_dict()["query"] == "45岁"
    # Without the change, the bare number occurs twice.
    (without,) = ground({"年龄": 45}, text)
    assert without.status == AMBIGUOUS
    assert without.spans == ((4, 6), (10, 12))


def test_change_path_without_dollar():
    changes = [{"path": "入院日期", "original": "2019.01.01", "normalized": "2019-01-01"}]
    (item,) = ground({"入院日期": "2019-01-01"}, "入院日期:2019.01.01 10:40", changes)
    assert item.spans == ((5, 15),)


def test_original_missing_falls_back_to_value():
    changes = [{"path": "$.年龄", "original": "四十五岁", "normalized": 45}]
    (item,) = ground({"年龄": 45}, "年龄:45", changes)
    assert item.spans == ((3, 5),)
    assert item.query == "45"


def test_number_needs_digit_boundary():
    text = "年龄:8 体温38.8℃ 2018年 0.8"
    (item,) = ground({"年龄": 8}, text)
    assert item.status == FOUND
    assert item.spans == ((3, 4),)


def test_float_found_by_string_form():
    text = "体温38.5℃，最高39℃"
    found = by_path(ground({"体温": 38.5, "最高": 39.0}, text))
    assert found["$.体温"].spans == ((2, 6),)
    assert found["$.最高"].spans == ((10, 12),)  # 39.0 is searched as "39.0", then "39"


def test_nested_paths_and_booleans_skipped():
    fields = {"用药": [{"药名": "阿莫西林", "剂量": "0.5g"}], "生命体征": {"体温": 36.5}, "吸烟": False, "主诉": None}
    text = "阿莫西林0.5g tid，体温36.5℃"
    found = by_path(ground(fields, text))
    assert list(found) == ["$.用药[0].药名", "$.用药[0].剂量", "$.生命体征.体温"]
    assert found["$.用药[0].剂量"].spans == ((4, 8),)
    assert found["$.生命体征.体温"].spans == ((15, 19),)


def test_ground_row_keeps_decoding_spans():
    text = "张三。家属：张三之妻"
    row = {"fields": {"姓名": "张三", "性别": "男"}, "spans": {"$.姓名": [0, 2]}, "changes": []}
    evidence = ground_row(row, text)
    assert evidence["$.姓名"] == {"value": "张三", "spans": [[0, 2]], "status": FOUND, "source": "decoding"}
    assert evidence["$.性别"]["status"] == NOT_FOUND


def test_ground_row_keeps_stored_search_source():
    row = {"fields": {"姓名": "张三"}, "spans": {"$.姓名": {"spans": [[0, 2]], "status": "found", "source": "search"}}}
    assert ground_row(row, "张三")["$.姓名"]["source"] == "search"


def test_ground_row_failed_row_is_empty():
    assert ground_row({"fields": None, "spans": {}}, "text") == {}


@pytest.mark.parametrize(
    ("entry", "spans"),
    [
        ([3, 5], ((3, 5),)),
        ([[3, 5], [7, 9]], ((3, 5), (7, 9))),
        ({"start": 1, "end": 2}, ((1, 2),)),
        ({"spans": [[1, 2]]}, ((1, 2),)),
        ({"spans": []}, None),
        ([5, 3], None),
        ("3-5", None),
    ],
)
def test_spans_from_decoding(entry, spans):
    assert spans_from_decoding(entry) == spans


def test_index_find_skips_empty_query():
    assert TextIndex("abc").find("  ") == []


def test_ground_row_ignores_malformed_spans():
    row = {"fields": {"姓名": "张三"}, "spans": [[0, 2]]}
    assert ground_row(row, "张三")["$.姓名"]["source"] == "search"
