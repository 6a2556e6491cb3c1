"""Schema validation with per-field errors that a clinician-engineer can read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonschema

from .schema import Schema


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of an extraction."""

    path: str
    """JSON path of the field, e.g. ``$.用药[0].药名``; ``$`` for the whole object."""
    message: str
    keyword: str = ""
    """The JSON Schema keyword that failed, or a parser reason such as ``truncated``."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "keyword": self.keyword}


def json_path(parts: Any) -> str:
    """Format path parts as ``$.a[0].b``."""
    text = "$"
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def validate(value: Any, schema: Schema) -> list[FieldError]:
    """Validate a value against the schema with format checking on; return errors sorted by path."""
    validator_class = jsonschema.validators.validator_for(schema.data)
    validator = validator_class(schema.data, format_checker=validator_class.FORMAT_CHECKER)
    errors = [
        FieldError(path=json_path(error.absolute_path), message=error.message, keyword=str(error.validator))
        for error in validator.iter_errors(value)
    ]
    return sorted(errors, key=lambda e: e.path)
