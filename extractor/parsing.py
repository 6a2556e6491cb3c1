"""Pull one JSON object out of a raw completion, repairing what is safe to repair and rejecting the rest.

The steps, in order:

1. A ``truncated`` flag from the decoder rejects at once.
2. Everything up to the last ``</think>`` is dropped, so a draft JSON inside the thinking is never picked.
   Qwen3 may emit only the closing tag, which is handled the same way.
3. Loops are rejected: long whitespace runs and a chunk repeated many times in a row.
4. Candidate objects are found with a string-aware scanner: a ``{`` counts only when a quoted key and a colon
   (or ``}``) follow, so braces in prose such as ``见{附件}`` are skipped. The first candidate decides. Later
   complete objects are ignored and named in ``repairs`` (``repeated_object`` for an identical copy,
   ``extra_object_ignored`` otherwise).
5. The scanner repairs, outside string values only: Chinese quotes, full-width colons and commas, single
   quotes, Python ``None``/``True``/``False``, trailing commas, ``//``, ``#`` and ``/* */`` comments and
   raw control characters inside strings. An unclosed string or bracket is truncation and is rejected, because
   ``json_repair`` would silently close it.
6. The repaired text is parsed strictly. Only if that fails does ``json_repair`` get the text, and its
   result is rejected when a quoted string of the completion is missing from it.
7. Bare ``NaN``/``Infinity``, a key repeated with different values (unless the schema allows a list there),
   and output where every string field contains the same long text are rejected.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import json_repair

from .i18n import pick
from .normalize import items_spec, property_spec
from .schema import Schema, schema_types

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejection:
    """The reason a completion could not become JSON."""

    code: str
    """Stable machine-readable reason: ``truncated``, ``no_json``, ``not_object``, ``nan``, ``duplicate_key``,
    ``loop``, ``copied_text`` or ``invalid_json``."""
    message: str
    """Short explanation for the user, in the user's language."""
    feedback: str = ""
    """The same problem written for the model to act on in a re-ask (Chinese, to match the prompts)."""


@dataclass(frozen=True)
class ParseResult:
    value: Any = None
    rejection: Rejection | None = None
    repairs: list[str] = field(default_factory=list)
    """Names of the repairs applied, e.g. ``fence``, ``trailing_comma``."""

    @property
    def ok(self) -> bool:
        return self.rejection is None


class _Rejected(Exception):
    """Internal signal carrying a rejection out of nested helpers."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.code)
        self.rejection = rejection


# Thresholds for loop detection, chosen by estimate: a pretty-printed extraction indents by a dozen or so
# spaces and has no blank lines, while a looping model repeats for hundreds of characters.
MAX_WHITESPACE_RUN = 64
MAX_BLANK_LINES = 8
MIN_LOOP_COPIES = 8
MIN_LOOP_CHARS = 64
MAX_LOOP_PERIOD = 200
MAX_SAME_KEY_VALUE = 3
"""A key written this many times with the same value in one object is a loop, not a duplicate."""
MIN_COPIED_TEXT_CHARS = 20
MIN_COPIED_FIELDS = 3

_WHITESPACE_RUN = re.compile(r"\s{%d,}" % MAX_WHITESPACE_RUN)
_BLANK_LINES = re.compile(r"(?:\n[^\S\n]*){%d,}" % MAX_BLANK_LINES)
_REPEATED_CHUNK = re.compile(r"(.{2,%d}?)\1{%d,}" % (MAX_LOOP_PERIOD, MIN_LOOP_COPIES - 1), re.DOTALL)
_FENCE = re.compile(r"```[^\n`]*\n?")

_CLOSING_QUOTE = {'"': '"', "'": "'", "“": "”", "”": "”", "‘": "’", "’": "’", "「": "」", "『": "』"}
_FULLWIDTH_PUNCTUATION = {"：": ":", "，": ","}
_PYTHON_LITERALS = {"None": "null", "True": "true", "False": "false"}
_NON_FINITE_WORDS = {"nan", "+nan", "-nan", "infinity", "+infinity", "-infinity", "inf", "+inf", "-inf"}
_WORD_STOP = set("{}[]:,") | set(_CLOSING_QUOTE) | set(_FULLWIDTH_PUNCTUATION)
_SIMPLE_ESCAPES = set('"\\/bfnrt')


# --- scanning ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str
    """``punct`` (one of ``{}[]:,``), ``string`` or ``word`` (numbers, literals, anything unquoted)."""
    text: str
    """The punctuation mark, the word, or the decoded string value."""


_OPEN_OBJECT = _Token("punct", "{")
_CLOSE_OBJECT = _Token("punct", "}")
_OPEN_ARRAY = _Token("punct", "[")
_CLOSE_ARRAY = _Token("punct", "]")
_COLON = _Token("punct", ":")
_COMMA = _Token("punct", ",")


@dataclass
class _Scan:
    """The tokens of one bracketed value, and how the scan ended."""

    tokens: list[_Token] = field(default_factory=list)
    end: int | None = None
    """Index just past the closing bracket, or None when the text ended first."""
    cut_inside: str = ""
    """The construct an incomplete scan stopped in: ``string``, ``object``, ``array`` or ``comment``."""
    open_brackets: int = 0
    repairs: list[str] = field(default_factory=list)

    def note(self, repair: str) -> None:
        if repair not in self.repairs:
            self.repairs.append(repair)


class _Scanner:
    """Tokenise one bracketed value starting at ``start``, tracking strings, so brackets in strings don't count."""

    def __init__(self, text: str, start: int) -> None:
        self.text = text
        self.pos = start
        self.stack: list[str] = []
        self.scan = _Scan()

    def tokens(self) -> Iterator[_Token]:
        """Yield tokens until the first bracket closes or the text ends; the outcome lands in ``self.scan``."""
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char.isspace():
                self.pos += 1
            elif char in "{[":
                yield self._open(char)
            elif char in "}]":
                yield from self._close(char)
                if not self.stack:
                    self.scan.end = self.pos
                    return
            elif char in ":,":
                self.pos += 1
                yield _Token("punct", char)
            elif char in _FULLWIDTH_PUNCTUATION:
                self.pos += 1
                self.scan.note("fullwidth_punctuation")
                yield _Token("punct", _FULLWIDTH_PUNCTUATION[char])
            elif char in _CLOSING_QUOTE:
                token = self._string(char)
                if token is None:
                    return
                yield token
            elif char == "#" or text.startswith("//", self.pos) or text.startswith("/*", self.pos):
                if not self._comment():
                    return
            else:
                yield self._word()
        self._mark_cut(self.stack[-1] if self.stack else "{")

    def _mark_cut(self, bracket: str) -> None:
        self.scan.cut_inside = self.scan.cut_inside or ("object" if bracket == "{" else "array")
        self.scan.open_brackets = len(self.stack)

    def _open(self, char: str) -> _Token:
        self.stack.append(char)
        self.pos += 1
        return _Token("punct", char)

    def _close(self, char: str) -> Iterator[_Token]:
        opener = "{" if char == "}" else "["
        self.pos += 1
        if opener not in self.stack:
            self.scan.note("stray_bracket")
            return
        while self.stack[-1] != opener:
            # A bracket closed out of order: close the inner ones first, as the writer evidently meant.
            self.scan.note("bracket_mismatch")
            yield _Token("punct", "}" if self.stack.pop() == "{" else "]")
        self.stack.pop()
        yield _Token("punct", char)

    def _comment(self) -> bool:
        text = self.text
        self.scan.note("comment")
        if not text.startswith("/*", self.pos):
            newline = text.find("\n", self.pos)
            self.pos = len(text) if newline < 0 else newline + 1
            return True
        close = text.find("*/", self.pos + 2)
        if close < 0:
            self.scan.cut_inside = "comment"
            self.scan.open_brackets = len(self.stack)
            return False
        self.pos = close + 2
        return True

    def _word(self) -> _Token:
        text = self.text
        start = self.pos
        while self.pos < len(text):
            char = text[self.pos]
            if char.isspace() or char in _WORD_STOP or text.startswith("//", self.pos) or text.startswith("/*", self.pos):
                break
            self.pos += 1
        return _Token("word", text[start:self.pos])

    def _string(self, opener: str) -> _Token | None:
        """Read a quoted string into its value, or return None when the text ends inside it."""
        if opener in "'’":
            self.scan.note("single_quotes")
        elif opener != '"':
            self.scan.note("chinese_quotes")
        closer = _CLOSING_QUOTE[opener]
        text = self.text
        pieces: list[str] = []
        position = self.pos + 1
        while position < len(text):
            char = text[position]
            if char == closer:
                self.pos = position + 1
                return _Token("string", self._decode("".join(pieces)))
            if char == "\\":
                if position + 1 >= len(text):
                    break
                pieces.append(self._escape(text[position + 1], text, position))
                position += 2
                continue
            pieces.append(self._plain(char))
            position += 1
        self.pos = len(text)
        self.scan.cut_inside = "string"
        self.scan.open_brackets = len(self.stack)
        return None

    def _plain(self, char: str) -> str:
        """Return one string character as JSON string content."""
        if char == '"':
            return '\\"'
        if ord(char) < 0x20:
            self.scan.note("control_char_in_string")
            return json.dumps(char)[1:-1]
        return char

    def _escape(self, char: str, text: str, position: int) -> str:
        """Return a backslash escape as valid JSON string content."""
        if char in _SIMPLE_ESCAPES:
            return "\\" + char
        if char == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[position + 2:position + 6]):
            return "\\u"
        if char in _CLOSING_QUOTE:
            return self._plain(char)
        self.scan.note("invalid_escape")
        return "\\\\" + self._plain(char)

    def _decode(self, content: str) -> str:
        value: str = json.loads(f'"{content}"')
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.scan.note("invalid_escape")
            value = value.encode("utf-8", "replace").decode("utf-8")
        return value


# --- finding the object -----------------------------------------------------------------------------------


@dataclass
class _Candidate:
    start: int
    scan: _Scan


def _scan_candidate(text: str, start: int) -> _Scan | None:
    """Scan the object starting at ``start``, or return None when it does not look like a JSON object."""
    scanner = _Scanner(text, start)
    tokens = scanner.tokens()
    head: list[_Token] = []
    for token in tokens:
        head.append(token)
        if len(head) == 3:
            break
    if not _looks_like_object(head):
        return None
    scanner.scan.tokens = head
    scanner.scan.tokens.extend(tokens)
    return scanner.scan


def _looks_like_object(head: list[_Token]) -> bool:
    """True when the tokens start ``{"key":`` or ``{}``, or the text ends before it can tell."""
    if len(head) >= 2 and head[1] == _CLOSE_OBJECT:
        return True
    if len(head) >= 2 and head[1].kind != "string":
        return False
    # Fewer than three tokens means the text ended, e.g. right after ``{"姓``: a cut-off object.
    return len(head) < 3 or head[2] == _COLON


def _find_candidates(text: str) -> list[_Candidate]:
    """Return the top-level objects in ``text`` in order; the last one may be incomplete."""
    candidates: list[_Candidate] = []
    position = 0
    while (start := text.find("{", position)) >= 0:
        scan = _scan_candidate(text, start)
        if scan is None:
            position = start + 1
            continue
        candidates.append(_Candidate(start, scan))
        if scan.end is None:
            break
        position = scan.end
    return candidates


# --- parse_completion -------------------------------------------------------------------------------------


def parse_completion(text: str, schema: Schema | None = None, truncated: bool = False) -> ParseResult:
    """Return the top-level JSON object in ``text``, or a rejection saying why there is none.

    ``schema`` only decides whether a key repeated with different values may be merged into a list.
    """
    repairs: list[str] = []
    try:
        if truncated:
            raise _Rejected(_truncated(pick("生成在 token 上限处被截断。", "The completion was cut off at the token limit.")))
        body = _strip_thinking(text, repairs)
        _check_loops(body)
        value = _parse_body(body, schema.data if schema else None, repairs)
        _check_finite(value)
        _check_copied_text(value)
    except _Rejected as signal:
        return ParseResult(rejection=signal.rejection, repairs=repairs)
    return ParseResult(value=value, repairs=repairs)


def _strip_thinking(text: str, repairs: list[str]) -> str:
    """Drop everything up to the last ``</think>``; an unclosed ``<think>`` means the model wrote no output after it."""
    # NOTE: a string value that itself contains "</think>" is cut there too, which breaks that completion.
    # Exit: find the tag with the string-aware scanner if a record ever quotes it.
    closing = text.rfind("</think>")
    if closing >= 0:
        repairs.append("think_block")
        return text[closing + len("</think>"):]
    if "<think>" in text:
        raise _Rejected(_truncated(pick(
            "生成在 <think> 思考块内结束，没有给出答案。",
            "The completion ended inside a <think> block, before any answer.",
        )))
    return text


def _parse_body(body: str, schema: dict[str, Any] | None, repairs: list[str]) -> Any:
    if "```" in body:
        repairs.append("fence")
    _reject_array(body)
    candidates = _find_candidates(body)
    if not candidates:
        _reject_non_object(body)
    if _has_prose(body, candidates):
        repairs.append("prose")

    for candidate in candidates:
        _check_repeated_keys(candidate.scan.tokens)
    last = candidates[-1].scan
    if last.end is None:
        # Also when an earlier object is complete: a cut-off copy after it means the output did not end cleanly.
        raise _Rejected(_cut_rejection(last))
    first = candidates[0].scan
    _check_non_finite_words(first.tokens)
    value = _parse_tokens(first, schema, repairs)

    for candidate in candidates[1:]:
        _note(repairs, "repeated_object" if _same_value(candidate.scan, value) else "extra_object_ignored")
    return value


def _has_prose(body: str, candidates: list[_Candidate]) -> bool:
    """True when text other than fences and whitespace surrounds the objects."""
    outside = body[: candidates[0].start]
    for candidate, following in zip(candidates, [*candidates[1:], None]):
        outside += body[candidate.scan.end or len(body): following.start if following else len(body)]
    return bool(_FENCE.sub("", outside).strip())


def _reject_array(body: str) -> None:
    """Reject a completion whose JSON is an array, even an array of objects, because the top level must be one object."""
    inner = _FENCE.sub("", body).strip()
    if not inner.startswith("["):
        return
    scanner = _Scanner(inner, 0)
    tokens = list(scanner.tokens())
    if scanner.scan.end is None:
        second = tokens[1] if len(tokens) > 1 else None
        if scanner.scan.cut_inside == "string" or second in (_OPEN_OBJECT, _OPEN_ARRAY) or (second and second.kind == "string"):
            raise _Rejected(_cut_rejection(scanner.scan))
        return
    try:
        json.loads(_canonical(tokens, []))
    except ValueError:
        return
    raise _Rejected(_not_object_rejection(pick("数组", "array")))


def _reject_non_object(body: str) -> None:
    """Raise ``not_object`` for a bare scalar, else ``no_json``."""
    try:
        json.loads(_FENCE.sub("", body).strip())
    except ValueError:
        raise _Rejected(Rejection(
            "no_json",
            pick("输出中没有 JSON 对象。", "The completion contains no JSON object."),
            "没有找到 JSON 对象。只输出一个 JSON 对象，不要输出其他文字。",
        )) from None
    raise _Rejected(_not_object_rejection(pick("单个值", "single value")))


def _not_object_rejection(kind: str) -> Rejection:
    return Rejection(
        "not_object",
        pick("输出是一个 JSON {kind}，不是对象。", "The completion is a JSON {kind}, not an object.", kind=kind),
        "输出必须是一个 JSON 对象（以 { 开头、以 } 结尾），不能是数组或单个值。",
    )


def _same_value(scan: _Scan, value: Any) -> bool:
    try:
        other = _resolve(json.loads(_canonical(scan.tokens, []), object_pairs_hook=_Pairs), None, "$", [])
    except (ValueError, _Rejected):
        return False
    return _canonical_dump(other) == _canonical_dump(value)


def _canonical_dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# --- turning tokens into a value --------------------------------------------------------------------------


class _Pairs(list):  # type: ignore[type-arg]
    """An object's key/value pairs in order, duplicates kept, until ``_resolve`` decides what to do with them."""


def _parse_tokens(scan: _Scan, schema: dict[str, Any] | None, repairs: list[str]) -> Any:
    repairs.extend(r for r in scan.repairs if r not in repairs)
    text = _canonical(scan.tokens, repairs)
    try:
        parsed = json.loads(text, object_pairs_hook=_Pairs)
    except ValueError:
        return _parse_with_json_repair(scan, text, repairs)
    return _resolve(parsed, schema, "$", repairs)


def _parse_with_json_repair(scan: _Scan, text: str, repairs: list[str]) -> Any:
    """Hand text that strict parsing refused to ``json_repair``, after checking the duplicates it would hide."""
    # json_repair keeps the last of repeated keys without saying so, so they are checked on the tokens first.
    for key, identical in _duplicate_keys(scan.tokens):
        if not identical:
            raise _Rejected(_duplicate_rejection(key))
    try:
        value = json_repair.loads(text)
    except Exception as exc:  # noqa: BLE001 - json_repair documents no exception types
        logger.debug("json_repair failed: %s", exc)
        value = None
    if not isinstance(value, dict) or _lost_strings(scan.tokens, value):
        raise _Rejected(Rejection(
            "invalid_json",
            pick("JSON 无法修复。", "The JSON could not be repaired."),
            "输出的 JSON 语法错误，无法解析。请输出一个语法正确的 JSON 对象。",
        ))
    repairs.append("json_repair")
    return value


def _lost_strings(tokens: list[_Token], value: Any) -> bool:
    """True when a quoted string of the completion is missing from the repaired value, i.e. json_repair dropped it.

    A string only has to occur inside some key or string value, because a repair may join strings, for
    example around unescaped quotes.
    """
    kept = list(_string_leaves(value)) + list(_keys(value))
    return any(not any(token.text in text for text in kept) for token in tokens if token.kind == "string")


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield key
            yield from _keys(child)
    elif isinstance(value, list):
        for child in value:
            yield from _keys(child)


def _canonical(tokens: list[_Token], repairs: list[str]) -> str:
    """Write tokens back as JSON text, dropping stray commas and translating Python literals."""
    parts: list[str] = []
    for index, token in enumerate(tokens):
        if token.kind == "string":
            parts.append(json.dumps(token.text, ensure_ascii=False))
        elif token.kind == "word":
            literal = _PYTHON_LITERALS.get(token.text)
            if literal is not None:
                _note(repairs, "python_literal")
            parts.append(literal or token.text)
        elif token == _COMMA:
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            previous = tokens[index - 1] if index else None
            if following in (_CLOSE_OBJECT, _CLOSE_ARRAY):
                _note(repairs, "trailing_comma")
            elif previous in (_OPEN_OBJECT, _OPEN_ARRAY, _COMMA):
                _note(repairs, "extra_comma")
            else:
                parts.append(", ")
        else:
            parts.append(": " if token == _COLON else token.text)
    return "".join(parts)


def _note(repairs: list[str], repair: str) -> None:
    if repair not in repairs:
        repairs.append(repair)


def _resolve(node: Any, schema: dict[str, Any] | None, path: str, repairs: list[str]) -> Any:
    """Turn ``_Pairs`` into dicts, collapsing identical duplicate keys and merging where a list is allowed."""
    if isinstance(node, _Pairs):
        grouped: dict[str, list[Any]] = {}
        for key, value in node:
            grouped.setdefault(key, []).append(value)
        return {key: _resolve_key(key, values, schema, path, repairs) for key, values in grouped.items()}
    if isinstance(node, list):
        items = items_spec(schema)
        return [_resolve(item, items, f"{path}[{i}]", repairs) for i, item in enumerate(node)]
    return node


def _resolve_key(key: str, values: list[Any], schema: dict[str, Any] | None, path: str, repairs: list[str]) -> Any:
    spec = property_spec(schema, key)
    resolved = [_resolve(v, spec, f"{path}.{key}", repairs) for v in values]
    if len(resolved) == 1:
        return resolved[0]
    if all(_canonical_dump(v) == _canonical_dump(resolved[0]) for v in resolved):
        _note(repairs, "duplicate_key_collapsed")
        return resolved[0]
    if spec is not None and "array" in schema_types(spec):
        _note(repairs, "duplicate_key_merged")
        merged: list[Any] = []
        for value in resolved:
            for item in value if isinstance(value, list) else [value]:
                if item not in merged:
                    merged.append(item)
        return merged
    raise _Rejected(_duplicate_rejection(f"{path}.{key}"[2:]))


# --- rejections -------------------------------------------------------------------------------------------


def _truncated(message: str) -> Rejection:
    return Rejection(
        "truncated",
        message,
        "上次输出不完整（被截断）。请输出完整的 JSON 对象：长文本字段只写要点，病历未提及的字段填 null。",
    )


def _cut_rejection(scan: _Scan) -> Rejection:
    place = {
        "string": pick("字符串内", "inside a string"),
        "array": pick("数组内", "inside an array"),
        "comment": pick("注释内", "inside a comment"),
    }.get(scan.cut_inside, pick("对象内", "inside an object"))
    return _truncated(pick(
        "JSON 不完整：输出在{place}结束（还有 {count} 层括号未闭合）。",
        "Incomplete JSON: the completion ends {place} ({count} bracket(s) left open).",
        place=place, count=max(scan.open_brackets, 1),
    ))


def _duplicate_rejection(key: str) -> Rejection:
    return Rejection(
        "duplicate_key",
        pick("字段「{key}」出现多次且取值不同。", 'Field "{key}" appears more than once with different values.', key=key),
        f"字段「{key}」出现了多次且取值不同。每个字段只能出现一次；有多项内容时按 schema 写成一个值或一个列表。",
    )


def _loop_rejection(detail: str) -> Rejection:
    return Rejection(
        "loop",
        pick("输出陷入重复：{detail}。", "The completion repeats itself: {detail}.", detail=detail),
        "上次输出陷入了重复循环。每个字段只写一次，写完完整的 JSON 对象后立即停止。",
    )


# --- checks -----------------------------------------------------------------------------------------------


def _check_loops(body: str) -> None:
    """Reject long whitespace runs and a chunk repeated many times in a row."""
    if match := _WHITESPACE_RUN.search(body):
        raise _Rejected(_loop_rejection(pick(
            "连续 {count} 个空白字符", "a run of {count} whitespace characters", count=len(match.group(0)),
        )))
    if match := _BLANK_LINES.search(body):
        raise _Rejected(_loop_rejection(pick(
            "连续 {count} 个换行", "{count} line breaks in a row", count=match.group(0).count("\n"),
        )))
    for match in _REPEATED_CHUNK.finditer(body):
        if len(match.group(0)) >= MIN_LOOP_CHARS:
            chunk = match.group(1)
            raise _Rejected(_loop_rejection(pick(
                "“{chunk}”连续重复 {count} 次", '"{chunk}" repeated {count} times in a row',
                chunk=_preview(chunk.strip(), 24), count=len(match.group(0)) // len(chunk),
            )))


def _check_repeated_keys(tokens: list[_Token]) -> None:
    """Reject a key written ``MAX_SAME_KEY_VALUE`` times with the same value in one object, even when cut off."""
    for key, values in _object_members(tokens):
        counts: dict[str, int] = {}
        for value in values:
            counts[value] = counts.get(value, 0) + 1
        if max(counts.values()) >= MAX_SAME_KEY_VALUE:
            raise _Rejected(_loop_rejection(pick(
                "字段「{key}」被重复写了 {count} 次", 'field "{key}" written {count} times',
                key=key, count=len(values),
            )))


def _duplicate_keys(tokens: list[_Token]) -> Iterator[tuple[str, bool]]:
    """Yield each key repeated within one object, and whether all its values are written identically."""
    for key, values in _object_members(tokens):
        if len(values) > 1:
            yield key, len(set(values)) == 1


@dataclass
class _Frame:
    """An open object or array while walking tokens; objects collect their members' written values."""

    is_object: bool
    key: str | None = None
    value_start: int = 0
    members: dict[str, list[str]] = field(default_factory=dict)

    def finish_member(self, tokens: list[_Token], end: int) -> None:
        if self.key is None:
            return
        written = json.dumps([(t.kind, t.text) for t in tokens[self.value_start:end]], ensure_ascii=False)
        self.members.setdefault(self.key, []).append(written)
        self.key = None


def _object_members(tokens: list[_Token]) -> Iterator[tuple[str, list[str]]]:
    """Yield, for every object in the token stream, each key with the written form of each of its values.

    Works on a cut-off token stream too: a value cut off by the end of the text counts as far as it goes.
    """
    frames: list[_Frame] = []
    for index, token in enumerate(tokens):
        top = frames[-1] if frames else None
        if token in (_OPEN_OBJECT, _OPEN_ARRAY):
            frames.append(_Frame(is_object=token == _OPEN_OBJECT))
        elif token in (_CLOSE_OBJECT, _CLOSE_ARRAY) and top is not None:
            frames.pop()
            top.finish_member(tokens, index)
            yield from top.members.items()
        elif token == _COMMA and top is not None:
            top.finish_member(tokens, index)
        elif token.kind == "string" and top is not None and top.is_object:
            if index + 1 < len(tokens) and tokens[index + 1] == _COLON:
                # A key also ends the member before it, so a missing comma does not hide a duplicate.
                top.finish_member(tokens, index)
                top.key, top.value_start = token.text, index + 2
    for frame in reversed(frames):
        frame.finish_member(tokens, len(tokens))
        yield from frame.members.items()


def _check_non_finite_words(tokens: list[_Token]) -> None:
    for token in tokens:
        if token.kind == "word" and token.text.lower() in _NON_FINITE_WORDS:
            raise _Rejected(_nan_rejection(token.text))


def _check_finite(value: Any) -> None:
    """Reject NaN and infinities that reach the value, e.g. from an overflowing number such as ``1e999``."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _Rejected(_nan_rejection(repr(value)))
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for child in value:
            _check_finite(child)


def _nan_rejection(word: str) -> Rejection:
    return Rejection(
        "nan",
        pick("输出含有 {word}，这不是合法的 JSON 数值。", "The completion contains {word}, which is not a valid JSON number.", word=word),
        "JSON 中不能出现 NaN 或 Infinity。病历未提及的数值填 null，否则填一个普通数字。",
    )


def _check_copied_text(value: Any) -> None:
    """Reject output whose string fields all contain the same long text, a sign the model copied the record."""
    strings = [s for s in _string_leaves(value) if s.strip()]
    if len(strings) < MIN_COPIED_FIELDS or len(set(strings)) != 1 or len(strings[0]) < MIN_COPIED_TEXT_CHARS:
        return
    raise _Rejected(Rejection(
        "copied_text",
        pick(
            "{count} 个字段都填了同一段文字（“{preview}”），没有分别抽取。",
            'All {count} text fields hold the same text ("{preview}") instead of separate extractions.',
            count=len(strings), preview=_preview(strings[0], 24),
        ),
        "上次输出的每个字段都填了同一段文字。请为每个字段分别抽取对应的内容，病历未提及的字段填 null。",
    ))


def _string_leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for child in value.values():
            yield from _string_leaves(child)
    elif isinstance(value, list):
        for child in value:
            yield from _string_leaves(child)


def _preview(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
