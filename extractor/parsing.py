"""Pull one JSON value out of a raw completion, or reject it with a reason."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .schema import Schema


@dataclass(frozen=True)
class Rejection:
    """Why a completion could not become JSON."""

    code: str
    """Stable machine-readable reason, e.g. ``truncated``, ``no_json``, ``nan``."""
    message: str


@dataclass(frozen=True)
class ParseResult:
    value: Any = None
    rejection: Rejection | None = None
    repairs: list[str] = field(default_factory=list)
    """Names of the repairs applied, e.g. ``fence``, ``trailing_comma``."""

    @property
    def ok(self) -> bool:
        return self.rejection is None


def parse_completion(text: str, schema: Schema | None = None, truncated: bool = False) -> ParseResult:
    """Return the top-level JSON object in ``text``, or a rejection."""
    if truncated:
        return ParseResult(rejection=Rejection("truncated", "the completion was cut off at the token limit"))
    start = text.find("{")
    if start < 0:
        return ParseResult(rejection=Rejection("no_json", "no JSON object found in the completion"))
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        return ParseResult(rejection=Rejection("invalid_json", f"invalid JSON: {exc.msg}"))
    return ParseResult(value=value)
