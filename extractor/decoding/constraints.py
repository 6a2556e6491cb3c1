"""Schema-constrained, record-grounded decoding for the transformers backend, with llguidance.

Each generated row gets its own llguidance matcher built from ``grammar.SchemaGrammar.lark(record_text)``.
At every step a logits processor feeds the row's last token to its matcher, computes all rows' token masks
in parallel, and sets every token the grammar forbids to ``-inf``. When the JSON object closes,
the grammar allows only the stop tokens, so generation ends there as a normal stop.

Costs are paid once where possible: the llguidance tokenizer once per tokenizer (about 1.5 s for Qwen3), the
grammar plan once per schema, and, for a grammar without grounded fields, one pristine matcher per grammar
text that rows then copy. A grounded grammar contains the record, so its matcher is built per record.

Usage::

    constraint = GrammarConstraint(tokenizer, schema, grounded_paths=["入院诊断[]"], vocab_size=151936)
    batch = constraint.start(requests, num_return_sequences=1)
    model.generate(..., logits_processor=batch.logits_processors)
    batch.finish(completions)   # fills Completion.spans and Completion.error
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import llguidance
import llguidance.hf
import llguidance.numpy
import numpy as np
import torch
from transformers import LogitsProcessor

from ..errors import InputError, SetupError
from ..i18n import pick
from ..schema import Schema
from .base import Completion, CompletionRequest
from .grammar import SchemaGrammar, compile_schema, grounded_paths, grounded_spans

logger = logging.getLogger(__name__)

ENGINE = f"llguidance {llguidance.__version__}"
THINK_END = "</think>"

# llguidance's default per-step lexer budget (200k) runs out inside a grounded string of a record of a few
# thousand characters, because the substring automaton then tracks every occurrence of the characters so far.
# With llguidance 1.9.1, 1M was enough for records of 1.2k-5k characters (a random walk through the allowed
# tokens). The budget grows with the record and is only spent when needed. llguidance documents about 14k
# units per ms, which bounds the worst step of a 5k-character record at about 0.4 s.
STEP_LEXER_FUEL_PER_CHAR = 1_000
MIN_STEP_LEXER_FUEL = 2_000_000


@functools.lru_cache(maxsize=4)
def llguidance_tokenizer(tokenizer: Any, vocab_size: int | None, stop_token_ids: tuple[int, ...]) -> llguidance.LLTokenizer:
    """Prepare llguidance's view of a Hugging Face fast tokenizer, once per tokenizer (it takes about a second)."""
    try:
        return llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=list(stop_token_ids))
    except ValueError as exc:
        raise SetupError(
            pick(
                "约束解码需要 Hugging Face 的 fast tokenizer（{kind} 不是）。请换用带 tokenizer.json 的模型，或用 --free 关闭约束解码。",
                "Constrained decoding needs a Hugging Face fast tokenizer, and {kind} is not one. Use a model that "
                "ships tokenizer.json, or turn constrained decoding off with --free.",
                kind=type(tokenizer).__name__,
            )
        ) from exc


@dataclass(frozen=True)
class TokenIndex:
    """Every ordinary token's bytes, and the same sorted so that tokens starting with given bytes can be found."""

    token_bytes: list[bytes]
    sorted_bytes: list[bytes]
    sorted_ids: list[int]
    by_bytes: dict[bytes, int]
    max_length: int

    def starting_with(self, prefix: bytes) -> list[int]:
        """Return the ids of the tokens whose bytes start with ``prefix``."""
        start = bisect.bisect_left(self.sorted_bytes, prefix)
        end = start
        while end < len(self.sorted_bytes) and self.sorted_bytes[end].startswith(prefix):
            end += 1
        return self.sorted_ids[start:end]


@functools.lru_cache(maxsize=4)
def token_index(tokenizer: llguidance.LLTokenizer) -> TokenIndex:
    """Index the tokenizer's vocabulary by bytes (about 0.25 s for Qwen3's 151k tokens), once per tokenizer."""
    token_bytes = [
        b"" if tokenizer.is_special_token(token) else tokenizer.decode_bytes([token]) for token in range(tokenizer.vocab_size)
    ]
    order = sorted((b, token) for token, b in enumerate(token_bytes) if b)
    by_bytes = {b: token for b, token in reversed(order)}
    return TokenIndex(token_bytes, [b for b, _ in order], [token for _, token in order], by_bytes, max(map(len, token_bytes)))


class GrammarConstraint:
    """Constrain completions to a schema's JSON, with grounded fields copied from each request's record.

    ``grounded_paths`` adds field paths (``姓名``, ``入院诊断[]``, ``用药[].药名``) to those the schema marks
    ``x-grounded``; ``use_schema_marks=False`` ignores the marks. With ``thinking``, a free
    ``<think>…</think>`` block may come before the answer. ``block_repeats`` stops an array item from copying
    an earlier item of the same array (see ``AnswerScanner``).
    """

    def __init__(
        self,
        tokenizer: Any,
        schema: Schema,
        grounded_paths: Sequence[str] = (),
        use_schema_marks: bool = True,
        thinking: bool = False,
        vocab_size: int | None = None,
        stop_token_ids: Sequence[int] = (),
        block_repeats: bool = True,
    ) -> None:
        self.schema = schema
        self.thinking = thinking
        self.block_repeats = block_repeats
        self.grammar = prepare_grammar(schema, grounded_paths, use_schema_marks)
        self.grounded = self.grammar.grounded
        stops = tuple(stop_token_ids) or (tokenizer.eos_token_id,)
        self.tokenizer = llguidance_tokenizer(tokenizer, vocab_size, stops)
        self.stop_token_ids = stops
        self.executor = llguidance.LLExecutor()
        self.tokens = token_index(self.tokenizer)
        self.think_end = _think_end_token(tokenizer) if thinking else None
        if thinking and self.think_end is None:
            raise InputError(
                pick(
                    "思考模式需要带 <think> 和 </think> token 的 tokenizer（如 Qwen3），当前模型没有。请去掉 --thinking。",
                    "Thinking needs a tokenizer with <think> and </think> tokens (Qwen3 has them); this model's has "
                    "none. Drop --thinking.",
                )
            )
        self._pristine: OrderedDict[str, llguidance.LLMatcher] = OrderedDict()
        self._check_grammar()

    def describe(self) -> dict[str, Any]:
        """Describe the constraint for output stamps."""
        return {"engine": ENGINE, "grounded": list(self.grounded), "thinking": self.thinking, "block_repeats": self.block_repeats}

    def start(self, requests: Sequence[CompletionRequest], num_return_sequences: int) -> ConstrainedBatch:
        """Build one matcher per generated row (rows of one request are adjacent, as ``generate`` lays them out)."""
        matchers: list[llguidance.LLMatcher | None] = []
        errors: list[str | None] = []
        for request in requests:
            matcher, error = self.matcher(request.record_text)
            matchers.append(matcher)
            for _ in range(num_return_sequences - 1):
                matchers.append(matcher.deep_copy() if matcher is not None else None)
            errors.append(error)
        scanners = [AnswerScanner(started=self.think_end is None) for _ in matchers]
        processor = GrammarLogitsProcessor(matchers, scanners, self)
        return ConstrainedBatch(self, list(requests), processor, errors, num_return_sequences)

    def matcher(self, record_text: str) -> tuple[llguidance.LLMatcher | None, str | None]:
        """Return a fresh matcher for one record, or None and the reason when the grammar cannot be built."""
        grammar = self.grammar.lark(record_text, thinking=self.thinking)
        if self.grammar.is_grounded and record_text:
            matcher = self._build(grammar, len(record_text))
        else:
            matcher = self._cached(grammar, len(record_text)).deep_copy()
        if matcher.is_error():
            # the error can quote bits of the grammar, and so of the record: only DEBUG logs show it
            logger.warning("constrained decoding: the grammar for a record of %d characters failed to build", len(record_text))
            logger.debug("grammar build error: %s", matcher.get_error())
            return None, matcher.get_error()
        return matcher, None

    def _build(self, grammar: str, record_length: int) -> llguidance.LLMatcher:
        fuel = max(MIN_STEP_LEXER_FUEL, STEP_LEXER_FUEL_PER_CHAR * record_length)
        # verbose_errors=False keeps the grammar, and with it the record text, out of error messages and logs
        limits = llguidance.LLParserLimits(step_lexer_fuel=fuel, verbose_errors=False)
        return llguidance.LLMatcher(self.tokenizer, llguidance.LLMatcher.grammar_from_lark(grammar), log_level=0, limits=limits)

    def _cached(self, grammar: str, record_length: int) -> llguidance.LLMatcher:
        """Return the pristine matcher for a grammar without record text, building it on first use."""
        if grammar in self._pristine:
            self._pristine.move_to_end(grammar)
            return self._pristine[grammar]
        matcher = self._build(grammar, record_length)
        self._pristine[grammar] = matcher
        if len(self._pristine) > 16:
            self._pristine.popitem(last=False)
        return matcher

    def _check_grammar(self) -> None:
        """Build the grammar once at start-up, so that a schema llguidance rejects fails before any record."""
        probe, error = self.matcher("示例病历 sample record")
        if probe is None:
            raise InputError(
                pick(
                    "schema「{name}」无法编译成约束解码的语法：{error}。请简化 schema，或用 --free 关闭约束解码。",
                    'Schema "{name}" cannot be compiled for constrained decoding: {error}. Simplify the schema, '
                    "or turn constrained decoding off with --free.",
                    name=self.schema.name, error=error,
                )
            )


def _think_end_token(tokenizer: Any) -> int | None:
    token = tokenizer.convert_tokens_to_ids(THINK_END)
    return token if isinstance(token, int) and token != tokenizer.unk_token_id else None


def prepare_grammar(schema: Schema, extra_paths: Sequence[str] = (), use_schema_marks: bool = True) -> SchemaGrammar:
    """Check the schema and compile its grammar plan; raises ``InputError`` for anything unsupported.

    Needs no model, so callers can run it before loading one.
    """
    paths = grounded_paths(schema, extra_paths, use_marks=use_schema_marks)
    return compile_schema(schema, paths)


class ConstrainedBatch:
    """The constraint's state for one ``generate`` call: the logits processor and the rows' outcomes."""

    def __init__(
        self,
        constraint: GrammarConstraint,
        requests: list[CompletionRequest],
        processor: GrammarLogitsProcessor,
        build_errors: list[str | None],
        num_return_sequences: int,
    ) -> None:
        self.constraint = constraint
        self.requests = requests
        self.processor = processor
        self.build_errors = build_errors
        self.num_return_sequences = num_return_sequences

    @property
    def logits_processors(self) -> list[Any]:
        return [self.processor]

    def finish(self, completions: list[Completion]) -> None:
        """Record failed rows as errors and fill ``spans`` with the grounded values' offsets in the record."""
        for index, (request, completion) in enumerate(zip(self.requests, completions)):
            error = self.build_errors[index] or self.processor.errors[index * self.num_return_sequences]
            if error is not None:
                completion.error = pick(
                    "约束解码失败：{error}",
                    "Constrained decoding failed: {error}",
                    error=error,
                )
                continue
            if self.constraint.grounded and not completion.truncated:
                value = _answer_value(completion.text)
                completion.spans = grounded_spans(value, self.constraint.grounded, request.record_text)


def _answer_value(text: str) -> Any:
    """Parse the JSON object of a constrained completion, which follows the think block if there is one."""
    answer = text.rsplit(THINK_END, 1)[-1].strip()
    try:
        return json.loads(answer)
    except json.JSONDecodeError:
        return None


class GrammarLogitsProcessor(LogitsProcessor):
    """Mask each row's logits to the tokens its matcher allows.

    ``generate`` calls it once per step with all rows, including rows that already stopped. The first call
    sees only the prompt; later calls see the token chosen at the previous step in the last column. A row
    whose matcher is missing or fails may only stop; its error is kept in ``errors``.

    It also blocks the tokens that would make an array item an exact copy of an earlier item of the same array,
    unless the grammar leaves no other token (see ``AnswerScanner``).
    """

    def __init__(self, matchers: list[llguidance.LLMatcher | None], scanners: list[AnswerScanner], constraint: GrammarConstraint) -> None:
        self.matchers = matchers
        self.scanners = scanners
        self.executor = constraint.executor
        self.tokens = constraint.tokens
        self.think_end = constraint.think_end
        self.block_repeats = constraint.block_repeats
        self.stop_token_ids = set(constraint.stop_token_ids)
        self.first_stop = constraint.stop_token_ids[0]
        self.mask_words = (constraint.tokenizer.vocab_size + 31) // 32
        self.done = [False] * len(matchers)
        self.errors: list[str | None] = [None] * len(matchers)
        self.started = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.started:
            self._consume(input_ids[:, -1].tolist())
        self.started = True
        rows = [row for row in range(len(self.matchers)) if not self.done[row]]
        if not rows:
            return scores

        # mask only the rows still generating: once most rows of a batch have stopped, this costs little
        blocked = self._blocked(rows, scores.shape[-1])
        if self.block_repeats:
            self._block_repeats(rows, blocked)
        blocked = blocked.to(scores.device)
        everything = len(rows) == len(self.matchers)
        selected = scores if everything else scores[rows]
        selected.masked_fill_(blocked, float("-inf"))

        # NOTE: an earlier processor (no_repeat_ngram_size, for example) can ban every token the grammar allows.
        # Such a row then picks uniformly among the grammar's tokens instead of failing.
        stuck = selected.amax(dim=-1) == float("-inf")
        if bool(stuck.any()):
            selected[stuck] = torch.zeros_like(selected[stuck]).masked_fill_(blocked[stuck], float("-inf"))
        if not everything:
            scores[rows] = selected
        return scores

    def _consume(self, tokens: list[int]) -> None:
        for row, token in enumerate(tokens):
            matcher = self.matchers[row]
            if self.done[row]:
                continue
            if matcher is None or token in self.stop_token_ids:
                self.done[row] = True
            elif not matcher.consume_token(token):
                self._fail(row, matcher.get_error() or "token rejected")
            elif token == self.think_end:
                self.scanners[row].started = True
            else:
                self.scanners[row].feed(self.tokens.token_bytes[token])

    def _fail(self, row: int, error: str) -> None:
        # llguidance's message quotes the rejected token, which is model output: only DEBUG logs show it
        logger.warning("constrained decoding stopped row %d; its completion carries the error", row)
        logger.debug("row %d: %s", row, error)
        self.errors[row] = error
        self.matchers[row] = None

    def _blocked(self, rows: list[int], vocab_size: int) -> torch.Tensor:
        """Return a (len(rows), vocab) bool tensor of the tokens each row may not take next."""
        bitmask = np.zeros((len(rows), self.mask_words), dtype=np.int32)
        matching = [(self.matchers[row], index) for index, row in enumerate(rows) if self.matchers[row] is not None]
        if matching:
            llguidance.numpy.fill_next_token_bitmask_par(self.executor, matching, bitmask)

        words = bitmask.view(np.uint32)
        for index, row in enumerate(rows):
            matcher = self.matchers[row]
            if matcher is not None and (matcher.is_error() or not words[index].any()):
                self._fail(row, matcher.get_error() or "no token allowed")
            if self.matchers[row] is None:
                words[index] = 0
                words[index, self.first_stop // 32] = 1 << (self.first_stop % 32)

        bits = np.unpackbits(bitmask.view(np.uint8), axis=1, count=min(vocab_size, self.mask_words * 32), bitorder="little")
        blocked = torch.from_numpy(bits) == 0
        if vocab_size > bits.shape[1]:
            blocked = torch.nn.functional.pad(blocked, (0, vocab_size - bits.shape[1]), value=True)
        return blocked

    def _block_repeats(self, rows: list[int], blocked: torch.Tensor) -> None:
        for index, row in enumerate(rows):
            matcher = self.matchers[row]
            if matcher is None:
                continue
            for rest in self.scanners[row].copy_endings():
                copying = self._copying_tokens(matcher, rest, blocked[index])
                if copying is not None and not bool(blocked[index].index_fill(0, copying, True).all()):
                    blocked[index, copying] = True

    def _copying_tokens(self, matcher: llguidance.LLMatcher, rest: bytes, row_blocked: torch.Tensor) -> torch.Tensor | None:
        """Return the allowed tokens after which the item can only end as a copy of an earlier one: tokens
        that write all of ``rest``, and tokens that write a prefix of it when the grammar forces the remainder."""
        found = [t for t in self.tokens.starting_with(rest) if t < len(row_blocked)]
        for length in range(1, min(len(rest), self.tokens.max_length + 1)):
            token = self.tokens.by_bytes.get(rest[:length])
            if token is None or token >= len(row_blocked) or bool(row_blocked[token]) or not matcher.consume_token(token):
                continue
            forced = matcher.compute_ff_bytes()
            matcher.rollback(1)
            if forced.startswith(rest[length:]):
                found.append(token)
        return torch.tensor(found, dtype=torch.long) if found else None


@dataclass
class _ArrayFrame:
    item_start: int | None = None
    earlier: list[bytes] = field(default_factory=list)
    """The array's finished items that end in a quote, brace or bracket; only these cannot be a mere prefix
    of a longer item."""


class AnswerScanner:
    """Follow one row's JSON output byte by byte and report where an array item is about to copy an earlier one.

    Constrained output has a fixed layout (no whitespace outside strings), so array items start at the first
    byte after ``[`` or a ``,`` and end at the next ``,`` or ``]`` of the same array. Greedy decoding with a
    weak model tends to repeat items, alone or in a cycle, until ``maxItems``. Blocking exact copies of earlier
    items of the same array stops those loops and leaves distinct items free, much like ``uniqueItems``.
    Only items that end in a closing quote, brace or bracket are guarded, because a number or ``null`` item
    can continue past the copy.
    """

    def __init__(self, started: bool = True) -> None:
        self.started = started
        self.text = bytearray()
        self.stack: list[_ArrayFrame | None] = []
        self.in_string = False
        self.escaped = False

    def feed(self, data: bytes) -> None:
        if not self.started:
            return
        for byte in data:
            self._step(byte)

    def copy_endings(self) -> list[bytes]:
        """Return, for each earlier item that the current item of an open array so far is a proper prefix of,
        the bytes that would complete the copy."""
        endings = []
        for frame in self.stack:
            if frame is None or frame.item_start is None:
                continue
            current = bytes(self.text[frame.item_start :])
            for earlier in frame.earlier:
                if len(current) < len(earlier) and earlier.startswith(current) and earlier[len(current) :] not in endings:
                    endings.append(earlier[len(current) :])
        return endings

    def _step(self, byte: int) -> None:
        index = len(self.text)
        self.text.append(byte)
        if self.in_string:
            if self.escaped:
                self.escaped = False
            elif byte == ord("\\"):
                self.escaped = True
            elif byte == ord('"'):
                self.in_string = False
            return

        top = self.stack[-1] if self.stack else None
        if top is not None and top.item_start is None and byte not in b" ,]":
            top.item_start = index
        if byte == ord('"'):
            self.in_string = True
        elif byte in b"[{":
            self.stack.append(_ArrayFrame() if byte == ord("[") else None)
        elif byte in b"]}" and self.stack:
            self.stack.pop()
        elif byte == ord(",") and top is not None and top.item_start is not None:
            item = bytes(self.text[top.item_start : index])
            if item[-1:] in (b'"', b"}", b"]"):
                top.earlier.append(item)
            top.item_start = None
