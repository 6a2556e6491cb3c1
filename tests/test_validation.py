"""Validation errors: per-field paths, messages for people in both languages, and feedback for the model."""

from __future__ import annotations

import pytest

from extractor.checking import check_text
from extractor.paths import SCHEMAS_DIR
from extractor.schema import load_schema, schema_from_dict
from extractor.validation import FieldError, validate

SCHEMA = schema_from_dict({
    "type": "object",
    "additionalProperties": False,
    "required": ["性别", "年龄"],
    "properties": {
        "性别": {"type": ["string", "null"], "enum": ["男", "女", None]},
        "年龄": {"type": ["integer", "null"], "minimum": 0, "maximum": 130},
        "体温": {"type": "number", "minimum": 30, "maximum": 45},
        "入院日期": {"type": ["string", "null"], "format": "date"},
        "主诉": {"type": "string", "maxLength": 10},
        "诊断": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "编号": {"type": "string", "pattern": "^[A-Z]\\d{3}$"},
        "用药": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["药名"],
                "properties": {"药名": {"type": "string"}, "剂量": {"type": "string"}},
            },
        },
        "随访": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 1}]},
    },
})
BASE = {"性别": "男", "年龄": 50}


def errors_for(extra: dict) -> list[FieldError]:
    return validate({**BASE, **extra}, SCHEMA)


def only_error(extra: dict) -> FieldError:
    errors = errors_for(extra)
    assert len(errors) == 1, errors
    return errors[0]


def test_valid_value_no_errors() -> None:
    assert validate({**BASE, "入院日期": "2023-03-05", "用药": [{"药名": "x"}]}, SCHEMA) == []


def test_type_error_message_and_feedback() -> None:
    error = only_error({"年龄": "abc"})
    assert error.path == "$.年龄"
    assert error.keyword == "type"
    assert error.message == '年龄: expected an integer or null, got "abc"'
    assert "$.年龄" in error.feedback
    assert "整数" in error.feedback
    assert "不带单位" in error.feedback


def test_type_error_chinese(zh_locale: None) -> None:
    assert only_error({"年龄": "abc"}).message == '年龄：应为整数或null，实际为 "abc"'


def test_required_points_at_missing_field() -> None:
    errors = validate({"年龄": 3}, SCHEMA)
    assert [e.path for e in errors] == ["$.性别"]
    assert errors[0].keyword == "required"
    assert errors[0].message == "性别: missing (required field)"
    assert "null" in errors[0].feedback


def test_required_each_missing_field_once() -> None:
    errors = validate({}, SCHEMA)
    assert [e.path for e in errors] == ["$.年龄", "$.性别"]


def test_required_nested_path() -> None:
    error = only_error({"用药": [{"药名": "x"}, {"剂量": "5mg"}]})
    assert error.path == "$.用药[1].药名"
    assert error.keyword == "required"


def test_extra_key_points_at_key() -> None:
    errors = errors_for({"备注": "x", "来源": "y"})
    assert [e.path for e in errors] == ["$.备注", "$.来源"]
    assert errors[0].keyword == "additionalProperties"
    assert errors[0].message == "备注: not a field of the schema"
    assert "请删除" in errors[0].feedback
    assert "入院日期" in errors[0].feedback


def test_enum_lists_allowed_values() -> None:
    error = only_error({"性别": "未知"})
    assert error.message == '性别: "未知" is not an allowed value (男, 女, null)'
    assert "男、女、null" in error.feedback


def test_date_format_enforced() -> None:
    error = only_error({"入院日期": "3月5日"})
    assert error.keyword == "format"
    assert error.message == '入院日期: expected a date as YYYY-MM-DD, got "3月5日"'
    assert "YYYY-MM-DD" in error.feedback
    assert "不要猜测年份" in error.feedback


@pytest.mark.parametrize("value", ["2023-02-30", "2023-13-01", "2023-3-5", "２０２３-０３-０５", "2023-03-05 10:00"])
def test_date_format_rejects(value: str) -> None:
    assert only_error({"入院日期": value}).keyword == "format"


def test_impossible_date_message() -> None:
    assert only_error({"入院日期": "2023-02-30"}).message == '入院日期: "2023-02-30" is not a real calendar date'


def test_range_error_names_bounds() -> None:
    error = only_error({"体温": 450})
    assert error.message == "体温: 450 is above the maximum 45"
    assert "30 到 45" in error.feedback
    assert only_error({"体温": 3}).message == "体温: 3 is below the minimum 30"


def test_length_errors() -> None:
    assert only_error({"主诉": "头痛" * 6}).message == "主诉: 12 characters, at most 10 allowed"
    assert only_error({"诊断": ["a", "b", "c"]}).message == "诊断: 3 items, at most 2 allowed"


def test_pattern_error() -> None:
    assert "does not match the pattern" in only_error({"编号": "12"}).message


def test_any_of_type_error_reads_as_type() -> None:
    error = only_error({"随访": "三个月"})
    assert error.keyword == "type"
    assert error.message == '随访: expected null or an integer, got "三个月"'


def test_any_of_best_branch_described() -> None:
    error = only_error({"随访": 0})
    assert error.keyword == "minimum"
    assert error.path == "$.随访"


def test_str_is_model_feedback() -> None:
    error = only_error({"年龄": "abc"})
    assert str(error) == error.feedback


def test_to_dict_has_feedback() -> None:
    data = only_error({"年龄": "abc"}).to_dict()
    assert set(data) == {"path", "message", "keyword", "feedback"}


def test_errors_sorted_by_path() -> None:
    errors = errors_for({"体温": 99, "入院日期": "x", "年龄": -1})
    assert [e.path for e in errors] == sorted(e.path for e in errors)


def test_root_type_error() -> None:
    errors = validate(["x"], SCHEMA)
    assert errors[0].path == "$"
    assert "(whole object)" in errors[0].message


def test_bundled_schema_nested_path() -> None:
    schema = load_schema(SCHEMAS_DIR / "admission.json")
    value = {name: None for name in schema.field_names()}
    value["生命体征"] = {"体温": "高", "脉搏": None, "呼吸": None, "收缩压": None, "舒张压": None}
    errors = validate(value, schema)
    assert [e.path for e in errors] == ["$.生命体征.体温"]


# --- check_text: parse, normalise, validate together ---

def test_check_text_normalises_then_validates() -> None:
    checked = check_text('```json\n{"性别": "男性", "年龄": "45岁", "入院日期": "2023年3月5日"}\n```', SCHEMA)
    assert checked.valid
    assert checked.fields == {"性别": "男", "年龄": 45, "入院日期": "2023-03-05"}
    assert [c.rule for c in checked.changes] == ["enum_synonym", "unit_stripped", "date_iso"]
    assert checked.repairs == ["fence"]


def test_check_text_rejection_error() -> None:
    checked = check_text('{"性别": "男", "年龄": NaN}', SCHEMA)
    assert not checked.parsed
    assert checked.fields is None
    assert [(e.path, e.keyword) for e in checked.errors] == [("$", "nan")]
    assert "NaN" in str(checked.errors[0])


def test_check_text_invalid_after_normalising() -> None:
    checked = check_text('{"性别": "男", "年龄": 50, "入院日期": "2023年2月30日"}', SCHEMA)
    assert checked.parsed
    assert not checked.valid
    assert checked.fields["入院日期"] == "2023年2月30日"
    assert [e.path for e in checked.errors] == ["$.入院日期"]


def test_check_text_yearless_date_invalid() -> None:
    checked = check_text('{"性别": "男", "年龄": 50, "入院日期": "3月5日"}', SCHEMA)
    assert [e.keyword for e in checked.errors] == ["format"]
