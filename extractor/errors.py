"""The package's exceptions, split by who has to act.

``InputError``: the user's files or options are wrong. ``SetupError``: the environment is missing something
(a model, a package, the network). ``OutputError``: the model's completion could not become a valid extraction.
All carry a message that names the value and the next step, in the user's language.
"""

from __future__ import annotations


class ExtractorError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = 1


class InputError(ExtractorError):
    """A file, option or value given by the user is invalid."""

    exit_code = 2


class SetupError(ExtractorError):
    """The environment lacks a model, a package or network access that the command needs."""

    exit_code = 3


class OutputError(ExtractorError):
    """A completion was rejected. Keeps the raw completion so that no model output is lost."""

    def __init__(self, message: str, completion: str = "", attempts: int = 1) -> None:
        super().__init__(message)
        self.completion = completion
        self.attempts = attempts
