"""Result rows: one per input record, written as JSONL."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from .records import Record

NEGATIVE_PREFIXES = ("否认", "无", "未见", "未发现", "未诉", "未闻及", "阴性", "没有", "不详")


@dataclass
class Attempt:
    """One round trip to the model for a record."""

    completion: str
    prompt_tokens: int
    completion_tokens: int
    truncated: bool
    seconds: float
    errors: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ResultRow:
    """The output for one input record, valid or not."""

    id: str
    source: str
    record_sha256: str
    fields: Any
    valid: bool
    errors: list[dict[str, str]]
    completion: str | None
    attempts: list[Attempt] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    field_status: dict[str, str] = field(default_factory=dict)
    spans: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    stamp: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.valid:
            return "valid"
        return "failed" if self.fields is None else "invalid"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status
        data["n_attempts"] = len(self.attempts)
        return data

    @classmethod
    def for_unreadable(cls, record: Record, stamp: dict[str, Any]) -> "ResultRow":
        """Row for a record that could not be read, so no input record is lost."""
        return cls(
            id=record.id,
            source=record.source,
            record_sha256=record.sha256,
            fields=None,
            valid=False,
            errors=[{"path": "$", "message": record.error or "", "keyword": "input"}],
            completion=None,
            stamp=stamp,
        )


def classify_field(value: Any, failed: bool) -> str:
    """Name the state of one top-level field.

    ``failed``: extraction failed (no parse, or the field did not validate). ``not_mentioned``: null, the
    record does not mention it. ``negative``: the record explicitly denies it (``false``, ``[]`` or a text
    starting with a negation such as 否认). ``present``: anything else.
    """
    if failed:
        return "failed"
    if value is None:
        return "not_mentioned"
    if value is False or value == []:
        return "negative"
    if isinstance(value, str) and value.strip().startswith(NEGATIVE_PREFIXES):
        return "negative"
    return "present"


class RowWriter:
    """Write result rows as JSONL, flushing after each row so that a killed run keeps what it finished."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, row: ResultRow) -> None:
        self.stream.write(json.dumps(row.to_dict(), ensure_ascii=False) + "\n")
        self.stream.flush()


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read a results JSONL file written by ``RowWriter``."""
    rows = []
    with open(path, encoding="utf-8-sig") as stream:
        for line in stream:
            if line.strip():
                rows.append(json.loads(line))
    return rows
