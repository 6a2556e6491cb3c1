"""The extraction loop: records → prompts → completions → checked rows, with bounded re-asking."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from .checking import Checked, check_text
from .decoding.base import Completion, CompletionRequest, Decoder
from .grounding import ground_row
from .prompts import Message, PromptBuilder
from .records import Record
from .results import Attempt, ResultRow, classify_field
from .schema import Schema
from .validation import FieldError

logger = logging.getLogger(__name__)


@dataclass
class _Pending:
    """A record in flight: its conversation so far and every attempt made."""

    record: Record
    messages: list[Message]
    attempts: list[Attempt] = field(default_factory=list)
    checked: Checked | None = None
    completion: Completion | None = None


class Extractor:
    """Extract fields from records with an injected decoder.

    ``max_retries`` bounds the re-asks per record: a record gets at most ``1 + max_retries`` completions.
    """

    def __init__(
        self,
        builder: PromptBuilder,
        decoder: Decoder,
        max_retries: int = 1,
        batch_size: int = 8,
        stamp: dict[str, Any] | None = None,
    ) -> None:
        self.builder = builder
        self.decoder = decoder
        self.schema: Schema = builder.schema
        self.max_retries = max(0, max_retries)
        self.batch_size = max(1, batch_size)
        self.stamp = stamp if stamp is not None else self.build_stamp()

    def build_stamp(self) -> dict[str, Any]:
        """Describe everything that determines a row: model, adapter, prompt, schema, generation settings."""
        return {
            **self.decoder.stamp(),
            **self.builder.stamp(),
            "schema": self.schema.name,
            "schema_sha256": self.schema.sha256,
            "max_retries": self.max_retries,
        }

    def run(self, records: Iterable[Record], on_row: Callable[[ResultRow], None] | None = None) -> Iterator[ResultRow]:
        """Yield one row per record, in input order, batching the model calls."""
        iterator = iter(records)
        while batch := list(islice(iterator, self.batch_size)):
            for row in self.extract_batch(batch):
                if on_row is not None:
                    on_row(row)
                yield row

    def extract_batch(self, records: Sequence[Record]) -> list[ResultRow]:
        """Extract a batch of records; unreadable records get their error row without a model call."""
        readable = [r for r in records if r.error is None]
        pending = [_Pending(record=r, messages=self.builder.messages(r.text)) for r in readable]

        open_items = pending
        for round_number in range(1 + self.max_retries):
            if not open_items:
                break
            if round_number:
                logger.info("re-asking %d record(s), round %d", len(open_items), round_number)
            self._complete_round(open_items)
            open_items = [p for p in open_items if p.checked is not None and not p.checked.valid and p.checked.retry]
            for item in open_items:
                assert item.completion is not None and item.checked is not None
                errors = [str(e) for e in item.checked.errors]
                item.messages = self.builder.reask_messages(item.messages, item.completion.text, errors)

        rows_by_id = {id(p.record): self._row(p) for p in pending}
        return [rows_by_id.get(id(r)) or ResultRow.for_unreadable(r, self.stamp) for r in records]

    def _complete_round(self, items: Sequence[_Pending]) -> None:
        requests = [CompletionRequest(messages=tuple(p.messages), record_text=p.record.text) for p in items]
        completions = self.decoder.complete(requests)
        if len(completions) != len(requests):
            raise RuntimeError(f"decoder returned {len(completions)} completions for {len(requests)} requests")

        for item, completion in zip(items, completions):
            checked = self._check(completion)
            item.completion = completion
            item.checked = checked
            item.attempts.append(
                Attempt(
                    completion=completion.text,
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    truncated=completion.truncated,
                    seconds=round(completion.seconds, 4),
                    errors=[e.to_dict() for e in checked.errors],
                )
            )

    def _check(self, completion: Completion) -> Checked:
        """Check the main sequence, then any alternative sequences; keep the first valid one."""
        if completion.error is not None:
            return Checked(errors=[FieldError(path="$", message=completion.error, keyword="decoder")], retry=False)
        checked = check_text(completion.text, self.schema, truncated=completion.truncated)
        for alternative in completion.alternatives:
            if checked.valid:
                break
            candidate = check_text(alternative, self.schema)
            if candidate.valid:
                checked = candidate
        return checked

    def _evidence(self, item: _Pending, checked: Checked) -> dict[str, Any]:
        """Locate every extracted value in the record; offsets known from constrained decoding are kept."""
        if not checked.parsed:
            return {}
        decoded = dict(item.completion.spans) if item.completion is not None else {}
        row = {"fields": checked.fields, "changes": [c.to_dict() for c in checked.changes], "spans": decoded}
        return ground_row(row, item.record.text)

    def _row(self, item: _Pending) -> ResultRow:
        checked = item.checked or Checked()
        completion = item.completion
        failed_fields = {e.path.split(".")[1].split("[")[0] for e in checked.errors if e.path.startswith("$.")}
        fields = checked.fields if isinstance(checked.fields, dict) else {}
        status = {
            f.name: classify_field(fields.get(f.name), failed=not checked.parsed or f.name in failed_fields)
            for f in self.schema.fields
        }
        return ResultRow(
            id=item.record.id,
            source=item.record.source,
            record_sha256=item.record.sha256,
            fields=checked.fields,
            valid=checked.valid,
            errors=[e.to_dict() for e in checked.errors],
            completion=completion.text if completion else None,
            attempts=item.attempts,
            changes=[c.to_dict() for c in checked.changes],
            repairs=checked.repairs,
            field_status=status,
            spans=self._evidence(item, checked),
            prompt_tokens=sum(a.prompt_tokens for a in item.attempts),
            completion_tokens=sum(a.completion_tokens for a in item.attempts),
            seconds=round(sum(a.seconds for a in item.attempts), 4),
            stamp=self.stamp,
        )
