"""Schema-driven normalisation of extracted values before validation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .schema import Schema


@dataclass(frozen=True)
class Change:
    """One value rewritten by the normaliser, kept so that a reviewer can see it."""

    path: str
    original: Any
    normalized: Any
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "original": self.original, "normalized": self.normalized, "rule": self.rule}


def normalize(value: Any, schema: Schema) -> tuple[Any, list[Change]]:
    """Return the value unchanged; the full normaliser replaces this first version."""
    return value, []
