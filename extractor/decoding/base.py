"""The decoder interface: a batch of requests in, one completion per request out.

This module imports no torch, so the core and its tests run without a model. Backends live beside it:
``transformers`` (a local model) and ``fake`` (scripted completions for tests).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import InputError
from ..i18n import pick

Message = dict[str, str]


@dataclass(frozen=True)
class GenerationSettings:
    """Generation parameters passed to ``generate``. The defaults decode greedily."""

    max_new_tokens: int = 512
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    num_beams: int = 1
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    length_penalty: float = 1.0
    num_return_sequences: int = 1
    seed: int = 0
    """Seed for sampling, set before each batch so that runs repeat."""

    def __post_init__(self) -> None:
        checks = [
            ("max_new_tokens", self.max_new_tokens >= 1, ">= 1"),
            ("temperature", self.temperature > 0, "> 0"),
            ("top_k", self.top_k >= 0, ">= 0"),
            ("top_p", 0 < self.top_p <= 1, "in (0, 1]"),
            ("num_beams", self.num_beams >= 1, ">= 1"),
            ("repetition_penalty", self.repetition_penalty > 0, "> 0"),
            ("no_repeat_ngram_size", self.no_repeat_ngram_size >= 0, ">= 0"),
            ("num_return_sequences", self.num_return_sequences >= 1, ">= 1"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise InputError(
                    pick(
                        "生成参数 {name}={value} 无效，应 {rule}。",
                        "Generation setting {name}={value} is invalid: it must be {rule}.",
                        name=name, value=getattr(self, name), rule=rule,
                    )
                )
        if not self.do_sample and self.num_return_sequences > self.num_beams:
            raise InputError(
                pick(
                    "贪心解码只能返回 1 个序列：num_return_sequences={n} 需要 --do-sample 或 num_beams >= {n}。",
                    "Greedy decoding returns one sequence: num_return_sequences={n} needs --do-sample or num_beams >= {n}.",
                    n=self.num_return_sequences,
                )
            )
        sampling_changed = self.temperature != 1.0 or self.top_p != 1.0 or self.top_k != 50
        if not self.do_sample and sampling_changed:
            warnings.warn(
                "temperature, top_k and top_p only apply with do_sample=True; they are ignored in greedy decoding",
                stacklevel=3,
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CompletionRequest:
    """Input to a decoder: the chat messages, plus the record text for record-grounded constraints."""

    messages: tuple[Message, ...]
    record_text: str = ""


@dataclass
class Completion:
    """One completion with its bookkeeping."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False
    """True when generation stopped at ``max_new_tokens`` instead of an end-of-turn token."""
    seconds: float = 0.0
    """This request's share of the batch's wall time."""
    alternatives: list[str] = field(default_factory=list)
    """Further sequences when ``num_return_sequences`` > 1, best first."""
    spans: dict[str, Any] = field(default_factory=dict)
    """Evidence offsets known exactly from decoding (grounded fields), keyed by JSON path."""
    error: str | None = None
    """Reason the decoder could not run this request, for example a prompt longer than the model's context."""


@runtime_checkable
class Decoder(Protocol):
    """A backend that completes batches of chat requests."""

    def complete(self, requests: Sequence[CompletionRequest]) -> list[Completion]:
        """Return one completion per request, in request order."""
        ...

    def render(self, messages: Sequence[Message]) -> str:
        """Return the exact prompt text the model receives for these messages."""
        ...

    def stamp(self) -> dict[str, Any]:
        """Describe the model, adapter and settings for output rows."""
        ...
