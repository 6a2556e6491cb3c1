"""Token ids and labels for training, with the prompt rendered by the code path ``extract`` uses.

For each conversation the prompt is ``render_prompt(messages[:-1])``: the tokenizer's chat template with the
generation prompt and, for Qwen3 with thinking off, the empty ``<think>\\n\\n</think>\\n\\n`` block. The full
conversation is rendered too, and the prompt must be a string prefix of it; the rest is the completion. Prompt
and completion are tokenized separately, so the prompt ids are exactly what ``extract`` feeds the model.

Labels are -100 over the prompt and equal to the completion ids up to and including the first stop token
(``<|im_end|>`` for ChatML models). The newline the template writes after that token is not trained. Labels are built
from lengths, never by comparing ids with the pad id, so a tokenizer whose pad token is ``<|im_end|>`` (SmolLM2,
or any tokenizer patched with ``pad = eos``) still learns to stop.

A record too long for ``max_length`` is cut in the middle by ``truncate_middle``, the function behind
``extract --max-record-chars``, so the answer is never cut.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..decoding.transformers_backend import END_OF_TURN, render_prompt, stop_token_ids
from ..errors import InputError
from ..i18n import pick
from ..prompts import Message
from ..records import TRUNCATION_MARKER, truncate_middle
from .data import TOO_LONG, Dropped

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


class TemplateMismatch(InputError):
    """The chat template renders a conversation so that training could not match the inference prompt."""


class TooLong(Exception):
    """A sample does not fit ``max_length`` even with its record text cut. ``detail`` gives the token counts."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass
class Sample:
    """One training example as token ids."""

    id: str
    input_ids: list[int]
    labels: list[int]
    prompt_length: int
    cut_chars: int = 0
    """Characters removed from the middle of the record text to fit ``max_length``."""


@dataclass
class EncodedSet:
    """Samples that fit, samples dropped, and what the completions looked like."""

    samples: list[Sample] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    cut: int = 0
    """How many samples had their record text cut."""
    completion_prefix: str = ""
    """Text the template puts before the answer in the completion (an empty think block in thinking mode)."""

    @property
    def max_completion_tokens(self) -> int:
        return max((len(s.input_ids) - s.prompt_length for s in self.samples), default=0)


def split_prompt_completion(tokenizer: Any, messages: Sequence[Message], thinking: bool = False) -> tuple[str, str]:
    """Render the prompt ``extract`` sends and the completion that follows it in the full conversation.

    Raises ``TemplateMismatch`` when the prompt is not a prefix of the full rendering, or the answer is not in
    the completion: training on such text would teach the model a prompt it never receives at extraction time.
    """
    prompt = render_prompt(tokenizer, messages[:-1], thinking=thinking)
    full = tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=False, enable_thinking=thinking
    )
    if not full.startswith(prompt):
        raise TemplateMismatch(
            pick(
                "模型的对话模板在带答案渲染时改变了提示词（提示词不是完整对话的前缀），训练将与推理不一致。"
                "请换用标准 ChatML 模板的模型，或检查 thinking 设置。提示词结尾：{tail!r}",
                "The model's chat template renders the prompt differently once the answer follows (the prompt is not "
                "a prefix of the full conversation), so training would not match inference. Use a model with a "
                "standard ChatML template, or check the thinking setting. Prompt ends with: {tail!r}",
                tail=prompt[-60:],
            )
        )
    completion = full[len(prompt) :]
    if messages[-1]["content"] not in completion:
        raise TemplateMismatch(
            pick(
                "对话模板改写了 assistant 的答案，无法确定要训练的 token。",
                "The chat template rewrites the assistant's answer, so the tokens to train cannot be found.",
            )
        )
    return prompt, completion


class SampleEncoder:
    """Encode training rows into samples of at most ``max_length`` tokens, cutting record text when needed."""

    def __init__(self, tokenizer: Any, max_length: int, thinking: bool = False) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.thinking = thinking
        self.stop_ids = set(stop_token_ids(tokenizer))
        self.completion_prefix = ""
        """What the template wrote before the answer in the last encoded completion."""

    def encode_rows(self, rows: Iterable[dict[str, Any]]) -> EncodedSet:
        encoded = EncodedSet()
        for row in rows:
            try:
                sample = self.fit(row)
            except TooLong as exc:
                encoded.dropped.append(Dropped(str(row["id"]), "", TOO_LONG, exc.detail))
                continue
            encoded.cut += sample.cut_chars > 0
            encoded.samples.append(sample)
        encoded.completion_prefix = self.completion_prefix
        return encoded

    def encode(self, row_id: str, messages: Sequence[Message]) -> Sample:
        """Tokenize one conversation: prompt ids masked, completion ids through the first stop token."""
        prompt, completion = split_prompt_completion(self.tokenizer, messages, self.thinking)
        self.completion_prefix = completion[: completion.index(messages[-1]["content"])]
        prompt_ids = self._ids(prompt)
        completion_ids = self._ids(completion)
        stop_at = next((i for i, token in enumerate(completion_ids) if token in self.stop_ids), None)
        if stop_at is None:
            raise TemplateMismatch(
                pick(
                    "对话模板没有用停止符（如 {stop}）结束 assistant 回合，模型将学不会停止。",
                    "The chat template does not end the assistant turn with a stop token such as {stop}, so the model "
                    "could not learn to stop.",
                    stop=END_OF_TURN,
                )
            )
        completion_ids = completion_ids[: stop_at + 1]
        return Sample(
            id=row_id,
            input_ids=prompt_ids + completion_ids,
            labels=[IGNORE_INDEX] * len(prompt_ids) + completion_ids,
            prompt_length=len(prompt_ids),
        )

    def fit(self, row: dict[str, Any]) -> Sample:
        """Encode a row within ``max_length``, cutting the middle of the record text; raise ``TooLong`` if that fails."""
        row_id, messages = str(row["id"]), row["messages"]
        sample = self.encode(row_id, messages)
        if len(sample.input_ids) <= self.max_length:
            return sample

        text = _locate_record(messages, row.get("text"))
        if text is None:
            raise TooLong(f"{len(sample.input_ids)} tokens > max_length {self.max_length}; record text not found in the prompt, so it cannot be cut")
        shortest = self._length(row_id, messages, text, 0)
        if shortest > self.max_length:
            raise TooLong(f"{shortest} tokens without the record text > max_length {self.max_length}")

        # binary search for the longest cut record that still fits; truncate_middle is what extract uses
        low, high = 0, len(text) - 1
        while low < high:
            middle = (low + high + 1) // 2
            if self._length(row_id, messages, text, middle) <= self.max_length:
                low = middle
            else:
                high = middle - 1
        cut = truncate_middle(text, max(1, low))
        sample = self.encode(row_id, _with_record(messages, text, cut))
        sample.cut_chars = len(text) - (len(cut) - len(TRUNCATION_MARKER))
        return sample

    def _length(self, row_id: str, messages: Sequence[Message], text: str, max_chars: int) -> int:
        cut = truncate_middle(text, max(1, max_chars))
        return len(self.encode(row_id, _with_record(messages, text, cut)).input_ids)

    def _ids(self, text: str) -> list[int]:
        # The chat template writes the special tokens itself, as in TransformersDecoder.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def _locate_record(messages: Sequence[Message], text: Any) -> str | None:
    """Return the form of the record text that appears in the last user message, or None."""
    if not isinstance(text, str) or len(messages) < 2:
        return None
    content = messages[-2]["content"]
    for candidate in (text, text.strip()):
        if candidate and candidate in content:
            return candidate
    return None


def _with_record(messages: Sequence[Message], text: str, replacement: str) -> list[Message]:
    """Copy the messages with the last occurrence of the record text in the last user message replaced."""
    copied = [dict(m) for m in messages]
    content = copied[-2]["content"]
    start = content.rfind(text)
    copied[-2]["content"] = content[:start] + replacement + content[start + len(text) :]
    return copied


def choose_pad_id(tokenizer: Any) -> int:
    """Pick a padding id that is not a stop token, so padding can never be mistaken for the end of a turn.

    Labels do not depend on it (they are built from lengths), but a merged model's generation config does.
    """
    stops = set(stop_token_ids(tokenizer))
    candidates = [tokenizer.pad_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>"), tokenizer.unk_token_id]
    candidates += [tokenizer.convert_tokens_to_ids(t) for t in ("<pad>", "<|finetune_right_pad_id|>")]
    for token_id in candidates:
        if isinstance(token_id, int) and token_id >= 0 and token_id not in stops:
            return token_id
    # NOTE: a vocabulary with no spare token pads with a stop token. Training is unaffected, because labels and
    # the attention mask come from lengths, but generation then cannot tell padding from a stop.
    return next(iter(stops))


class PaddingCollator:
    """Right-pad a batch: ids with ``pad_id``, attention mask 0 and labels -100 over the padding."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        input_ids, attention_mask, labels = [], [], []
        for feature in features:
            padding = longest - len(feature["input_ids"])
            input_ids.append(list(feature["input_ids"]) + [self.pad_id] * padding)
            attention_mask.append([1] * len(feature["input_ids"]) + [0] * padding)
            labels.append(list(feature["labels"]) + [IGNORE_INDEX] * padding)
        return {
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "attention_mask": torch.tensor(attention_mask, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
        }


def as_features(samples: Sequence[Sample]) -> list[dict[str, list[int]]]:
    """Return the samples as the dicts the Trainer's data loader hands to ``PaddingCollator``."""
    return [{"input_ids": s.input_ids, "labels": s.labels} for s in samples]
