"""Prompt building: a Jinja2 template, few-shot examples and a schema become chat messages.

The same ``PromptBuilder`` feeds extraction, re-asking, fine-tuning data and evaluation, so a trained adapter
sees exactly the prompts that ``extract`` sends. Turning messages into the model's prompt text is left to the
model's own chat template (see ``extractor.decoding``).

Templates are rendered in a sandbox with ``StrictUndefined``: a misspelt variable raises instead of rendering
as an empty string. A template defines up to three blocks: ``system`` (optional), ``user`` (required) and
``reask`` (optional; a built-in text is used without it). In history mode only the first user turn gets
``first_turn=True``, so a template can send its instructions once instead of in every example turn.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from .errors import InputError
from .i18n import pick
from .schema import Schema

ExamplesMode = Literal["history", "inline"]
EXAMPLES_MODES: tuple[str, ...] = ("history", "inline")
Message = dict[str, str]

DEFAULT_REASK = (
    "Your previous output was rejected:\n{errors}\n\nFix these problems and output the complete JSON object only."
)


def format_answer(fields: Any) -> str:
    """Serialise gold or extracted fields the way the model is taught to write them: one line, CJK kept."""
    return json.dumps(fields, ensure_ascii=False)


@dataclass(frozen=True)
class Example:
    """A few-shot example: a record text and its gold fields."""

    id: str
    text: str
    fields: dict[str, Any]

    @property
    def answer(self) -> str:
        return format_answer(self.fields)


def load_examples(path: str | Path, schema: Schema) -> list[Example]:
    """Load few-shot examples from JSONL (``{"id", "text", "fields"}`` per line), each checked against the schema."""
    import jsonschema

    path = Path(path)
    if not path.is_file():
        raise InputError(
            pick(
                "找不到示例文件：{path}。请用 --examples 指定 JSONL 文件，或用 --no-examples 不带示例。",
                "Examples file not found: {path}. Pass a JSONL file with --examples, or use --no-examples.",
                path=path,
            )
        )
    validator = jsonschema.validators.validator_for(schema.data)(schema.data)
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        example = _parse_example(line, path, number)
        error = next(iter(validator.iter_errors(example.fields)), None)
        if error is not None:
            location = "/".join(str(p) for p in error.absolute_path) or "(root)"
            raise InputError(
                pick(
                    "示例 {path}:{line} 不符合 schema「{schema}」，字段 {field}：{error}。请修正示例或换用匹配的 schema。",
                    "Example {path}:{line} does not match schema \"{schema}\" at {field}: {error}. "
                    "Fix the example or use the matching schema.",
                    path=path, line=number, schema=schema.name, field=location, error=error.message,
                )
            )
        examples.append(example)
    return examples


def _parse_example(line: str, path: Path, number: int) -> Example:
    try:
        item = json.loads(line)
        return Example(id=str(item.get("id", number)), text=str(item["text"]), fields=dict(item["fields"]))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(
            pick(
                "示例 {path}:{line} 格式错误：每行应为带 text 和 fields 的 JSON 对象。",
                'Example {path}:{line} is malformed: each line must be a JSON object with "text" and "fields".',
                path=path, line=number,
            )
        ) from exc


class PromptBuilder:
    """Render chat messages for a record from a template, a schema and few-shot examples."""

    def __init__(
        self,
        template_path: str | Path,
        schema: Schema,
        examples: Sequence[Example] = (),
        mode: ExamplesMode = "history",
        examples_path: str | Path | None = None,
    ) -> None:
        if mode not in EXAMPLES_MODES:
            raise InputError(
                pick(
                    "未知的示例模式：{mode}。可选：history、inline。",
                    "Unknown examples mode: {mode}. Choose history or inline.",
                    mode=mode,
                )
            )
        self.template_path = Path(template_path)
        self.schema = schema
        self.examples = list(examples)
        self.mode = mode
        self.examples_path = str(examples_path) if examples_path else None
        self._source, self._template = _load_template(self.template_path)
        if "user" not in self._template.blocks:
            raise InputError(
                pick(
                    "模板 {path} 缺少 user 块。请用 {{% block user %}}…{{% endblock %}} 定义用户消息。",
                    "Template {path} has no user block. Define the user message with {{% block user %}}…{{% endblock %}}.",
                    path=self.template_path,
                )
            )

    def messages(self, record_text: str) -> list[Message]:
        """Build the chat messages for one record: system, few-shot turns (history mode), then the record."""
        messages: list[Message] = []
        system = self._render_block("system", record="", examples=[], first_turn=True)
        if system:
            messages.append({"role": "system", "content": system})
        inline: list[Example] = []
        if self.mode == "history":
            for index, example in enumerate(self.examples):
                user = self._render_block("user", record=example.text, examples=[], first_turn=index == 0)
                messages.append({"role": "user", "content": user})
                messages.append({"role": "assistant", "content": example.answer})
        else:
            inline = self.examples
        first_turn = self.mode == "inline" or not self.examples
        user = self._render_block("user", record=record_text, examples=inline, first_turn=first_turn)
        messages.append({"role": "user", "content": user})
        return messages

    def reask_messages(self, messages: Sequence[Message], completion: str, errors: Sequence[str]) -> list[Message]:
        """Extend a conversation with the rejected completion and feedback the model can act on."""
        if "reask" in self._template.blocks:
            feedback = self._render_block(
                "reask", record="", examples=[], first_turn=False, completion=completion, errors=list(errors)
            )
        else:
            feedback = DEFAULT_REASK.format(errors="\n".join(f"- {e}" for e in errors))
        return [*messages, {"role": "assistant", "content": completion}, {"role": "user", "content": feedback}]

    def stamp(self) -> dict[str, Any]:
        """Describe the template, examples and mode for output rows and adapter manifests."""
        examples_blob = "\n".join(json.dumps([e.text, e.fields], ensure_ascii=False) for e in self.examples)
        return {
            "template": str(self.template_path),
            "template_sha256": hashlib.sha256(self._source.encode("utf-8")).hexdigest(),
            "examples": self.examples_path,
            "examples_count": len(self.examples),
            "examples_sha256": hashlib.sha256(examples_blob.encode("utf-8")).hexdigest(),
            "examples_mode": self.mode,
        }

    def _render_block(self, name: str, **values: Any) -> str:
        if name not in self._template.blocks:
            return ""
        context = self._template.new_context(
            {
                "schema": self.schema.data,
                "fields": list(self.schema.fields),
                "mode": self.mode,
                **values,
            }
        )
        try:
            return "".join(self._template.blocks[name](context)).strip()
        except jinja2.TemplateError as exc:
            raise InputError(
                pick(
                    "模板 {path} 的 {block} 块渲染失败：{error}",
                    "Rendering block {block} of template {path} failed: {error}",
                    path=self.template_path, block=name, error=exc,
                )
            ) from exc


def _load_template(path: Path) -> tuple[str, jinja2.Template]:
    try:
        source = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise InputError(
            pick(
                "找不到模板文件：{path}。请用 --template 指定 prompts/ 下的 .j2 文件。",
                "Template not found: {path}. Pass a .j2 file from prompts/ with --template.",
                path=path,
            )
        ) from exc
    environment = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
    try:
        return source, environment.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(
            pick(
                "模板 {path} 第 {line} 行语法错误：{error}",
                "Template {path} has a syntax error on line {line}: {error}",
                path=path, line=exc.lineno, error=exc.message,
            )
        ) from exc
