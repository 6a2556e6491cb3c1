"""Constrained and grounded decoding with the tiny random Qwen3 on the real Qwen3 tokenizer.

A random model explores every path the grammar leaves open, so these tests check what the constraint enforces
(valid JSON, grounded values copied from the record, clean stops), not what a trained model would write.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("llguidance")

import torch  # noqa: E402

from extractor.checking import check_text  # noqa: E402
from extractor.decoding.base import Completion, CompletionRequest, GenerationSettings  # noqa: E402
from extractor.decoding.constraints import AnswerScanner, GrammarConstraint, llguidance_tokenizer  # noqa: E402
from extractor.decoding.grammar import grounded_spans  # noqa: E402
from extractor.decoding.transformers_backend import TransformersDecoder, load_decoder, stop_token_ids  # noqa: E402
from extractor.errors import InputError  # noqa: E402
from extractor.schema import load_schema, schema_from_dict  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ADMISSION = load_schema(ROOT / "schemas" / "admission.json")
GROUNDED = ("姓名", "科别", "入院诊断[]", "用药[].药名")

# Short records keep the random model's outputs short: no free string may be longer than its record.
NAMES = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄强", "周杰", "吴霞"]
COMPLAINTS = ["胸痛3天", "发热伴咳嗽1周", "腹痛2小时", "头晕半月", "气促加重5天"]
DIAGNOSES = ["冠心病", "社区获得性肺炎", "急性阑尾炎", "高血压病3级", "慢性心力衰竭"]
RECORDS = [
    f"患者{NAMES[i % 10]}，{'男女'[i % 2]}，{20 + i}岁。因{COMPLAINTS[i % 5]}入院。诊断：{DIAGNOSES[(i // 5) % 5]}。"
    for i in range(50)
]
FEW = RECORDS[::7]
MAX_NEW_TOKENS = 800
BATCH_SIZE = 25


def requests(records: list[str]) -> list[CompletionRequest]:
    return [CompletionRequest(messages=({"role": "user", "content": "病历：\n" + r},), record_text=r) for r in records]


def valid_count(completions: list[Completion]) -> int:
    return sum(check_text(c.text, ADMISSION, truncated=c.truncated).valid for c in completions)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run the tiny model on one thread: its matrices are too small to gain from more, and on shared cores
    OpenMP threads that wait for each other made a decoding step more than ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def decoder(tiny_qwen3_dir: Path) -> TransformersDecoder:
    settings = GenerationSettings(max_new_tokens=MAX_NEW_TOKENS)
    return load_decoder(str(tiny_qwen3_dir), settings=settings, batch_size=BATCH_SIZE, schema=ADMISSION)


def run(decoder: TransformersDecoder, records: list[str], **settings: Any) -> list[Completion]:
    decoder.settings = GenerationSettings(max_new_tokens=MAX_NEW_TOKENS, **settings)
    started = time.perf_counter()
    completions = decoder.complete(requests(records))
    print(f"\n{len(records)} records, {settings or 'greedy'}: {time.perf_counter() - started:.1f} s")
    return completions


def run_free(decoder: TransformersDecoder, records: list[str]) -> list[Completion]:
    free = TransformersDecoder(decoder.model, decoder.tokenizer, GenerationSettings(max_new_tokens=MAX_NEW_TOKENS), batch_size=BATCH_SIZE)
    started = time.perf_counter()
    completions = free.complete(requests(records))
    print(f"\nfree decoding, {len(records)} records: {time.perf_counter() - started:.1f} s")
    return completions


@pytest.fixture(scope="module")
def greedy(decoder: TransformersDecoder) -> list[Completion]:
    return run(decoder, FEW)


@pytest.fixture(scope="module")
def sampled(decoder: TransformersDecoder) -> list[Completion]:
    return run(decoder, FEW, do_sample=True, seed=5)


# --- validity ----------------------------------------------------------------------------------------------


def assert_all_valid(completions: list[Completion], count: int) -> None:
    assert len(completions) == count
    assert [c.error for c in completions] == [None] * count
    assert [c.truncated for c in completions] == [False] * count
    assert valid_count(completions) == count


def test_records_valid_greedy(greedy: list[Completion]) -> None:
    assert_all_valid(greedy, len(FEW))


def test_records_valid_sampled(sampled: list[Completion]) -> None:
    assert_all_valid(sampled, len(FEW))


def test_free_decoding_invalid(decoder: TransformersDecoder) -> None:
    assert valid_count(run_free(decoder, FEW[:4])) < 2


@pytest.mark.slow
def test_fifty_records_constrained_and_free(decoder: TransformersDecoder) -> None:
    assert_all_valid(run(decoder, RECORDS), 50)
    assert_all_valid(run(decoder, RECORDS, do_sample=True, seed=5), 50)
    free_valid = valid_count(run_free(decoder, RECORDS))
    print(f"free decoding: {free_valid}/50 valid")
    assert free_valid < 25


def test_outputs_stop_right_after_object(greedy: list[Completion]) -> None:
    for completion in greedy:
        assert completion.text.endswith("}")
        assert json.loads(completion.text) is not None
        assert 0 < completion.completion_tokens < MAX_NEW_TOKENS


def test_greedy_outputs_differ_per_record(greedy: list[Completion]) -> None:
    assert len({c.text for c in greedy}) >= len(FEW) / 2


# --- grounding ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["greedy", "sampled"])
def test_grounded_values_are_record_substrings(mode: str, request: pytest.FixtureRequest) -> None:
    completions: list[Completion] = request.getfixturevalue(mode)
    seen = 0
    for record, completion in zip(FEW, completions):
        value = json.loads(completion.text)
        expected = grounded_spans(value, GROUNDED, record)
        assert completion.spans == expected
        for path, offsets in completion.spans.items():
            found = _value_at(value, path)
            assert found and found in record
            for start, end in offsets:
                assert record[start:end] == found
            seen += 1
    assert seen > 0


def _value_at(value: Any, json_path: str) -> Any:
    for part in json_path.removeprefix("$").replace("[", ".[").split(".")[1:]:
        value = value[int(part[1:-1])] if part.startswith("[") else value[part]
    return value


def test_empty_record_text_decodes_grounded_fields_freely(decoder: TransformersDecoder, list_constraint: GrammarConstraint) -> None:
    settings = GenerationSettings(max_new_tokens=MAX_NEW_TOKENS)
    unrecorded = TransformersDecoder(decoder.model, decoder.tokenizer, settings, constraint=list_constraint)
    [completion] = unrecorded.complete([CompletionRequest(messages=({"role": "user", "content": "病历：无"},))])
    assert completion.error is None
    assert not completion.truncated
    assert set(json.loads(completion.text)) == {"诊断"}
    assert completion.spans == {}


# --- batching, sequences, settings -------------------------------------------------------------------------


def test_batched_equals_one_at_a_time(decoder: TransformersDecoder, greedy: list[Completion]) -> None:
    decoder.settings = GenerationSettings(max_new_tokens=MAX_NEW_TOKENS)
    for index in (0, 3, 6):
        [single] = decoder.complete(requests([FEW[index]]))
        assert single.text == greedy[index].text
        assert single.spans == greedy[index].spans


def test_each_returned_sequence_valid(decoder: TransformersDecoder) -> None:
    decoder.settings = GenerationSettings(max_new_tokens=MAX_NEW_TOKENS, do_sample=True, num_return_sequences=3, seed=2)
    completions = decoder.complete(requests(RECORDS[:4]))
    texts = [t for c in completions for t in (c.text, *c.alternatives)]
    assert len(texts) == 12
    for text in texts:
        assert check_text(text, ADMISSION).valid


def test_beam_search_rejected(decoder: TransformersDecoder, tiny_qwen3_dir: Path) -> None:
    with pytest.raises(InputError, match="does not support beam search"):
        load_decoder(str(tiny_qwen3_dir), schema=ADMISSION, settings=GenerationSettings(num_beams=2))
    with pytest.raises(InputError, match="num_beams=2"):
        TransformersDecoder(decoder.model, decoder.tokenizer, GenerationSettings(num_beams=2), constraint=decoder.constraint)


def test_unsupported_keyword_rejected_before_model_loads(tmp_path: Path) -> None:
    data = json.loads(json.dumps(ADMISSION.data))
    data["properties"]["入院诊断"]["uniqueItems"] = True
    with pytest.raises(InputError, match="uniqueItems at #/properties/入院诊断"):
        load_decoder(str(tmp_path / "no-such-model"), schema=schema_from_dict(data))


def test_repeat_guard_can_be_turned_off(tiny_qwen3_dir: Path) -> None:
    allowing = load_decoder(str(tiny_qwen3_dir), schema=ADMISSION, block_repeats=False)
    assert allowing.stamp()["constraint"]["block_repeats"] is False
    assert allowing.constraint.start(requests(["高血压"]), 1).processor.block_repeats is False


def test_free_flag_skips_constraint(tiny_qwen3_dir: Path) -> None:
    free = load_decoder(str(tiny_qwen3_dir), schema=ADMISSION, constrained=False)
    assert free.constraint is None
    assert free.stamp()["constrained"] is False


def test_stamp_names_engine_and_grounded_fields(decoder: TransformersDecoder) -> None:
    stamp = decoder.stamp()
    assert stamp["constrained"] is True
    assert stamp["constraint"]["engine"].startswith("llguidance ")
    assert stamp["constraint"]["grounded"] == list(GROUNDED)


def test_tokenizer_prepared_once(decoder: TransformersDecoder) -> None:
    stops = tuple(stop_token_ids(decoder.tokenizer, decoder.model))
    other = GrammarConstraint(decoder.tokenizer, ADMISSION, vocab_size=decoder.constraint.tokenizer.vocab_size, stop_token_ids=stops)
    assert other.tokenizer is decoder.constraint.tokenizer
    assert llguidance_tokenizer.cache_info().hits >= 1


# --- the processor on hand-made steps ----------------------------------------------------------------------

LIST_SCHEMA = schema_from_dict(
    {
        "type": "object",
        "required": ["诊断"],
        "properties": {"诊断": {"type": "array", "maxItems": 5, "items": {"type": "string", "maxLength": 12, "x-grounded": True}}},
    }
)


@pytest.fixture(scope="module")
def list_constraint(decoder: TransformersDecoder) -> GrammarConstraint:
    stops = stop_token_ids(decoder.tokenizer, decoder.model)
    return GrammarConstraint(decoder.tokenizer, LIST_SCHEMA, vocab_size=decoder.constraint.tokenizer.vocab_size, stop_token_ids=stops)


def step(processor: Any, history: list[list[int]], vocab: int) -> torch.Tensor:
    return processor(torch.tensor(history), torch.zeros((len(history), vocab)))


def test_rejected_token_stops_row_with_error(decoder: TransformersDecoder, list_constraint: GrammarConstraint) -> None:
    tokenizer = decoder.tokenizer
    batch = list_constraint.start(requests(["高血压", "冠心病"]), num_return_sequences=1)
    [processor] = batch.logits_processors
    vocab = list_constraint.tokenizer.vocab_size
    prompt = [[0], [0]]
    first = step(processor, prompt, vocab)
    [opening] = tokenizer.encode('{"', add_special_tokens=False)
    wrong = tokenizer.encode("x", add_special_tokens=False)[0]
    assert torch.isfinite(first[:, opening]).all()

    scores = step(processor, [[0, wrong], [0, opening]], vocab)
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert torch.isfinite(scores[0]).nonzero().flatten().tolist() == [end_of_turn]
    still_open = torch.isfinite(scores[1]).nonzero().flatten().tolist()
    assert still_open and end_of_turn not in still_open

    completions = [Completion(text="x"), Completion(text='{"')]
    batch.finish(completions)
    assert completions[0].error is not None and "Constrained decoding failed" in completions[0].error
    assert completions[1].error is None


def feed_answer(processor: Any, tokenizer: Any, text: str, vocab: int) -> torch.Tensor:
    """Step the processor through ``text`` as the only row and return the scores for the next token."""
    history = [0]
    scores = step(processor, [history], vocab)
    for token in tokenizer.encode(text, add_special_tokens=False):
        history.append(token)
        scores = step(processor, [history], vocab)
    return scores[0]


def test_copy_of_earlier_item_blocked(decoder: TransformersDecoder, list_constraint: GrammarConstraint) -> None:
    tokenizer = decoder.tokenizer
    [processor] = list_constraint.start(requests(["高血压，冠心病"]), 1).logits_processors
    scores = feed_answer(processor, tokenizer, '{"诊断": ["高血压", "高血压', list_constraint.tokenizer.vocab_size)
    for closing in ('"', '"]', '",'):
        [token] = tokenizer.encode(closing, add_special_tokens=False)
        assert scores[token] == float("-inf"), closing
    [comma] = tokenizer.encode("，", add_special_tokens=False)
    assert torch.isfinite(scores[comma])


def test_token_forcing_a_copy_blocked(decoder: TransformersDecoder, list_constraint: GrammarConstraint) -> None:
    tokenizer = decoder.tokenizer
    [processor] = list_constraint.start(requests(["高血压"]), 1).logits_processors
    scores = feed_answer(processor, tokenizer, '{"诊断": ["高血压", "高血', list_constraint.tokenizer.vocab_size)
    [last_character] = tokenizer.encode("压", add_special_tokens=False)
    [closing] = tokenizer.encode('"', add_special_tokens=False)
    assert scores[last_character] == float("-inf")
    assert torch.isfinite(scores[closing])


def test_forced_copy_still_allowed(decoder: TransformersDecoder) -> None:
    enum_list = schema_from_dict(
        {"type": "object", "required": ["a"], "properties": {"a": {"type": "array", "items": {"enum": ["x"]}, "maxItems": 3}}}
    )
    stops = stop_token_ids(decoder.tokenizer, decoder.model)
    constraint = GrammarConstraint(decoder.tokenizer, enum_list, vocab_size=decoder.constraint.tokenizer.vocab_size, stop_token_ids=stops)
    [processor] = constraint.start(requests(["x"]), 1).logits_processors
    scores = feed_answer(processor, decoder.tokenizer, '{"a": ["x", ', constraint.tokenizer.vocab_size)
    allowed = [decoder.tokenizer.decode([t]) for t in torch.isfinite(scores).nonzero().flatten().tolist()]
    assert allowed
    assert all('"x"'.startswith(text) or text.startswith('"x"') for text in allowed)


@pytest.mark.parametrize(
    ("text", "endings"),
    [
        ('{"a": ["高血压", "高', ['血压"']),
        ('{"a": ["高血压", "冠', []),
        ('{"a": [{"b": "x"}, {"b": "', ['x"}']),
        ('{"a": [1, 1', []),
        ('{"a": ["x,]", "x', [',]"']),
        ('{"a": ["高血压", "冠心病", "高', ['血压"']),
        ('{"a": ["ab", "abc", "a', ['b"', 'bc"']),
        ('{"a": "[\\"q\\", \\"q', []),
    ],
)
def test_scanner_reports_copy_endings(text: str, endings: list[str]) -> None:
    scanner = AnswerScanner()
    scanner.feed(text.encode())
    assert scanner.copy_endings() == [e.encode() for e in endings]


def test_scanner_waits_for_think_end() -> None:
    scanner = AnswerScanner(started=False)
    scanner.feed('["a", "'.encode())
    assert scanner.text == bytearray()
    scanner.started = True
    scanner.feed('{"a": ["b", "'.encode())
    assert scanner.copy_endings() == [b'b"']


# --- thinking ----------------------------------------------------------------------------------------------


def test_thinking_answer_constrained_after_think_block(decoder: TransformersDecoder) -> None:
    stops = stop_token_ids(decoder.tokenizer, decoder.model)
    constraint = GrammarConstraint(
        decoder.tokenizer, LIST_SCHEMA, thinking=True, vocab_size=decoder.constraint.tokenizer.vocab_size, stop_token_ids=stops
    )
    matcher, error = constraint.matcher("高血压，冠心病")
    assert error is None
    free_think = "<think>\n诊断有 {两个}：[高血压]。\n</think>\n\n"
    tokens = decoder.tokenizer.encode(free_think + '{"诊断": ["冠心病"]}', add_special_tokens=False)
    assert matcher.consume_tokens(tokens + [stops[0]])

    batch = constraint.start(requests(["高血压，冠心病"]), 1)
    completion = Completion(text=free_think + '{"诊断": ["冠心病"]}')
    batch.finish([completion])
    assert completion.spans == {"$.诊断[0]": [[4, 7]]}
