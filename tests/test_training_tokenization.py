"""Training samples: the prompt is extract's prompt token for token, labels cover the answer and the stop token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from extractor.decoding.loading import load_model, resolve_model  # noqa: E402
from extractor.decoding.transformers_backend import TransformersDecoder  # noqa: E402
from extractor.prompts import Example, PromptBuilder, format_answer  # noqa: E402
from extractor.records import TRUNCATION_MARKER  # noqa: E402
from extractor.schema import load_schema  # noqa: E402
from extractor.training.data import Annotated, training_row  # noqa: E402
from extractor.training.tokenization import (  # noqa: E402
    IGNORE_INDEX,
    PaddingCollator,
    SampleEncoder,
    TemplateMismatch,
    as_features,
    choose_pad_id,
    split_prompt_completion,
)

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = load_schema(ROOT / "schemas" / "basic_info.json")
EMPTY_THINK = "<|im_start|>assistant\n<think>\n\n</think>\n\n"

# A ChatML template that behaves like Qwen2.5's: a default system prompt when none is given, no think block.
QWEN25_LIKE_TEMPLATE = (
    "{%- if not messages or messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

RECORD = "入院记录\n姓名：王小明  性别：男  年龄：52岁\n科别：心内科\n主诉：胸闷2天。\n入院诊断：1. 冠心病 2. 高血压"
FIELDS = {"姓名": "王小明", "性别": "男", "年龄": 52, "科别": "心内科", "入院诊断": ["冠心病", "高血压"]}
EXAMPLE = Example(
    id="ex1",
    text="姓名：李红  性别：女  年龄：30岁  科别：妇科\n入院诊断：子宫肌瘤",
    fields={"姓名": "李红", "性别": "女", "年龄": 30, "科别": "妇科", "入院诊断": ["子宫肌瘤"]},
)


@pytest.fixture(scope="module")
def tokenizer(tiny_qwen3_dir: Path):
    return transformers.AutoTokenizer.from_pretrained(tiny_qwen3_dir)


@pytest.fixture
def builder() -> PromptBuilder:
    return PromptBuilder(ROOT / "prompts" / "default.j2", SCHEMA, [EXAMPLE], mode="history")


def row_for(builder: PromptBuilder, text: str = RECORD, fields: dict | None = None) -> dict:
    return training_row(Annotated(id="r1", text=text, fields=fields or FIELDS), builder)


def qwen25_tokenizer(tokenizer):
    copy = transformers.AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    copy.chat_template = QWEN25_LIKE_TEMPLATE
    return copy


@pytest.mark.parametrize("mode", ["history", "inline"])
def test_prompt_equals_extract_prompt(tiny_qwen3_dir: Path, mode: str) -> None:
    model, tokenizer = load_model(resolve_model(str(tiny_qwen3_dir)), device="cpu")
    decoder = TransformersDecoder(model, tokenizer)
    builder = PromptBuilder(ROOT / "prompts" / "default.j2", SCHEMA, [EXAMPLE], mode=mode)  # type: ignore[arg-type]

    sample = SampleEncoder(tokenizer, 4096).encode("r1", row_for(builder)["messages"])

    extract_prompt = decoder.render(builder.messages(RECORD))
    extract_ids = tokenizer([extract_prompt], add_special_tokens=False, padding=True)["input_ids"][0]
    assert sample.input_ids[: sample.prompt_length] == extract_ids
    assert extract_prompt.endswith(EMPTY_THINK)


def test_labels_mask_prompt_and_end_on_im_end(tokenizer, builder: PromptBuilder) -> None:
    sample = SampleEncoder(tokenizer, 4096).encode("r1", row_for(builder)["messages"])
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")

    assert sample.labels[: sample.prompt_length] == [IGNORE_INDEX] * sample.prompt_length
    assert sample.labels[sample.prompt_length :] == sample.input_ids[sample.prompt_length :]
    assert sample.labels[-1] == im_end
    assert sample.labels.count(im_end) == 1
    answer = tokenizer.decode(sample.labels[sample.prompt_length : -1])
    assert answer == format_answer(FIELDS)


def test_think_block_is_prompt_not_label(tokenizer, builder: PromptBuilder) -> None:
    sample = SampleEncoder(tokenizer, 4096).encode("r1", row_for(builder)["messages"])
    prompt_text = tokenizer.decode(sample.input_ids[: sample.prompt_length])
    label_text = tokenizer.decode(sample.labels[sample.prompt_length :])

    assert prompt_text.endswith(EMPTY_THINK)
    assert "<think>" not in label_text
    assert label_text == format_answer(FIELDS) + "<|im_end|>"


def test_qwen3_full_render_keeps_prompt_prefix(tokenizer, builder: PromptBuilder) -> None:
    # The real Qwen3 template puts the empty think block before the last assistant turn only. Earlier
    # (example) assistant turns have none, both in the prompt and in the full conversation.
    prompt, completion = split_prompt_completion(tokenizer, row_for(builder)["messages"])
    assert prompt.count("<think>") == 1
    assert completion == format_answer(FIELDS) + "<|im_end|>\n"


def test_thinking_mode_trains_empty_think(tokenizer, builder: PromptBuilder) -> None:
    encoder = SampleEncoder(tokenizer, 4096, thinking=True)
    encoded = encoder.encode_rows([row_for(builder)])
    sample = encoded.samples[0]
    prompt_text = tokenizer.decode(sample.input_ids[: sample.prompt_length])

    assert prompt_text.endswith("<|im_start|>assistant\n")
    assert encoded.completion_prefix == "<think>\n\n</think>\n\n"
    assert tokenizer.decode(sample.labels[sample.prompt_length :]).startswith("<think>")


def test_qwen25_template_prompt_and_labels(tokenizer, tmp_path: Path) -> None:
    chatml = qwen25_tokenizer(tokenizer)
    template = tmp_path / "user_only.j2"
    template.write_text("{% block user -%}\n抽取：{{ record }}\n{%- endblock %}\n", encoding="utf-8")
    messages = row_for(PromptBuilder(template, SCHEMA))["messages"]

    prompt, completion = split_prompt_completion(chatml, messages)
    sample = SampleEncoder(chatml, 4096).encode("r1", messages)

    assert prompt.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n")
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "<think>" not in prompt + completion
    assert sample.input_ids[: sample.prompt_length] == chatml(prompt, add_special_tokens=False)["input_ids"]
    assert sample.labels[-1] == chatml.convert_tokens_to_ids("<|im_end|>")
    assert chatml.decode(sample.labels[sample.prompt_length :]) == format_answer(FIELDS) + "<|im_end|>"


def test_pad_equal_to_stop_keeps_stop_label(tokenizer, builder: PromptBuilder) -> None:
    trap = transformers.AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    trap.pad_token = "<|im_end|>"
    im_end = trap.convert_tokens_to_ids("<|im_end|>")
    short = row_for(builder, text="姓名：王小明，男，52岁，心内科。")
    samples = SampleEncoder(trap, 4096).encode_rows([row_for(builder), short]).samples

    batch = PaddingCollator(pad_id=im_end)(as_features(samples))
    labels = batch["labels"].tolist()

    for row_labels, sample in zip(labels, samples):
        real = row_labels[: len(sample.input_ids)]
        assert real[-1] == im_end
        assert row_labels[len(sample.input_ids) :] == [IGNORE_INDEX] * (len(row_labels) - len(sample.input_ids))
    assert batch["attention_mask"].sum(dim=1).tolist() == [len(s.input_ids) for s in samples]


def test_pad_id_is_not_a_stop_token(tokenizer) -> None:
    trap = transformers.AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    trap.pad_token = "<|im_end|>"
    assert choose_pad_id(trap) != trap.convert_tokens_to_ids("<|im_end|>")
    assert choose_pad_id(trap) == trap.convert_tokens_to_ids("<|endoftext|>")


def test_long_record_cut_in_middle(tokenizer, builder: PromptBuilder) -> None:
    long_text = "姓名：王小明  性别：男\n" + "病程记录内容。" * 200 + "\n入院诊断：冠心病"
    row = row_for(builder, text=long_text)
    full_length = len(SampleEncoder(tokenizer, 100_000).encode("r1", row["messages"]).input_ids)

    sample = SampleEncoder(tokenizer, 900).fit(row)
    prompt_text = tokenizer.decode(sample.input_ids[: sample.prompt_length])
    label_text = tokenizer.decode(sample.labels[sample.prompt_length :])

    assert full_length > 900
    assert len(sample.input_ids) <= 900
    assert TRUNCATION_MARKER in prompt_text
    assert "姓名：王小明  性别：男" in prompt_text
    assert "入院诊断：冠心病" in prompt_text
    assert label_text == format_answer(FIELDS) + "<|im_end|>"
    assert sample.cut_chars > 0


def test_sample_too_long_is_dropped(tokenizer, builder: PromptBuilder) -> None:
    encoded = SampleEncoder(tokenizer, 200).encode_rows([row_for(builder), row_for(builder, text="短")])

    assert encoded.samples == []
    assert [d.reason for d in encoded.dropped] == ["too_long", "too_long"]
    assert "max_length 200" in encoded.dropped[0].detail


def test_template_rewriting_prompt_rejected(tokenizer, builder: PromptBuilder) -> None:
    odd = transformers.AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    # Renders the last user turn differently once an assistant answer follows it.
    odd.chat_template = (
        "{%- for m in messages %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] }}"
        "{%- if m['role'] == 'user' and not loop.last %}{{- ' (answered)' }}{%- endif %}{{- '<|im_end|>\\n' }}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )
    with pytest.raises(TemplateMismatch, match="not a prefix"):
        SampleEncoder(odd, 4096).encode("r1", row_for(builder)["messages"])


def test_template_without_stop_rejected(tokenizer, builder: PromptBuilder) -> None:
    plain = transformers.AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    plain.chat_template = (
        "{%- for m in messages %}{{- m['role'] + ': ' + m['content'] + '\\n' }}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- 'assistant: ' }}{%- endif %}"
    )
    with pytest.raises(TemplateMismatch, match="stop token"):
        SampleEncoder(plain, 4096).encode("r1", row_for(builder)["messages"])


def test_training_row_answer_in_schema_order(builder: PromptBuilder) -> None:
    shuffled = dict(reversed(list(FIELDS.items())))
    row = row_for(builder, fields=shuffled)
    assert row["messages"][-1] == {"role": "assistant", "content": format_answer(FIELDS)}
    assert json.loads(row["messages"][-1]["content"]) == FIELDS
    assert row["messages"][:-1] == builder.messages(RECORD)
