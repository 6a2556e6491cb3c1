"""The parser on every kind of completion: what it repairs and what it rejects, with the tricky neighbours."""

from __future__ import annotations

import pytest

from extractor.parsing import parse_completion
from extractor.schema import schema_from_dict

SCHEMA = schema_from_dict({
    "type": "object",
    "properties": {
        "名字": {"type": ["string", "null"]},
        "诊断列表": {"type": ["array", "null"], "items": {"type": "string"}},
        "备注": {"type": ["string", "null"]},
        "剂量": {"type": ["number", "null"]},
    },
})


def accepted(text: str, **kwargs: object) -> dict:
    result = parse_completion(text, schema=SCHEMA, **kwargs)
    assert result.rejection is None, result.rejection
    return result.value


def rejected(text: str, **kwargs: object) -> str:
    result = parse_completion(text, schema=SCHEMA, **kwargs)
    assert result.value is None
    assert result.rejection is not None
    return result.rejection.code


# --- markdown fences ---

@pytest.mark.parametrize("text", [
    '```json\n{"名字": "周一鸣", "剂量": 2.5}\n```',
    '```\n{"名字": "周一鸣", "剂量": 2.5}\n```',
    '```JSON\n{"名字": "周一鸣", "剂量": 2.5}```',
    '结果：\n```json\n{"名字": "周一鸣", "剂量": 2.5}\n```\n以上。',
])
def test_fence_variants(text: str) -> None:
    assert accepted(text) == {"名字": "周一鸣", "剂量": 2.5}
    assert "fence" in parse_completion(text).repairs


def test_fence_inside_string_value_kept() -> None:
    assert accepted('{"备注": "写法 ```x``` 保留"}') == {"备注": "写法 ```x``` 保留"}


# --- prose around the object ---

@pytest.mark.parametrize("text", [
    '以下是抽取结果：{"名字": "吴桂兰"} 请核对。',
    '详见{附件二}与{化验单}。答案如下：\n{"名字": "吴桂兰"}',
    'Sure! Here is the JSON:\n\n{"名字": "吴桂兰"}\n\nLet me know if you need more.',
])
def test_prose_around_object(text: str) -> None:
    assert accepted(text) == {"名字": "吴桂兰"}


def test_braces_in_prose_skipped() -> None:
    result = parse_completion('病历见{附件}，抽取：{"名字": "吴桂兰"}')
    assert result.value == {"名字": "吴桂兰"}
    assert "prose" in result.repairs


def test_empty_object_before_answer_is_first() -> None:
    # An empty object is a complete object, so it wins over the later one; the later one is named in repairs.
    result = parse_completion('{} {"名字": "吴桂兰"}')
    assert result.value == {}
    assert "extra_object_ignored" in result.repairs


def test_braces_inside_string_value() -> None:
    text = '前言 {"备注": "化验{见附页}，结果}未出{", "名字": "郑"} 后记'
    assert accepted(text) == {"备注": "化验{见附页}，结果}未出{", "名字": "郑"}


# --- think blocks ---

def test_empty_think_block() -> None:
    result = parse_completion('<think>\n\n</think>\n\n{"名字": "冯"}')
    assert result.value == {"名字": "冯"}
    assert "think_block" in result.repairs


def test_draft_inside_think_not_picked() -> None:
    text = '<think>先写草稿：{"名字": "草稿值"}，再检查。</think>{"名字": "最终值"}'
    assert accepted(text) == {"名字": "最终值"}


def test_only_closing_think_tag() -> None:
    text = '嗯，病历里姓名是 {"名字": "草稿"} 吧。\n</think>\n\n{"名字": "陈立"}'
    assert accepted(text) == {"名字": "陈立"}


def test_unclosed_think_rejected() -> None:
    assert rejected('<think>草稿 {"名字": "草稿"} 还在想') == "truncated"


def test_think_then_nothing_is_no_json() -> None:
    assert rejected("<think>想完了</think>\n没有答案") == "no_json"


# --- Chinese quotes and full-width punctuation ---

@pytest.mark.parametrize(("text", "expected"), [
    ("{“名字”: “褚英”, “备注”: “无”}", {"名字": "褚英", "备注": "无"}),
    ("{「名字」：「褚英」，「备注」：「无」}", {"名字": "褚英", "备注": "无"}),
    ("{‘名字’: ‘褚英’}", {"名字": "褚英"}),
    ('{"名字"："褚英"，"备注"："无"}', {"名字": "褚英", "备注": "无"}),
])
def test_chinese_syntax_repaired(text: str, expected: dict) -> None:
    assert accepted(text) == expected


def test_fullwidth_inside_string_untouched() -> None:
    text = '{"备注": "见表，]第二行：“阳性”，」", "名字": "蒋"}'
    assert accepted(text) == {"备注": "见表，]第二行：“阳性”，」", "名字": "蒋"}


def test_fullwidth_punctuation_repair_named() -> None:
    assert "fullwidth_punctuation" in parse_completion('{"名字"："沈"}').repairs
    assert parse_completion('{"名字": "沈：，"}').repairs == []


# --- single quotes and Python literals ---

def test_python_repr_repaired() -> None:
    result = parse_completion("{'名字': '韩梅', '备注': None, '诊断列表': ['胃炎'], '剂量': 1.0}")
    assert result.value == {"名字": "韩梅", "备注": None, "诊断列表": ["胃炎"], "剂量": 1.0}
    assert "single_quotes" in result.repairs
    assert "python_literal" in result.repairs


def test_python_literal_words_in_strings_kept() -> None:
    assert accepted('{"备注": "None True False"}') == {"备注": "None True False"}


def test_double_quote_inside_single_quoted() -> None:
    assert accepted("{'备注': '他说\"痛\"'}") == {"备注": '他说"痛"'}


def test_true_false_values() -> None:
    assert accepted("{'a': True, 'b': False}") == {"a": True, "b": False}


# --- trailing commas and comments ---

@pytest.mark.parametrize("text", [
    '{"诊断列表": ["胃炎", "贫血",], "名字": "杨",}',
    '{"诊断列表": ["胃炎", "贫血"], // 两个诊断\n "名字": "杨"}',
    '{"诊断列表": ["胃炎", /* 第一 */ "贫血"], "名字": "杨" /* 末尾 */}',
    '{"诊断列表": ["胃炎",, "贫血"], "名字": "杨"}',
    '{"诊断列表": ["胃炎", "贫血"], # Python 风格注释\n "名字": "杨"}',
])
def test_commas_and_comments_repaired(text: str) -> None:
    assert accepted(text) == {"诊断列表": ["胃炎", "贫血"], "名字": "杨"}


def test_comma_bracket_inside_string_kept() -> None:
    assert accepted('{"备注": "a,]b,}c // 不是注释"}') == {"备注": "a,]b,}c // 不是注释"}


# --- raw control characters ---

def test_raw_newline_and_tab_in_string() -> None:
    result = parse_completion('{"备注": "第一行\n第二行\t缩进"}')
    assert result.value == {"备注": "第一行\n第二行\t缩进"}
    assert "control_char_in_string" in result.repairs


def test_escaped_sequences_kept() -> None:
    assert accepted(r'{"备注": "a\nb \"q\" \u4e2d \\ /"}') == {"备注": 'a\nb "q" 中 \\ /'}


def test_invalid_escape_kept_literally() -> None:
    assert accepted(r'{"备注": "C:\data\x"}') == {"备注": r"C:\data\x"}


# --- truncation ---

@pytest.mark.parametrize(("text", "where"), [
    ('{"名字": "马', "string"),
    ('{"诊断列表": ["胃炎", "贫', "string"),
    ('{"诊断列表": ["胃炎", "贫血"', "array"),
    ('{"诊断列表": ["胃炎", "贫血"], "名字": "马"', "object"),
    ('```json\n{"名字": "马",\n', "object"),
    ("{", "object"),
    ('好的：{"名', "string"),
])
def test_truncated_rejected(text: str, where: str) -> None:
    result = parse_completion(text)
    assert result.rejection is not None
    assert result.rejection.code == "truncated"
    assert where in result.rejection.message


def test_truncated_flag_rejects_complete_json() -> None:
    assert rejected('{"名字": "马"}', truncated=True) == "truncated"


def test_cut_copy_after_complete_object() -> None:
    assert rejected('{"名字": "马"}\n{"名字": "马') == "truncated"


def test_truncation_message_localised(zh_locale: None) -> None:
    result = parse_completion('{"名字": "马')
    assert result.rejection is not None
    assert "字符串" in result.rejection.message


# --- NaN and Infinity ---

@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "nan", "inf"])
def test_non_finite_literals_rejected(literal: str) -> None:
    assert rejected('{"剂量": %s}' % literal) == "nan"


def test_nan_inside_string_accepted() -> None:
    assert accepted('{"备注": "NaN", "名字": "Infinity"}') == {"备注": "NaN", "名字": "Infinity"}


def test_overflowing_number_rejected() -> None:
    assert rejected('{"剂量": 1e400}') == "nan"


# --- duplicate keys ---

def test_identical_duplicates_collapse() -> None:
    result = parse_completion('{"名字": "秦", "名字": "秦"}')
    assert result.value == {"名字": "秦"}
    assert "duplicate_key_collapsed" in result.repairs


def test_conflicting_duplicates_rejected() -> None:
    result = parse_completion('{"名字": "秦", "名字": "尤"}', schema=SCHEMA)
    assert result.rejection is not None
    assert result.rejection.code == "duplicate_key"
    assert "名字" in result.rejection.message


def test_conflicting_duplicates_merged_for_list() -> None:
    result = parse_completion('{"诊断列表": ["胃炎"], "诊断列表": "贫血"}', schema=SCHEMA)
    assert result.value == {"诊断列表": ["胃炎", "贫血"]}
    assert "duplicate_key_merged" in result.repairs


def test_duplicates_without_schema_rejected() -> None:
    assert parse_completion('{"诊断列表": ["胃炎"], "诊断列表": "贫血"}').rejection.code == "duplicate_key"


def test_duplicate_in_nested_object() -> None:
    assert rejected('{"x": {"k": 1, "k": 2}}') == "duplicate_key"


def test_same_key_in_sibling_objects_fine() -> None:
    assert accepted('{"x": [{"k": 1}, {"k": 2}]}') == {"x": [{"k": 1}, {"k": 2}]}


def test_duplicates_checked_before_json_repair() -> None:
    # The missing comma sends this to json_repair, which would silently keep the last value.
    assert rejected('{"名字": "秦" "名字": "尤"}') == "duplicate_key"


# --- loops ---

def test_key_written_many_times_is_loop() -> None:
    text = '{"名字": "卫", ' + '"备注": "复查", ' * 4 + '"备注": "复'
    assert rejected(text) == "loop"


def test_complete_object_with_repeated_key_is_loop() -> None:
    assert rejected('{"备注": "x", "备注": "x", "备注": "x"}') == "loop"


def test_whitespace_run_is_loop() -> None:
    assert rejected('{"名字": "卫"}' + " " * 200) == "loop"


def test_blank_lines_are_loop() -> None:
    assert rejected('{"名字": "卫",' + "\n" * 12 + '"备注": null}') == "loop"


def test_repeated_chunk_in_value_is_loop() -> None:
    assert rejected('{"备注": "' + "头晕乏力，" * 20 + '"}') == "loop"


def test_repeated_answer_is_loop() -> None:
    assert rejected('{"名字": "卫"}\n' * 10) == "loop"


def test_pretty_printed_json_not_loop() -> None:
    text = '{\n    "名字": "卫",\n    "备注": null,\n    "诊断列表": [\n        "胃炎",\n        "贫血"\n    ]\n}'
    assert accepted(text) == {"名字": "卫", "备注": None, "诊断列表": ["胃炎", "贫血"]}


def test_loop_message_names_field() -> None:
    result = parse_completion('{"备注": "x", "备注": "x", "备注": "x"}')
    assert "备注" in result.rejection.message


# --- several objects ---

def test_repeated_identical_copy_accepted() -> None:
    result = parse_completion('{"名字": "蒋"}\n\n{"名字": "蒋"}')
    assert result.value == {"名字": "蒋"}
    assert "repeated_object" in result.repairs


def test_different_second_object_ignored() -> None:
    result = parse_completion('{"名字": "蒋"}\n更正：{"名字": "沈"}')
    assert result.value == {"名字": "蒋"}
    assert "extra_object_ignored" in result.repairs


# --- copied text ---

def test_every_field_same_long_text_rejected() -> None:
    copied = "患者三天前无明显诱因出现发热，最高体温三十九度"
    text = '{"名字": "%s", "备注": "%s", "诊断列表": ["%s"]}' % (copied, copied, copied)
    assert rejected(text) == "copied_text"


def test_same_short_text_accepted() -> None:
    assert accepted('{"名字": "无", "备注": "无", "x": "无"}') == {"名字": "无", "备注": "无", "x": "无"}


def test_two_fields_same_long_text_accepted() -> None:
    copied = "患者三天前无明显诱因出现发热，最高体温三十九度"
    assert accepted('{"名字": "%s", "备注": "%s"}' % (copied, copied))["备注"] == copied


# --- not JSON, not an object ---

@pytest.mark.parametrize("text", ["", "   ", "病历中没有相关信息。", "见{附件}", "{名字: 吴}"])
def test_no_json(text: str) -> None:
    assert rejected(text) == "no_json"


@pytest.mark.parametrize("text", ['[{"名字": "吴"}]', '```json\n["胃炎"]\n```', '"只有一个字符串"', "42", "null"])
def test_not_object(text: str) -> None:
    assert rejected(text) == "not_object"


def test_cut_array_is_truncated() -> None:
    assert rejected('[{"名字": "吴"}, {"名字') == "truncated"


# --- json_repair fallback ---

def test_missing_comma_repaired() -> None:
    result = parse_completion('{"名字": "褚" "备注": "无"}')
    assert result.value == {"名字": "褚", "备注": "无"}
    assert "json_repair" in result.repairs


def test_unescaped_inner_quotes_repaired() -> None:
    assert accepted('{"备注": "患者称"头痛"两天"}') == {"备注": '患者称"头痛"两天'}


def test_json_repair_dropping_string_rejected() -> None:
    # json_repair reads 'c''d' as 'c' and silently drops the second string, so the result is refused.
    assert rejected("{'名字': '褚', '备注': 'c''d'}") == "invalid_json"


def test_hash_inside_string_kept() -> None:
    assert accepted('{"备注": "第#3床"}') == {"备注": "第#3床"}


def test_mismatched_bracket_repaired() -> None:
    assert accepted('{"诊断列表": ["胃炎", "贫血"}') == {"诊断列表": ["胃炎", "贫血"]}


# --- rejection texts ---

def test_rejection_has_model_feedback() -> None:
    result = parse_completion('{"剂量": NaN}')
    assert result.rejection is not None
    assert "NaN" in result.rejection.feedback
    assert "null" in result.rejection.feedback


def test_rejection_message_chinese(zh_locale: None) -> None:
    result = parse_completion("没有 JSON")
    assert result.rejection is not None
    assert result.rejection.message == "输出中没有 JSON 对象。"
