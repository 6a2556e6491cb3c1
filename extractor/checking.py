"""Turn one completion into checked fields: parse, normalise, validate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .normalize import Change, normalize
from .parsing import parse_completion
from .schema import Schema
from .validation import FieldError, validate


@dataclass
class Checked:
    """The outcome of checking one completion text."""

    fields: Any = None
    """The normalised value, or None when the completion could not be parsed."""
    errors: list[FieldError] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    parsed: bool = False
    retry: bool = True
    """False when asking the model again cannot help, for example when the prompt did not fit the context."""

    @property
    def valid(self) -> bool:
        return self.parsed and not self.errors


def check_text(text: str, schema: Schema, truncated: bool = False) -> Checked:
    """Parse, normalise and validate one completion text against the schema.

    Each error's ``str()`` is feedback written for the model, so the re-ask loop can send it as it is.
    """
    result = parse_completion(text, schema=schema, truncated=truncated)
    if result.rejection is not None:
        rejection = result.rejection
        error = FieldError(path="$", message=rejection.message, keyword=rejection.code, feedback=rejection.feedback)
        return Checked(errors=[error], repairs=list(result.repairs))

    value, changes = normalize(result.value, schema)
    return Checked(fields=value, errors=validate(value, schema), changes=changes, repairs=list(result.repairs), parsed=True)
