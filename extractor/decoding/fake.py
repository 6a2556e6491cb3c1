"""A scripted decoder for tests: returns queued completions instead of running a model."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .base import Completion, CompletionRequest, Message


class ScriptedDecoder:
    """Return completions from a script, one per request, in order.

    ``script`` is either a list of completion texts (or ``Completion`` objects), consumed in order, or a
    function from a request to a completion text. Every request is kept in ``requests`` for inspection.
    """

    def __init__(
        self,
        script: Iterable[str | Completion] | Callable[[CompletionRequest], str | Completion],
        batch_size: int = 8,
    ) -> None:
        self._script = script if callable(script) else list(script)
        self.batch_size = batch_size
        self.requests: list[CompletionRequest] = []
        self.batches: list[int] = []

    def complete(self, requests: Sequence[CompletionRequest]) -> list[Completion]:
        self.batches.append(len(requests))
        return [self._next(request) for request in requests]

    def render(self, messages: Sequence[Message]) -> str:
        return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"

    def stamp(self) -> dict[str, Any]:
        return {"backend": "scripted", "model": "scripted", "adapter": None, "generation": {}}

    def _next(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        if callable(self._script):
            item = self._script(request)
        elif self._script:
            item = self._script.pop(0)
        else:
            raise RuntimeError("ScriptedDecoder ran out of scripted completions")
        if isinstance(item, Completion):
            return item
        return Completion(text=item, prompt_tokens=len(self.render(request.messages)), completion_tokens=len(item))
