"""A decoder that runs a local causal LM with ``transformers.generate``."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

import torch

from ..errors import InputError
from ..i18n import pick
from ..schema import Schema
from .base import Completion, CompletionRequest, GenerationSettings, Message

logger = logging.getLogger(__name__)

END_OF_TURN = "<|im_end|>"


class ConstrainedBatch(Protocol):
    """A constraint's state for one ``generate`` call."""

    @property
    def logits_processors(self) -> list[Any]:
        """Processors for ``generate``; rows follow ``generate``'s layout (a request's sequences are adjacent)."""
        ...

    def finish(self, completions: list[Completion]) -> None:
        """Fill in what decoding learned about the completions (exact evidence offsets, failed rows)."""
        ...


class Constraint(Protocol):
    """Hook for constrained decoding (see ``constraints.GrammarConstraint``)."""

    def start(self, requests: Sequence[CompletionRequest], num_return_sequences: int) -> ConstrainedBatch:
        """Set up the per-row state for one batch of requests."""
        ...


class TransformersDecoder:
    """Complete chat requests with a local model.

    Prompts come from the tokenizer's own chat template with Qwen3 thinking off (unless ``thinking``). Batches
    are left-padded with attention masks; generation stops on ``<|im_end|>`` and on the tokenizer's eos.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        settings: GenerationSettings | None = None,
        batch_size: int = 8,
        thinking: bool = False,
        constraint: Constraint | None = None,
        stamp: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings or GenerationSettings()
        self.batch_size = max(1, batch_size)
        self.thinking = thinking
        self.constraint = constraint
        if constraint is not None:
            reject_beams_with_constraint(self.settings)
        self._stamp = dict(stamp or {})
        self.tokenizer.padding_side = "left"
        self.stop_token_ids = stop_token_ids(tokenizer, model)

    def render(self, messages: Sequence[Message]) -> str:
        return render_prompt(self.tokenizer, messages, thinking=self.thinking)

    def stamp(self) -> dict[str, Any]:
        return {
            "backend": "transformers",
            **self._stamp,
            "thinking": self.thinking,
            "constrained": self.constraint is not None,
            "generation": self.settings.to_dict(),
        }

    def complete(self, requests: Sequence[CompletionRequest]) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        runnable: list[tuple[int, CompletionRequest, str]] = []
        for index, request in enumerate(requests):
            prompt = self.render(request.messages)
            too_long = self._context_error(prompt)
            if too_long is not None:
                results[index] = too_long
            else:
                runnable.append((index, request, prompt))

        for start in range(0, len(runnable), self.batch_size):
            chunk = runnable[start : start + self.batch_size]
            batch = self._complete_batch([r for _, r, _ in chunk], [p for _, _, p in chunk])
            for (index, _, _), completion in zip(chunk, batch):
                results[index] = completion
        return [c for c in results if c is not None]

    def _context_error(self, prompt: str) -> Completion | None:
        """Return an error completion when the prompt plus ``max_new_tokens`` exceeds the model's context."""
        context = getattr(self.model.config, "max_position_embeddings", None)
        length = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if not context or length + self.settings.max_new_tokens <= context:
            return None
        message = pick(
            "提示词有 {length} 个 token，加上 max_new_tokens={new} 超过了模型的上下文长度 {context}。"
            "请用 --max-record-chars 截短病历，或减少示例。",
            "The prompt has {length} tokens, which with max_new_tokens={new} exceeds the model's context of "
            "{context}. Shorten records with --max-record-chars or use fewer examples.",
            length=length, new=self.settings.max_new_tokens, context=context,
        )
        return Completion(text="", prompt_tokens=length, error=message)

    @torch.inference_mode()
    def _complete_batch(self, requests: Sequence[CompletionRequest], prompts: Sequence[str]) -> list[Completion]:
        settings = self.settings
        started = time.perf_counter()

        # build inputs: tokens without extra special tokens, because the chat template already has them
        inputs = self.tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        prompt_length = inputs["input_ids"].shape[1]

        # generate
        kwargs = self._generate_kwargs()
        constrained = None
        if self.constraint is not None:
            reject_beams_with_constraint(settings)
            constrained = self.constraint.start(requests, settings.num_return_sequences)
            kwargs["logits_processor"] = constrained.logits_processors
        if settings.do_sample:
            torch.manual_seed(settings.seed)
        output = self.model.generate(**inputs, **kwargs)

        # cut the prompt off, find where each sequence stopped, decode
        generated = output[:, prompt_length:].tolist()
        prompt_counts = inputs["attention_mask"].sum(dim=1).tolist()
        seconds = (time.perf_counter() - started) / len(requests)
        n = settings.num_return_sequences
        completions = []
        for index, prompt_tokens in enumerate(prompt_counts):
            sequences = [self._decode(ids) for ids in generated[index * n : (index + 1) * n]]
            text, completion_tokens, truncated = sequences[0]
            completions.append(
                Completion(
                    text=text,
                    prompt_tokens=int(prompt_tokens),
                    completion_tokens=completion_tokens,
                    truncated=truncated,
                    seconds=seconds,
                    alternatives=[s[0] for s in sequences[1:]],
                )
            )
        if constrained is not None:
            constrained.finish(completions)
        return completions

    def _generate_kwargs(self) -> dict[str, Any]:
        s = self.settings
        kwargs: dict[str, Any] = {
            "max_new_tokens": s.max_new_tokens,
            "do_sample": s.do_sample,
            "num_beams": s.num_beams,
            "repetition_penalty": s.repetition_penalty,
            "no_repeat_ngram_size": s.no_repeat_ngram_size,
            "length_penalty": s.length_penalty,
            "num_return_sequences": s.num_return_sequences,
            "eos_token_id": self.stop_token_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if s.do_sample:
            kwargs.update(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p)
        else:
            # The model's generation_config may carry sampling defaults (Qwen ships temperature 0.7); greedy
            # decoding must not inherit them, or transformers warns on every call.
            kwargs.update(temperature=None, top_k=None, top_p=None)
        return kwargs

    def _decode(self, ids: list[int]) -> tuple[str, int, bool]:
        """Return the text before the first stop token, the completion token count, and whether it was cut off."""
        stop_at = next((i for i, token in enumerate(ids) if token in self.stop_token_ids), None)
        if stop_at is None:
            return self.tokenizer.decode(ids, skip_special_tokens=True), len(ids), True
        return self.tokenizer.decode(ids[:stop_at], skip_special_tokens=True), stop_at + 1, False


def render_prompt(tokenizer: Any, messages: Sequence[Message], thinking: bool = False) -> str:
    """Render messages with the tokenizer's chat template, ready for the assistant's answer.

    ``enable_thinking`` is read by Qwen3 templates and ignored by others.
    """
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=True, enable_thinking=thinking
    )


def stop_token_ids(tokenizer: Any, model: Any | None = None) -> list[int]:
    """Collect the ids that end a turn: ``<|im_end|>``, the tokenizer's eos and the model's configured eos."""
    ids: list[int] = []
    candidates: list[Any] = [tokenizer.convert_tokens_to_ids(END_OF_TURN), tokenizer.eos_token_id]
    if model is not None and getattr(model, "generation_config", None) is not None:
        configured = model.generation_config.eos_token_id
        candidates.extend(configured if isinstance(configured, list) else [configured])
    unknown = tokenizer.unk_token_id
    for token_id in candidates:
        if isinstance(token_id, int) and token_id != unknown and token_id not in ids:
            ids.append(token_id)
    return ids


def reject_beams_with_constraint(settings: GenerationSettings) -> None:
    """Raise ``InputError`` for beam search with constrained decoding.

    Beam search reorders and duplicates rows between steps, and ``generate`` does not tell a logits processor
    which beam came from which, so per-row grammar states would go out of step with their rows.
    """
    if settings.num_beams > 1:
        raise InputError(
            pick(
                "约束解码不支持 beam search（num_beams={beams}）。请设 num_beams=1（可用采样加 num_return_sequences），或用 --free 关闭约束解码。",
                "Constrained decoding does not support beam search (num_beams={beams}). Set num_beams to 1 "
                "(sampling with num_return_sequences works), or turn constrained decoding off with --free.",
                beams=settings.num_beams,
            )
        )


def load_decoder(
    model: str,
    hub: str = "modelscope",
    revision: str | None = None,
    adapter: str | None = None,
    settings: GenerationSettings | None = None,
    batch_size: int = 8,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    thinking: bool = False,
    schema: Schema | None = None,
    constrained: bool = True,
    grounded: bool = True,
    grounded_paths: Sequence[str] = (),
    block_repeats: bool = True,
) -> TransformersDecoder:
    """Resolve, load and wrap a model (and adapter) as a decoder, stamping where it came from.

    With a ``schema`` and ``constrained`` (the default), every completion is constrained to the schema's JSON
    (see ``constraints.GrammarConstraint``). With ``grounded`` as well, fields marked ``x-grounded`` in the schema
    and those named in ``grounded_paths`` (``姓名``, ``入院诊断[]``, ``用药[].药名``) are copied from the record.
    ``block_repeats`` stops an array item from copying an earlier item of the same array. The schema and
    settings are checked before the model loads, so unsupported input fails fast.
    """
    from .loading import load_model, resolve_model

    settings = settings or GenerationSettings()
    if schema is not None and constrained:
        from .constraints import prepare_grammar

        reject_beams_with_constraint(settings)
        prepare_grammar(schema, grounded_paths if grounded else (), use_schema_marks=grounded)

    spec = resolve_model(model, hub=hub, revision=revision)
    loaded, tokenizer = load_model(spec, adapter=adapter, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    stamp: dict[str, Any] = {
        "model": spec.name,
        "model_source": spec.source,
        "revision": spec.revision,
        "adapter": str(adapter) if adapter else None,
        "device": str(loaded.device),
        "dtype": str(loaded.dtype).removeprefix("torch."),
    }
    constraint = None
    if schema is not None and constrained:
        constraint = _grammar_constraint(loaded, tokenizer, schema, thinking, grounded, grounded_paths, block_repeats)
        stamp["constraint"] = constraint.describe()
    return TransformersDecoder(
        loaded, tokenizer, settings=settings, batch_size=batch_size, thinking=thinking, constraint=constraint, stamp=stamp
    )


def _grammar_constraint(
    model: Any,
    tokenizer: Any,
    schema: Schema,
    thinking: bool,
    grounded: bool,
    grounded_paths: Sequence[str],
    block_repeats: bool,
) -> Any:
    from .constraints import GrammarConstraint

    embeddings = model.get_output_embeddings()
    vocab_size = max(len(tokenizer), embeddings.weight.shape[0]) if embeddings is not None else None
    return GrammarConstraint(
        tokenizer,
        schema,
        grounded_paths=grounded_paths if grounded else (),
        use_schema_marks=grounded,
        thinking=thinking,
        vocab_size=vocab_size,
        stop_token_ids=stop_token_ids(tokenizer, model),
        block_repeats=block_repeats,
    )
