from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from extractor.decoding.base import CompletionRequest, GenerationSettings  # noqa: E402
from extractor.decoding.transformers_backend import TransformersDecoder, load_decoder, stop_token_ids  # noqa: E402

PROMPTS = ["【主诉】胸闷", "【主诉】反复咳嗽咳痰十年，加重一周，伴发热", "【现病史】患者三天前受凉后出现发热"]


def requests(texts: list[str]) -> list[CompletionRequest]:
    return [CompletionRequest(messages=({"role": "user", "content": t},), record_text=t) for t in texts]


@pytest.fixture(scope="module")
def decoder(tiny_qwen3_dir: Path):
    return load_decoder(str(tiny_qwen3_dir), settings=GenerationSettings(max_new_tokens=12), batch_size=3)


def test_batch_returns_one_completion_per_request_in_order(decoder) -> None:
    batched = decoder.complete(requests(PROMPTS))
    single = [decoder.complete(requests([p]))[0] for p in PROMPTS]
    assert len(batched) == len(PROMPTS)
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.prompt_tokens for c in batched] == [c.prompt_tokens for c in single]


def test_left_padding_and_prompt_counts(decoder) -> None:
    assert decoder.tokenizer.padding_side == "left"
    completions = decoder.complete(requests(PROMPTS))
    expected = [len(decoder.tokenizer(decoder.render(r.messages), add_special_tokens=False)["input_ids"]) for r in requests(PROMPTS)]
    assert [c.prompt_tokens for c in completions] == expected


def test_hitting_max_new_tokens_is_truncated(decoder) -> None:
    [completion] = decoder.complete(requests(PROMPTS[:1]))
    assert completion.truncated
    assert completion.completion_tokens == 12


def test_stop_token_ends_completion(decoder) -> None:
    one_token = TransformersDecoder(decoder.model, decoder.tokenizer, GenerationSettings(max_new_tokens=1))
    [probe] = one_token.complete(requests(PROMPTS[:1]))
    [first_token] = decoder.tokenizer(probe.text, add_special_tokens=False)["input_ids"]
    stopping = TransformersDecoder(decoder.model, decoder.tokenizer, decoder.settings)
    stopping.stop_token_ids = [first_token]
    [completion] = stopping.complete(requests(PROMPTS[:1]))
    assert not completion.truncated
    assert completion.completion_tokens == 1
    assert completion.text == ""


def test_stop_tokens_include_end_of_turn_and_eos(decoder) -> None:
    ids = stop_token_ids(decoder.tokenizer, decoder.model)
    assert decoder.tokenizer.convert_tokens_to_ids("<|im_end|>") in ids
    assert decoder.tokenizer.eos_token_id in ids


def test_prompt_renders_with_thinking_off(decoder) -> None:
    prompt = decoder.render(({"role": "user", "content": "你好"},))
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_num_return_sequences_gives_alternatives(tiny_qwen3_dir: Path) -> None:
    settings = GenerationSettings(max_new_tokens=4, do_sample=True, num_return_sequences=3, seed=1)
    sampler = load_decoder(str(tiny_qwen3_dir), settings=settings, batch_size=2)
    completions = sampler.complete(requests(PROMPTS[:2]))
    assert len(completions) == 2
    assert all(len(c.alternatives) == 2 for c in completions)


def test_sampling_repeats_with_same_seed(tiny_qwen3_dir: Path) -> None:
    settings = GenerationSettings(max_new_tokens=6, do_sample=True, temperature=1.5, seed=7)
    sampler = load_decoder(str(tiny_qwen3_dir), settings=settings)
    first = [c.text for c in sampler.complete(requests(PROMPTS))]
    second = [c.text for c in sampler.complete(requests(PROMPTS))]
    assert first == second


def test_prompt_longer_than_context_is_an_error_row(tiny_qwen3_dir: Path) -> None:
    decoder = load_decoder(str(tiny_qwen3_dir), settings=GenerationSettings(max_new_tokens=4))
    decoder.model.config.max_position_embeddings = 64
    completions = decoder.complete(requests(["短", "长" * 200]))
    assert completions[0].error is None
    assert completions[1].error is not None
    assert "context" in completions[1].error


def test_stamp_names_model_and_settings(decoder, tiny_qwen3_dir: Path) -> None:
    stamp = decoder.stamp()
    assert stamp["model"] == str(tiny_qwen3_dir)
    assert stamp["model_source"] == "local"
    assert stamp["dtype"] == "float32"
    assert stamp["generation"]["max_new_tokens"] == 12
