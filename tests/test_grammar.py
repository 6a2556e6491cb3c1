"""Schema → grammar compilation, grounded paths and spans. No torch: grammars run through llguidance directly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from extractor.decoding.grammar import (
    DEFAULT_MAX_ITEMS,
    MAX_SPANS_PER_VALUE,
    cap_lengths,
    check_supported,
    compile_schema,
    grounded_paths,
    grounded_spans,
)
from extractor.errors import InputError
from extractor.records import TRUNCATION_MARKER, truncate_middle
from extractor.schema import load_schema, schema_from_dict

ROOT = Path(__file__).resolve().parent.parent
ADMISSION = load_schema(ROOT / "schemas" / "admission.json")
BASIC = load_schema(ROOT / "schemas" / "basic_info.json")

RECORD = '姓名：王"五"，男，45岁。\\n 科别：呼吸科\t诊断：肺炎/Ⅱ型呼吸衰竭\r\n用药：阿司匹林 100mg 口服 qd\x01'

ANSWER: dict[str, Any] = {
    "姓名": '王"五"',
    "性别": "男",
    "年龄": 45,
    "科别": "呼吸科",
    "入院日期": "2024-03-01",
    "主诉": "胸痛3天",
    "现病史": None,
    "既往史": "否认",
    "过敏史": None,
    "生命体征": {"体温": 36.5, "脉搏": 80, "呼吸": 18, "收缩压": 120, "舒张压": 80},
    "入院诊断": ["肺炎/Ⅱ型呼吸衰竭\r\n用药", "45岁。\\n"],
    "用药": [{"药名": "阿司匹林", "剂量": "100mg", "用法": "口服", "频次": "qd"}],
}


def one_property(spec: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"x": spec}}


@pytest.fixture(scope="module")
def llg():
    llguidance = pytest.importorskip("llguidance")
    from conftest import qwen_tokenizer_files

    tokenizer = llguidance.LLTokenizer(str(qwen_tokenizer_files() / "tokenizer.json"), eos_token=[151645])
    return llguidance, tokenizer


def accepts(llg, lark: str, text: str) -> bool:
    """Feed the tokenizer's own tokenization of ``text`` plus the stop token; True when all are accepted."""
    llguidance, tokenizer = llg
    matcher = llguidance.LLMatcher(tokenizer, llguidance.LLMatcher.grammar_from_lark(lark), log_level=0)
    assert not matcher.is_error(), matcher.get_error()
    return matcher.consume_tokens(tokenizer.tokenize_str(text) + [151645]) and matcher.is_stopped()


# --- unsupported keywords ----------------------------------------------------------------------------------

UNSUPPORTED = [
    ("uniqueItems", {"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
    ("contains", {"type": "array", "contains": {"type": "string"}}),
    ("if", {"type": "string", "if": {"maxLength": 3}, "then": {"pattern": "a"}}),
    ("not", {"not": {"type": "string"}}),
    ("dependentRequired", {"type": "object", "dependentRequired": {"a": ["b"]}}),
    ("minProperties", {"type": "object", "minProperties": 1}),
    ("$ref: https://example.org/s.json", {"$ref": "https://example.org/s.json"}),
    ("format: phone", {"type": "string", "format": "phone"}),
]


@pytest.mark.parametrize(("keyword", "spec"), UNSUPPORTED, ids=[k for k, _ in UNSUPPORTED])
def test_unsupported_keyword_named(keyword: str, spec: dict[str, Any]) -> None:
    with pytest.raises(InputError) as caught:
        check_supported(one_property(spec))
    assert keyword in str(caught.value)
    assert "#/properties/x" in str(caught.value)


def test_pattern_properties_rejected_at_nested_path() -> None:
    data = {"type": "object", "properties": {"用药": {"type": "array", "items": {"type": "object", "patternProperties": {"^a": {}}}}}}
    with pytest.raises(InputError, match="patternProperties at #/properties/用药/items"):
        check_supported(data)


def test_unsupported_message_in_chinese(zh_locale: None) -> None:
    with pytest.raises(InputError, match="关键字 uniqueItems"):
        check_supported(one_property(UNSUPPORTED[0][1]))


def test_bundled_schemas_supported() -> None:
    check_supported(ADMISSION.data)
    check_supported(BASIC.data)


# --- grounded paths ----------------------------------------------------------------------------------------


def test_grounded_paths_from_schema_marks() -> None:
    assert grounded_paths(ADMISSION) == ("姓名", "科别", "入院诊断[]", "用药[].药名")


def test_grounded_paths_add_extra_and_array_items() -> None:
    paths = grounded_paths(ADMISSION, ["主诉", "$.入院诊断", "用药[].用法"], use_marks=False)
    assert paths == ("主诉", "入院诊断[]", "用药[].用法")


def test_grounded_path_unknown_rejected() -> None:
    with pytest.raises(InputError, match="Grounded field 诊断 is not in the schema"):
        grounded_paths(ADMISSION, ["诊断"])


@pytest.mark.parametrize("path", ["年龄", "入院日期", "性别", "生命体征"])
def test_grounded_path_on_non_free_string_rejected(path: str) -> None:
    with pytest.raises(InputError, match=f"Field {path} cannot be grounded"):
        grounded_paths(ADMISSION, [path])


def test_grounded_mark_under_any_of_rejected() -> None:
    data = one_property({"anyOf": [{"type": "object", "properties": {"n": {"type": "string", "x-grounded": True}}}, {"type": "null"}]})
    with pytest.raises(InputError, match="x-grounded mark at #/properties/x/anyOf/0/properties/n"):
        grounded_paths(schema_from_dict(data))


def test_grounded_field_inside_enum_object_rejected() -> None:
    data = one_property({"type": "object", "enum": [{"n": "a"}], "properties": {"n": {"type": "string", "x-grounded": True}}})
    schema = schema_from_dict(data)
    with pytest.raises(InputError, match="Field x holds a grounded field but uses enum"):
        compile_schema(schema, grounded_paths(schema))


# --- spans -------------------------------------------------------------------------------------------------


def test_spans_slice_record_to_value() -> None:
    record = "患者张三，诊断：高血压；冠心病。张三否认过敏。"
    value = {"姓名": "张三", "入院诊断": ["高血压", "冠心病", "糖尿病"], "用药": [{"药名": "过敏"}]}
    spans = grounded_spans(value, ["姓名", "入院诊断[]", "用药[].药名"], record)
    assert spans == {
        "$.姓名": [[2, 4], [16, 18]],
        "$.入院诊断[0]": [[8, 11]],
        "$.入院诊断[1]": [[12, 15]],
        "$.用药[0].药名": [[20, 22]],
    }
    for path, offsets in spans.items():
        for start, end in offsets:
            assert record[start:end] in {"张三", "高血压", "冠心病", "过敏"}


def test_spans_skip_null_and_missing_values() -> None:
    assert grounded_spans({"姓名": None, "入院诊断": None}, ["姓名", "入院诊断[]", "用药[].药名"], "张三") == {}


def test_spans_keep_at_most_the_cap() -> None:
    spans = grounded_spans({"姓名": "a"}, ["姓名"], "a" * 100)
    assert len(spans["$.姓名"]) == MAX_SPANS_PER_VALUE
    assert spans["$.姓名"][1] == [1, 2]


# --- length caps -------------------------------------------------------------------------------------------


def test_cap_lengths_caps_free_strings_and_open_arrays() -> None:
    spec = {
        "type": "object",
        "properties": {
            "free": {"type": ["string", "null"], "maxLength": 600},
            "short": {"type": "string", "maxLength": 5},
            "date": {"type": "string", "format": "date"},
            "sex": {"enum": ["男", "女"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    capped = cap_lengths(spec, 40)
    assert capped["properties"]["free"]["maxLength"] == 40
    assert capped["properties"]["short"]["maxLength"] == 5
    assert "maxLength" not in capped["properties"]["date"]
    assert "maxLength" not in capped["properties"]["sex"]
    assert capped["properties"]["tags"]["maxItems"] == DEFAULT_MAX_ITEMS
    assert capped["properties"]["tags"]["items"]["maxLength"] == 40
    assert spec["properties"]["free"]["maxLength"] == 600


# --- grammar text and what it accepts ----------------------------------------------------------------------


def test_lark_embeds_record_only_when_grounded() -> None:
    grounded = compile_schema(ADMISSION, grounded_paths(ADMISSION))
    free = compile_schema(ADMISSION)
    assert "RECORD0: %regex" in grounded.lark(RECORD)
    assert "RECORD" not in grounded.lark("")
    assert "RECORD" not in free.lark(RECORD)


def test_record_characters_are_json_escaped_chunks() -> None:
    lark = compile_schema(BASIC, grounded_paths(BASIC)).lark('a"\\\n')
    chunks = json.loads(lark.split("RECORD0: %regex ", 1)[1])["substring_chunks"]
    assert chunks == ["a", '\\"', "\\\\", "\\n"]


def test_truncation_marker_not_groundable(llg) -> None:
    record = truncate_middle("患者张三，男。" * 20 + "诊断：肺炎。", 60)
    assert TRUNCATION_MARKER in record
    lark = compile_schema(BASIC, grounded_paths(BASIC)).lark(record)
    answer = {"姓名": "张三", "性别": "男", "年龄": None, "科别": None, "入院诊断": ["肺炎"]}
    assert accepts(llg, lark, json.dumps(answer, ensure_ascii=False))
    for copied in ("中间部分", "患者\n……", "……\n男。"):
        assert copied in record
        assert not accepts(llg, lark, json.dumps({**answer, "姓名": copied}, ensure_ascii=False)), copied


def test_spans_skip_truncation_marker() -> None:
    record = "部分A" + TRUNCATION_MARKER + "部分B"
    spans = grounded_spans({"姓名": "部分"}, ["姓名"], record)
    assert spans == {"$.姓名": [[0, 2], [len(record) - 3, len(record) - 1]]}


def test_compile_is_cached_per_schema() -> None:
    assert compile_schema(ADMISSION, ("姓名",)) is compile_schema(ADMISSION, ("姓名",))
    assert compile_schema(ADMISSION, ("姓名",)) is not compile_schema(ADMISSION, ("科别",))


def test_grammar_accepts_json_dumps_layout(llg) -> None:
    lark = compile_schema(ADMISSION, grounded_paths(ADMISSION)).lark(RECORD)
    assert accepts(llg, lark, json.dumps(ANSWER, ensure_ascii=False))


def test_grammar_rejects_other_layouts(llg) -> None:
    lark = compile_schema(ADMISSION, grounded_paths(ADMISSION)).lark(RECORD)
    assert not accepts(llg, lark, json.dumps(ANSWER, ensure_ascii=False, indent=1))
    assert not accepts(llg, lark, json.dumps(ANSWER, ensure_ascii=False, separators=(",", ":")))
    assert not accepts(llg, lark, json.dumps(ANSWER))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("姓名", "王五"),
        ("姓名", ""),
        ("入院诊断", ["肺炎，Ⅱ型"]),
        ("用药", [{"药名": "阿司匹林片", "剂量": None, "用法": None, "频次": None}]),
        ("年龄", 131),
        ("性别", "未知"),
        ("入院日期", "2024/03/01"),
        ("生命体征", {"体温": 46, "脉搏": 80, "呼吸": 18, "收缩压": 120, "舒张压": 80}),
        ("入院诊断", ["肺炎"] * 13),
    ],
)
def test_grammar_rejects_invalid_values(llg, field: str, value: Any) -> None:
    lark = compile_schema(ADMISSION, grounded_paths(ADMISSION)).lark(RECORD)
    assert not accepts(llg, lark, json.dumps({**ANSWER, field: value}, ensure_ascii=False))


def test_grammar_allows_null_for_nullable_grounded(llg) -> None:
    lark = compile_schema(ADMISSION, grounded_paths(ADMISSION)).lark(RECORD)
    assert accepts(llg, lark, json.dumps({**ANSWER, "姓名": None, "入院诊断": None, "用药": []}, ensure_ascii=False))


def test_free_strings_capped_at_record_length(llg) -> None:
    lark = compile_schema(ADMISSION).lark("十个字的短病历记录。")
    short = {**ANSWER, "主诉": "一二三四五六七八九十", "入院诊断": ["肺炎"], "生命体征": None}
    assert accepts(llg, lark, json.dumps(short, ensure_ascii=False))
    assert not accepts(llg, lark, json.dumps({**short, "主诉": "一二三四五六七八九十一"}, ensure_ascii=False))


def test_thinking_grammar_leaves_think_block_free(llg) -> None:
    lark = compile_schema(ADMISSION, grounded_paths(ADMISSION)).lark(RECORD, thinking=True)
    answer = json.dumps(ANSWER, ensure_ascii=False)
    assert accepts(llg, lark, "<think>\n病历里姓名是 {王五}，\n随便想想。\n</think>\n\n" + answer)
    assert not accepts(llg, lark, answer)
    assert not accepts(llg, lark, "<think>\n想想\n</think>\n\n" + answer.replace("王", "李", 1))


def test_optional_properties_may_be_skipped(llg) -> None:
    data = {
        "type": "object",
        "required": ["b"],
        "properties": {
            "a": {"type": "string", "x-grounded": True},
            "b": {"type": "integer"},
            "c": {"type": "string", "x-grounded": True},
        },
    }
    schema = schema_from_dict(data)
    lark = compile_schema(schema, grounded_paths(schema)).lark("abc")
    for text in ['{"b": 1}', '{"a": "ab", "b": 1}', '{"b": 1, "c": "c"}', '{"a": "a", "b": 1, "c": "bc"}']:
        assert accepts(llg, lark, text), text
    for text in ['{}', '{"a": "ab"}', '{"b": 1, "a": "a"}', '{"b": 1, "c": "ac"}']:
        assert not accepts(llg, lark, text), text


def test_local_ref_with_grounded_field(llg) -> None:
    data = {
        "type": "object",
        "$defs": {"drug": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "x-grounded": True}}}},
        "required": ["drugs"],
        "properties": {"drugs": {"type": "array", "items": {"$ref": "#/$defs/drug"}, "maxItems": 2}},
    }
    schema = schema_from_dict(data)
    paths = grounded_paths(schema)
    assert paths == ("drugs[].name",)
    lark = compile_schema(schema, paths).lark("阿司匹林")
    assert accepts(llg, lark, '{"drugs": [{"name": "司匹"}]}')
    assert not accepts(llg, lark, '{"drugs": [{"name": "布洛芬"}]}')
