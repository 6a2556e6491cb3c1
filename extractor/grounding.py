"""Grounding: find where each extracted value occurs in the record text.

Every string and number in an extraction is searched in the record after folding both sides the same way:
NFKC (full-width to half-width), whitespace and line breaks removed, Chinese punctuation mapped to its ASCII
counterpart, and case folded. Matches in the folded text are mapped back to ``[start, end)`` character
offsets in the original text, so that a value "左下肢 疼痛" finds "左下肢\\n疼痛" and "左下肢疼痛" alike.

Each value gets one ``Evidence``: ``found`` (exactly one occurrence), ``ambiguous`` (more than one
occurrence, all of them kept) or ``not_found`` (no occurrence, so the model may have made the value up).

Usage::

    spans = ground_row(row, record.text)   # {"$.姓名": {"value": ..., "spans": [[5, 8]], "status": "found", ...}}
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

logger = logging.getLogger(__name__)

FOUND = "found"
AMBIGUOUS = "ambiguous"
NOT_FOUND = "not_found"

# Punctuation that NFKC leaves alone but that Chinese and ASCII text write differently.
_PUNCTUATION = {
    "、": ",",
    "。": ".",
    "【": "[",
    "】": "]",
    "〔": "[",
    "〕": "]",
    "〖": "[",
    "〗": "]",
    "「": '"',
    "」": '"',
    "『": '"',
    "』": '"',
    "“": '"',
    "”": '"',
    "„": '"',
    "〝": '"',
    "〞": '"',
    "‘": "'",
    "’": "'",
    "《": "<",
    "》": ">",
    "〈": "<",
    "〉": ">",
    "—": "-",
    "–": "-",
    "‐": "-",
    "‑": "-",
    "―": "-",
    "〜": "~",
}


@lru_cache(maxsize=4096)
def fold_char(char: str) -> str:
    """Fold one character for matching: NFKC, punctuation mapped to ASCII, case folded, blanks dropped.

    Returns "" for whitespace and invisible format characters (zero-width space, BOM), and may return
    several characters (NFKC turns "㎎" into "mg").
    """
    folded = []
    for part in unicodedata.normalize("NFKC", char):
        if part.isspace() or unicodedata.category(part) == "Cf":
            continue
        folded.append(_PUNCTUATION.get(part, part).casefold())
    return "".join(folded)


def fold_text(text: str) -> str:
    """Fold a whole text character by character, as ``fold_char`` does."""
    return "".join(fold_char(char) for char in text)


def fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """Fold ``text`` and return, for each folded character, the index of the original character it came from."""
    folded: list[str] = []
    origins: list[int] = []
    for index, char in enumerate(text):
        piece = fold_char(char)
        folded.append(piece)
        origins.extend([index] * len(piece))
    return "".join(folded), origins


@dataclass(frozen=True)
class Evidence:
    """The occurrences of one extracted value in the record text."""

    path: str
    """JSON path of the value, e.g. ``$.用药[0].药名``, as in validation errors."""
    value: Any
    spans: tuple[tuple[int, int], ...]
    """Character offsets ``[start, end)`` in the original record text, in text order."""
    status: str
    """``found``, ``ambiguous`` or ``not_found``."""
    source: str = "search"
    """``search`` when this module found the spans, ``decoding`` when constrained decoding reported them."""
    query: str = ""
    """The text searched for: the value itself, or the model's original text before normalisation."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "value": self.value,
            "spans": [list(span) for span in self.spans],
            "status": self.status,
            "source": self.source,
        }
        if self.query and self.query != str(self.value):
            data["query"] = self.query
        return data


class TextIndex:
    """A record text folded once, searched for many values."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.folded, self.origins = fold_with_offsets(text)

    def find(self, query: str) -> list[tuple[int, int]]:
        """Return the original-text spans of every non-overlapping occurrence of ``query`` after folding.

        A query that starts (ends) with a digit only matches where the text has no digit right before
        (after) it, so that "8" does not match inside "38.8" or "2019".
        """
        needle = fold_text(query)
        if not needle:
            return []
        spans = []
        position = self.folded.find(needle)
        while position >= 0:
            end = position + len(needle)
            span = (self.origins[position], self.origins[end - 1] + 1)
            if self._on_number_boundary(needle, *span):
                spans.append(span)
                position = self.folded.find(needle, end)
            else:
                position = self.folded.find(needle, position + 1)
        return spans

    def _on_number_boundary(self, needle: str, start: int, end: int) -> bool:
        # The neighbours come from the original text, so a blank still separates "2019.01.01 10:40".
        before = unicodedata.normalize("NFKC", self.text[max(0, start - 2) : start])
        after = unicodedata.normalize("NFKC", self.text[end : end + 2])
        if needle[0].isdigit() and re.search(r"(\d|\d\.)$", before):
            return False
        if needle[-1].isdigit() and re.match(r"(\d|\.\d)", after):
            return False
        return True


def number_queries(value: int | float) -> list[str]:
    """Spell a number the ways a record may write it: 38.5 → "38.5"; 38.0 → "38.0", "38"."""
    if isinstance(value, float) and value.is_integer():
        return [repr(value), str(int(value))]
    return [repr(value) if isinstance(value, float) else str(value)]


def iter_values(value: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    """Yield ``(json path, value)`` for every string and number inside nested objects and lists.

    Booleans and nulls are skipped: they have no text to point at.
    """
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield from iter_values(child, f"{path}.{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from iter_values(child, f"{path}[{index}]")
    elif isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        yield path, value


def canonical_path(path: str) -> str:
    """Write a path as a JSON path starting with ``$``, so ``年龄`` and ``$.年龄`` name the same field."""
    if path == "$" or path.startswith(("$.", "$[")):
        return path
    return f"$.{path}" if not path.startswith("[") else f"${path}"


def ground_value(index: TextIndex, path: str, value: Any, original: Any = None) -> Evidence:
    """Search one value, trying the model's original text first when normalisation rewrote it."""
    queries: list[str] = []
    if isinstance(original, str) and original.strip():
        queries.append(original)
    elif isinstance(original, (int, float)) and not isinstance(original, bool):
        queries.extend(number_queries(original))
    if isinstance(value, str):
        queries.append(value)
    else:
        queries.extend(number_queries(value))

    for query in queries:
        spans = index.find(query)
        if spans:
            status = FOUND if len(spans) == 1 else AMBIGUOUS
            return Evidence(path=path, value=value, spans=tuple(spans), status=status, query=query)
    return Evidence(path=path, value=value, spans=(), status=NOT_FOUND, query=queries[0] if queries else "")


def ground(fields: Any, text: str, changes: Iterable[Mapping[str, Any]] = ()) -> list[Evidence]:
    """Ground every string and number in ``fields`` against the record ``text``.

    ``changes`` are the normaliser's rewrites (``path``, ``original``, ``normalized``). A rewritten value is
    searched by the text the model wrote ("45岁") before its normalised form (45).
    """
    originals = {canonical_path(str(c.get("path", ""))): c.get("original") for c in changes if isinstance(c, Mapping)}
    index = TextIndex(text)
    return [ground_value(index, path, value, originals.get(path)) for path, value in iter_values(fields)]


def spans_from_decoding(entry: Any) -> tuple[tuple[int, int], ...] | None:
    """Read offsets that constrained decoding stored for a path, or None when the entry has no usable offsets.

    Accepted shapes: ``[start, end]``, ``[[start, end], ...]``, ``{"start": s, "end": e}`` and
    ``{"spans": [[start, end], ...]}``.
    """
    if isinstance(entry, Mapping):
        if "spans" in entry:
            return spans_from_decoding(entry["spans"])
        entry = [entry.get("start"), entry.get("end")]
    if _is_span(entry):
        return ((int(entry[0]), int(entry[1])),)
    if isinstance(entry, list) and entry and all(_is_span(item) for item in entry):
        return tuple((int(item[0]), int(item[1])) for item in entry)
    return None


def _is_span(item: Any) -> bool:
    return (
        isinstance(item, (list, tuple))
        and len(item) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) for x in item)
        and 0 <= item[0] < item[1]
    )


def ground_row(row: Mapping[str, Any], record_text: str) -> dict[str, dict[str, Any]]:
    """Return the evidence for a result row as ``{json path: Evidence.to_dict()}``, ready for ``ResultRow.spans``.

    Offsets already in ``row["spans"]`` (from constrained decoding, or from an earlier call) are kept as they
    are, with their ``source``. Every other value is searched in ``record_text``.
    """
    stored: dict[str, tuple[tuple[tuple[int, int], ...], str]] = {}
    existing = row.get("spans")
    for path, entry in (existing.items() if isinstance(existing, Mapping) else ()):
        spans = spans_from_decoding(entry)
        if spans is None:
            logger.debug("ignoring stored spans for %s: no [start, end] offsets", path)
            continue
        source = entry.get("source", "decoding") if isinstance(entry, Mapping) else "decoding"
        stored[canonical_path(path)] = (spans, str(source))

    evidence = {}
    for item in ground(row.get("fields"), record_text, row.get("changes") or ()):
        if item.path in stored:
            spans, source = stored[item.path]
            status = FOUND if len(spans) == 1 else AMBIGUOUS
            item = Evidence(path=item.path, value=item.value, spans=spans, status=status, source=source, query=item.query)
        evidence[item.path] = item.to_dict()
    return evidence
