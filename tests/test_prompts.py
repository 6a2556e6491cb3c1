from __future__ import annotations

from pathlib import Path

import pytest

from extractor.errors import InputError
from extractor.prompts import Example, PromptBuilder, load_examples
from extractor.schema import load_schema

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = Example(
    id="e1",
    text="【一般情况】王某，女，52岁，心内科。\n【入院诊断】1.高血压病3级",
    fields={"姓名": "王某", "性别": "女", "年龄": 52, "科别": "心内科", "入院诊断": ["高血压病3级"]},
)
RECORD = "【一般情况】赵某，男，61岁。"

SYSTEM = "你是一名医学信息抽取助手。请从病历中抽取结构化信息，只输出一个 JSON 对象，不要输出解释、Markdown 或其他文字。"
INSTRUCTION = """请根据以下字段说明，从病历中抽取「患者基本信息」信息：

- 姓名（string|null，必填）：患者姓名，照抄病历原文
- 性别（string|null，必填）：患者性别，可选值：男、女
- 年龄（integer|null，必填）：年龄，单位：岁，只填数字
- 科别（string|null，必填）：入院科室或病区
- 入院诊断（array|null，必填）：入院诊断，每条诊断一项，照抄病历原文

规则：病历未提及的字段填 null；病历明确否认的，字符串字段照抄否认原文，列表字段填 []；数值字段只填数字，不带单位；日期写成 YYYY-MM-DD。
"""

EXPECTED_HISTORY_PROMPT = (
    "<|im_start|>system\n" + SYSTEM + "<|im_end|>\n"
    "<|im_start|>user\n" + INSTRUCTION + "\n"
    "病历：\n【一般情况】王某，女，52岁，心内科。\n【入院诊断】1.高血压病3级<|im_end|>\n"
    "<|im_start|>assistant\n"
    '{"姓名": "王某", "性别": "女", "年龄": 52, "科别": "心内科", "入院诊断": ["高血压病3级"]}<|im_end|>\n'
    "<|im_start|>user\n"
    "病历：\n【一般情况】赵某，男，61岁。<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n\n</think>\n\n"
)

EXPECTED_INLINE_PROMPT = (
    "<|im_start|>system\n" + SYSTEM + "<|im_end|>\n"
    "<|im_start|>user\n" + INSTRUCTION + "\n"
    "示例1病历：\n【一般情况】王某，女，52岁，心内科。\n【入院诊断】1.高血压病3级\n"
    "示例1输出：\n"
    '{"姓名": "王某", "性别": "女", "年龄": 52, "科别": "心内科", "入院诊断": ["高血压病3级"]}\n\n'
    "病历：\n【一般情况】赵某，男，61岁。<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n\n</think>\n\n"
)


@pytest.fixture(scope="module")
def qwen_tokenizer(qwen_tokenizer_dir: Path):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(qwen_tokenizer_dir)


def builder(mode: str) -> PromptBuilder:
    schema = load_schema(ROOT / "schemas" / "basic_info.json")
    return PromptBuilder(ROOT / "prompts" / "default.j2", schema, [EXAMPLE], mode=mode)  # type: ignore[arg-type]


def test_history_mode_full_prompt(qwen_tokenizer) -> None:
    from extractor.decoding.transformers_backend import render_prompt

    assert render_prompt(qwen_tokenizer, builder("history").messages(RECORD)) == EXPECTED_HISTORY_PROMPT


def test_inline_mode_full_prompt(qwen_tokenizer) -> None:
    from extractor.decoding.transformers_backend import render_prompt

    assert render_prompt(qwen_tokenizer, builder("inline").messages(RECORD)) == EXPECTED_INLINE_PROMPT


def test_history_mode_turns() -> None:
    roles = [m["role"] for m in builder("history").messages(RECORD)]
    assert roles == ["system", "user", "assistant", "user"]


def test_history_mode_sends_field_list_once() -> None:
    messages = builder("history").messages(RECORD)
    assert "字段说明" in messages[1]["content"]
    assert "字段说明" not in messages[3]["content"]


def test_no_examples_keeps_field_list() -> None:
    messages = builder_without_examples().messages(RECORD)
    assert "字段说明" in messages[-1]["content"]


def test_inline_mode_single_user_turn() -> None:
    roles = [m["role"] for m in builder("inline").messages(RECORD)]
    assert roles == ["system", "user"]


def test_reask_appends_completion_and_errors() -> None:
    b = builder("inline")
    messages = b.messages(RECORD)
    extended = b.reask_messages(messages, '{"年龄": "六十一"}', ["$.年龄: expected an integer"])
    assert extended[: len(messages)] == messages
    assert extended[-2] == {"role": "assistant", "content": '{"年龄": "六十一"}'}
    assert extended[-1]["role"] == "user"
    assert "$.年龄: expected an integer" in extended[-1]["content"]


def test_stamp_hashes_template_and_examples() -> None:
    stamp = builder("history").stamp()
    assert stamp["examples_count"] == 1
    assert stamp["examples_mode"] == "history"
    assert len(stamp["template_sha256"]) == 64
    assert stamp["examples_sha256"] != builder_without_examples().stamp()["examples_sha256"]


def builder_without_examples() -> PromptBuilder:
    schema = load_schema(ROOT / "schemas" / "basic_info.json")
    return PromptBuilder(ROOT / "prompts" / "default.j2", schema, [], mode="history")


def test_misspelt_variable_raises(tmp_path: Path) -> None:
    template = tmp_path / "bad.j2"
    template.write_text("{% block user %}{{ recrod }}{% endblock %}", encoding="utf-8")
    b = PromptBuilder(template, load_schema(ROOT / "schemas" / "basic_info.json"))
    with pytest.raises(InputError, match="recrod"):
        b.messages(RECORD)


def test_sandbox_blocks_unsafe_attribute(tmp_path: Path) -> None:
    template = tmp_path / "unsafe.j2"
    template.write_text("{% block user %}{{ record.__class__.__mro__ }}{% endblock %}", encoding="utf-8")
    b = PromptBuilder(template, load_schema(ROOT / "schemas" / "basic_info.json"))
    with pytest.raises(InputError):
        b.messages(RECORD)


def test_template_without_user_block_rejected(tmp_path: Path) -> None:
    template = tmp_path / "nouser.j2"
    template.write_text("{% block system %}hi{% endblock %}", encoding="utf-8")
    with pytest.raises(InputError, match="user block"):
        PromptBuilder(template, load_schema(ROOT / "schemas" / "basic_info.json"))


def test_unknown_mode_rejected() -> None:
    with pytest.raises(InputError, match="history or inline"):
        builder("chat")


def test_example_not_matching_schema_rejected(tmp_path: Path) -> None:
    path = tmp_path / "ex.jsonl"
    path.write_text('{"id": "x", "text": "病历", "fields": {"年龄": "abc"}}\n', encoding="utf-8")
    with pytest.raises(InputError, match="ex.jsonl:1"):
        load_examples(path, load_schema(ROOT / "schemas" / "basic_info.json"))
