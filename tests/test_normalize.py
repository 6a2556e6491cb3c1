"""The normaliser: numbers with units, enum synonyms, dates, lists, each only where the schema asks for it."""

from __future__ import annotations

import copy

import pytest

from extractor.normalize import Change, chinese_numeral, match_enum, normalize, parse_date, parse_number
from extractor.schema import schema_from_dict

SCHEMA = schema_from_dict({
    "type": "object",
    "properties": {
        "年龄": {"type": ["integer", "null"], "description": "单位：岁"},
        "体温": {"type": "number", "description": "℃"},
        "体重": {"type": "number", "description": "体重，单位 kg"},
        "身高": {"type": "number", "description": "cm"},
        "脉搏": {"type": "integer", "description": "单位：次/分"},
        "计数": {"type": "integer"},
        "病程": {"type": "string"},
        "文本或数字": {"type": ["string", "number"]},
        "性别": {"type": ["string", "null"], "enum": ["男", "女", None]},
        "血型": {"type": "string", "enum": ["A", "B", "AB", "O"]},
        "婚姻": {"type": "string", "enum": ["未婚", "已婚", "离异", "丧偶"]},
        "是否": {"type": "string", "enum": ["是", "否"]},
        "吸烟": {"type": "boolean"},
        "就诊日期": {"type": ["string", "null"], "format": "date"},
        "备注日期": {"type": "string"},
        "诊断": {"type": ["array", "null"], "items": {"type": "string"}},
        "用药": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "药名": {"type": "string"},
                    "日剂量": {"type": "number", "description": "mg"},
                    "开始": {"type": "string", "format": "date"},
                },
            },
        },
        "生命体征": {
            "anyOf": [
                {"type": "null"},
                {"type": "object", "properties": {"心率": {"type": "integer", "description": "次/分"}}},
            ],
        },
    },
})


def one(field: str, value: object) -> tuple[object, list[Change]]:
    result, changes = normalize({field: value}, SCHEMA)
    return result[field], changes


# --- numbers ---

@pytest.mark.parametrize(("field", "raw", "expected"), [
    ("年龄", "45岁", 45),
    ("年龄", "45 周岁", 45),
    ("年龄", "45.0", 45),
    ("年龄", "六十五", 65),
    ("年龄", "六十五岁", 65),
    ("年龄", "４５", 45),
    ("年龄", "４５岁", 45),
    ("体温", "38.5℃", 38.5),
    ("体温", "36.8°C", 36.8),
    ("体温", "三十八点五", 38.5),
    ("体温", "37", 37),
    ("体重", "55kg", 55),
    ("体重", "68公斤", 68),
    ("体重", "60.5 KG", 60.5),
    ("身高", "172cm", 172),
    ("身高", "１６５厘米", 165),
    ("脉搏", "120次/分", 120),
    ("脉搏", "88 bpm", 88),
    ("计数", "一百零五", 105),
    ("计数", "-3", -3),
])
def test_number_from_text(field: str, raw: str, expected: float) -> None:
    value, changes = one(field, raw)
    assert value == expected
    assert type(value) is type(expected)
    assert changes[0].original == raw
    assert changes[0].path == f"$.{field}"


@pytest.mark.parametrize(("field", "raw"), [
    ("年龄", "abc"),
    ("年龄", "45.5"),
    ("年龄", "3年余"),
    ("年龄", "约45岁"),
    ("年龄", "45-50岁"),
    ("年龄", "55kg"),
    ("体重", "136斤"),
    ("身高", "1.72m"),
    ("体温", "38.5kg"),
    ("脉搏", "120/80"),
    ("计数", "一百二"),
    ("计数", "一二〇"),
    ("计数", ""),
])
def test_unreadable_numbers_left(field: str, raw: str) -> None:
    value, changes = one(field, raw)
    assert value == raw
    assert changes == []


def test_string_field_untouched() -> None:
    assert one("病程", "3年余") == ("3年余", [])
    assert one("病程", "45岁") == ("45岁", [])


def test_string_or_number_untouched() -> None:
    assert one("文本或数字", "45岁") == ("45岁", [])


def test_integral_float_to_integer() -> None:
    value, changes = one("年龄", 45.0)
    assert value == 45
    assert type(value) is int
    assert changes[0].rule == "integer_from_float"


def test_number_field_keeps_float() -> None:
    assert one("体温", 37.0) == (37.0, [])


def test_unit_rule_names() -> None:
    assert one("年龄", "45岁")[1][0].rule == "unit_stripped"
    assert one("年龄", "45")[1][0].rule == "numeric_string"
    assert one("年龄", "４５")[1][0].rule == "fullwidth_digits"
    assert one("年龄", "六十五")[1][0].rule == "chinese_numeral"


def test_unit_without_description_any_family() -> None:
    assert parse_number("55kg", integer=False) == (55, "unit_stripped")
    assert parse_number("55斤", integer=False) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("十", "10"), ("十五", "15"), ("二十", "20"), ("两百", "200"), ("一百零五", "105"), ("一千零一十", "1010"),
    ("三十八点五", "38.5"), ("零点五", "0.5"), ("一万二千", "12000"), ("七", "7"),
    ("一百二", None), ("五五", None), ("十十", None), ("点五", None), ("万", None), ("三十八点", None),
])
def test_chinese_numerals(text: str, expected: str | None) -> None:
    assert chinese_numeral(text) == expected


def test_boolean_from_text() -> None:
    assert one("吸烟", "否") == (False, [Change("$.吸烟", "否", False, "boolean_from_text")])
    assert one("吸烟", "TRUE")[0] is True
    assert one("吸烟", "偶尔") == ("偶尔", [])


# --- enums ---

@pytest.mark.parametrize(("field", "raw", "expected"), [
    ("性别", "男性", "男"),
    ("性别", "女性", "女"),
    ("性别", " 女 ", "女"),
    ("血型", "O型", "O"),
    ("血型", "A型Rh阳性", "A"),
    ("血型", "AB型", "AB"),
    ("血型", "B型 RH(+)", "B"),
    ("血型", "ab", "AB"),
    ("血型", "Ｏ型血", "O"),
    ("婚姻", "未婚未育", "未婚"),
    ("婚姻", "已婚已育", "已婚"),
])
def test_enum_synonyms(field: str, raw: str, expected: str) -> None:
    value, changes = one(field, raw)
    assert value == expected
    assert changes == [Change(f"$.{field}", raw, expected, "enum_synonym")]


@pytest.mark.parametrize(("field", "raw"), [
    ("性别", "男女不详"),
    ("性别", "不详"),
    ("血型", "ABO血型不合"),
    ("血型", "Rh阴性"),
    ("是否", "是否"),
    ("婚姻", "再婚"),
])
def test_ambiguous_or_unknown_enum_left(field: str, raw: str) -> None:
    assert one(field, raw) == (raw, [])


def test_enum_not_hard_coded() -> None:
    assert match_enum("阳性反应", ["阳性", "阴性"]) == "阳性"
    assert match_enum("Ⅱ型", ["Ⅰ", "Ⅱ", "Ⅲ"]) == "Ⅱ"
    assert match_enum("中度", ["轻度", "中度", "重度"]) == "中度"
    assert match_enum("中", ["中度", "中等"]) is None


def test_enum_value_already_allowed() -> None:
    assert one("性别", "男") == ("男", [])


# --- dates ---

@pytest.mark.parametrize(("raw", "expected"), [
    ("2023年3月5日", "2023-03-05"),
    ("2023年03月05号", "2023-03-05"),
    ("2023.3.12", "2023-03-12"),
    ("2023/03/08", "2023-03-08"),
    ("2023-3-5", "2023-03-05"),
    ("2023-03-05 10:40", "2023-03-05"),
    ("2019.01.01 10:40", "2019-01-01"),
    ("2023年3月5日 10时40分", "2023-03-05"),
    ("2023-03-05T10:40:00", "2023-03-05"),
    ("２０２３年３月５日", "2023-03-05"),
    ("２０２３－０３－０５", "2023-03-05"),
    ("20230305", "2023-03-05"),
    ("2024年2月29日", "2024-02-29"),
])
def test_dates_to_iso(raw: str, expected: str) -> None:
    value, changes = one("就诊日期", raw)
    assert value == expected
    assert changes == [Change("$.就诊日期", raw, expected, "date_iso")]


@pytest.mark.parametrize("raw", [
    "2023-02-30", "2023年2月30日", "2023年13月1日", "2023-02-29", "3月5日", "23年3月5日", "2023年3月",
    "2023-03-05至2023-03-10", "昨天", "入院当天",
])
def test_impossible_or_yearless_dates_left(raw: str) -> None:
    assert one("就诊日期", raw) == (raw, [])
    assert parse_date(raw) is None


def test_date_only_where_format_date() -> None:
    assert one("备注日期", "2023年3月5日") == ("2023年3月5日", [])


# --- lists ---

def test_scalar_wrapped_in_list() -> None:
    value, changes = one("诊断", "2型糖尿病")
    assert value == ["2型糖尿病"]
    assert changes == [Change("$.诊断", "2型糖尿病", ["2型糖尿病"], "wrap_in_list")]


def test_joined_items_not_split() -> None:
    assert one("诊断", "高血压（2级，极高危）、冠心病")[0] == ["高血压（2级，极高危）、冠心病"]


@pytest.mark.parametrize("raw", ["无", "否认", "否认手术史", "", "  "])
def test_negation_or_empty_not_wrapped(raw: str) -> None:
    assert one("诊断", raw) == (raw, [])


def test_word_starting_with_negation_wrapped() -> None:
    assert one("诊断", "无症状心肌缺血")[0] == ["无症状心肌缺血"]


def test_null_list_left() -> None:
    assert one("诊断", None) == (None, [])


def test_object_wrapped_for_array_of_objects() -> None:
    value, changes = one("用药", {"药名": "阿司匹林", "日剂量": "100mg"})
    assert value == [{"药名": "阿司匹林", "日剂量": 100}]
    assert [c.rule for c in changes] == ["wrap_in_list", "unit_stripped"]
    assert changes[1].path == "$.用药[0].日剂量"


# --- recursion and bookkeeping ---

def test_nested_arrays_of_objects() -> None:
    value, changes = one("用药", [
        {"药名": "二甲双胍", "日剂量": "１０００", "开始": "2022年7月1日"},
        {"药名": "阿卡波糖", "日剂量": 150, "开始": "2022-07-01"},
    ])
    assert value == [
        {"药名": "二甲双胍", "日剂量": 1000, "开始": "2022-07-01"},
        {"药名": "阿卡波糖", "日剂量": 150, "开始": "2022-07-01"},
    ]
    assert [c.path for c in changes] == ["$.用药[0].日剂量", "$.用药[0].开始"]


def test_any_of_object_branch() -> None:
    assert one("生命体征", {"心率": "76次/分"})[0] == {"心率": 76}
    assert one("生命体征", None) == (None, [])


def test_unknown_keys_untouched() -> None:
    result, changes = normalize({"额外": "45岁"}, SCHEMA)
    assert result == {"额外": "45岁"}
    assert changes == []


def test_input_not_modified() -> None:
    original = {"年龄": "45岁", "用药": [{"药名": "x", "日剂量": "5mg"}]}
    kept = copy.deepcopy(original)
    normalize(original, SCHEMA)
    assert original == kept


def test_non_object_value_left() -> None:
    assert normalize(["45岁"], SCHEMA) == (["45岁"], [])
    assert normalize("45岁", SCHEMA) == ("45岁", [])


def test_change_to_dict() -> None:
    change = Change("$.年龄", "45岁", 45, "unit_stripped")
    assert change.to_dict() == {"path": "$.年龄", "original": "45岁", "normalized": 45, "rule": "unit_stripped"}
