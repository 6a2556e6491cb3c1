"""``extractor extract`` and ``extractor render``."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..decoding.base import GenerationSettings
from ..decoding.loading import DEFAULT_MODEL
from ..errors import InputError
from ..i18n import pick
from ..paths import DEFAULT_TEMPLATE, EXAMPLES_DIR, PROMPTS_DIR, SCHEMAS_DIR, default_examples_for, resolve
from ..pipeline import Extractor
from ..prompts import PromptBuilder, load_examples
from ..records import Record, read_records, truncate_middle
from ..results import RowWriter
from ..schema import Schema, load_schema
from ..tables import rows_table, summary_table
from . import app
from .common import console, error_console, user_errors

logger = logging.getLogger(__name__)

# Options shared by extract and render, declared once.
SchemaOption = typer.Option(
    ..., "--schema", "-s", help=pick("JSON Schema 文件，或内置名称（admission、basic_info）。", "JSON Schema file, or a bundled name (admission, basic_info).")
)
TemplateOption = typer.Option(
    None, "--template", "-t", help=pick("Jinja2 提示词模板（默认 prompts/default.j2）。", "Jinja2 prompt template (default prompts/default.j2).")
)
ExamplesOption = typer.Option(
    None, "--examples", "-e",
    help=pick("少样本示例 JSONL（默认 examples/<schema 名>.jsonl，如存在）。", "Few-shot examples JSONL (default examples/<schema name>.jsonl when it exists)."),
)
NoExamplesOption = typer.Option(False, "--no-examples", help=pick("不使用少样本示例。", "Use no few-shot examples."))
ModeOption = typer.Option(
    "history", "--examples-mode",
    help=pick("示例放法：history（每个示例一轮对话）或 inline（示例写进同一条用户消息）。",
              "Where examples go: history (one chat turn each) or inline (inside the one user message)."),
)
ModelOption = typer.Option(
    DEFAULT_MODEL, "--model", "-m",
    help=pick("基座模型：本地文件夹、.gguf 文件，或模型仓库 ID（默认从 ModelScope 下载）。",
              "Base model: a local folder, a .gguf file, or a hub id (downloaded from ModelScope by default)."),
)
HubOption = typer.Option("modelscope", "--hub", help=pick("模型 ID 的来源：modelscope 或 hf。", "Where a model id is downloaded from: modelscope or hf."))
MaxRecordCharsOption = typer.Option(
    0, "--max-record-chars", min=0,
    help=pick("病历超过该字符数时截去中间部分（0 表示不截断）。", "Cut the middle out of records longer than this many characters (0: never)."),
)


@dataclass
class PromptOptions:
    schema: Schema
    builder: PromptBuilder


@dataclass
class RunOptions:
    """Everything that decides how records are extracted; the CLI flags and ``compare`` configs fill it."""

    schema: str
    template: Optional[str] = None
    examples: Optional[str] = None
    no_examples: bool = False
    examples_mode: str = "history"
    model: str = DEFAULT_MODEL
    hub: str = "modelscope"
    revision: Optional[str] = None
    adapter: Optional[str] = None
    max_record_chars: int = 0
    batch_size: int = 4
    max_retries: int = 1
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    device: str = "auto"
    dtype: str = "auto"
    trust_remote_code: bool = False
    thinking: bool = False
    free: bool = False
    grounded: list[str] = field(default_factory=list)
    no_grounding: bool = False


def build_extractor(options: RunOptions) -> Extractor:
    """Load the prompt parts and the model named by ``options`` and wire them into an ``Extractor``."""
    prompt = build_prompt_options(
        options.schema, options.template, options.examples, options.no_examples, options.examples_mode
    )
    from ..decoding.transformers_backend import load_decoder

    with error_console.status(pick("正在加载模型 {model} …", "Loading model {model} …", model=options.model)):
        decoder = load_decoder(
            options.model, hub=options.hub, revision=options.revision, adapter=options.adapter,
            settings=options.generation, batch_size=options.batch_size, device=options.device, dtype=options.dtype,
            trust_remote_code=options.trust_remote_code, thinking=options.thinking, schema=prompt.schema,
            constrained=not options.free, grounded=not options.no_grounding, grounded_paths=options.grounded,
        )
    extractor = Extractor(prompt.builder, decoder, max_retries=options.max_retries, batch_size=options.batch_size)
    extractor.stamp["max_record_chars"] = options.max_record_chars
    if options.adapter:
        warn_on_adapter_mismatch(options, prompt)
    return extractor


def warn_on_adapter_mismatch(options: RunOptions, prompt: PromptOptions) -> None:
    """Print a warning for each way the adapter's training set-up differs from this extraction."""
    from ..training.manifest import check_adapter_manifest

    stamp = {**prompt.builder.stamp(), "schema_sha256": prompt.schema.sha256}
    for warning in check_adapter_manifest(options.adapter or "", stamp, options.model, options.thinking):
        logger.warning("adapter manifest mismatch: %s", warning)
        error_console.print(f"[yellow]{pick('警告', 'Warning')}:[/] {escape(warning)}")


def load_inputs(inputs: list[Path], id_key: str, text_key: str, max_record_chars: int) -> list[Record]:
    """Read every input record, shortening long ones when ``max_record_chars`` is set."""
    records = list(read_records(inputs, id_key=id_key, text_key=text_key))
    if not records:
        raise InputError(pick("输入中没有找到任何病历。", "No records were found in the inputs."))
    if max_record_chars:
        records = [_shorten(r, max_record_chars) for r in records]
    return records


def build_prompt_options(
    schema: str, template: Optional[str], examples: Optional[str], no_examples: bool, examples_mode: str
) -> PromptOptions:
    """Load the schema, template and examples named on the command line."""
    schema_path = resolve(schema, SCHEMAS_DIR, ".json")
    loaded_schema = load_schema(schema_path)
    template_path = resolve(template, PROMPTS_DIR, ".j2") if template else DEFAULT_TEMPLATE

    examples_path: Path | None = None
    if not no_examples:
        examples_path = resolve(examples, EXAMPLES_DIR, ".jsonl") if examples else default_examples_for(schema_path)
    loaded_examples = load_examples(examples_path, loaded_schema) if examples_path else []
    builder = PromptBuilder(template_path, loaded_schema, loaded_examples, mode=examples_mode, examples_path=examples_path)  # type: ignore[arg-type]
    return PromptOptions(schema=loaded_schema, builder=builder)


@app.command(help=pick(
    "从病历批量抽取结构化字段，每条病历输出一行 JSONL。",
    "Extract structured fields from records: one JSONL row per input record.",
))
def extract(
    inputs: list[Path] = typer.Argument(
        ..., help=pick("输入：.txt 文件、包含 .txt 的文件夹（递归），或带 id 和 text 的 JSONL。",
                       "Inputs: .txt files, folders searched recursively for .txt, or JSONL with id and text."),
    ),
    schema: str = SchemaOption,
    template: Optional[str] = TemplateOption,
    examples: Optional[str] = ExamplesOption,
    no_examples: bool = NoExamplesOption,
    examples_mode: str = ModeOption,
    model: str = ModelOption,
    hub: str = HubOption,
    revision: Optional[str] = typer.Option(None, "--revision", help=pick("模型版本（分支、标签或提交）。", "Model revision (branch, tag or commit).")),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help=pick("LoRA adapter 文件夹（extractor train 的输出）。", "LoRA adapter folder (output of extractor train).")),
    out: str = typer.Option("results.jsonl", "--out", "-o", help=pick("输出 JSONL 路径；- 表示标准输出。", "Output JSONL path; - for standard output.")),
    id_key: str = typer.Option("id", "--id-key", help=pick("JSONL 输入中 ID 所在的字段名。", "Name of the id field in JSONL input.")),
    text_key: str = typer.Option("text", "--text-key", help=pick("JSONL 输入中病历文本所在的字段名。", "Name of the text field in JSONL input.")),
    max_record_chars: int = MaxRecordCharsOption,
    batch_size: int = typer.Option(4, "--batch-size", min=1, help=pick("每批送入 generate 的病历数。", "Records per generate batch.")),
    max_retries: int = typer.Option(1, "--max-retries", min=0, help=pick("校验失败后重新询问模型的最多次数。", "Maximum re-asks after a failed validation.")),
    max_new_tokens: int = typer.Option(512, "--max-new-tokens", min=1, help=pick("每次生成的最多 token 数。", "Maximum tokens generated per completion.")),
    do_sample: bool = typer.Option(False, "--do-sample", help=pick("采样解码（默认贪心解码）。", "Sample instead of greedy decoding (the default).")),
    temperature: float = typer.Option(1.0, "--temperature", help=pick("采样温度，仅在 --do-sample 时生效。", "Sampling temperature; only with --do-sample.")),
    top_k: int = typer.Option(50, "--top-k", help=pick("top-k 采样，仅在 --do-sample 时生效。", "Top-k sampling; only with --do-sample.")),
    top_p: float = typer.Option(1.0, "--top-p", help=pick("top-p（核）采样，仅在 --do-sample 时生效。", "Top-p (nucleus) sampling; only with --do-sample.")),
    num_beams: int = typer.Option(1, "--num-beams", min=1, help=pick("束搜索的束数。", "Number of beams for beam search.")),
    repetition_penalty: float = typer.Option(1.0, "--repetition-penalty", help=pick("重复惩罚系数（1.0 表示不惩罚）。", "Repetition penalty (1.0: none).")),
    no_repeat_ngram_size: int = typer.Option(0, "--no-repeat-ngram-size", min=0, help=pick("禁止重复的 n-gram 长度（0 表示不限制）。", "Size of n-grams that may not repeat (0: off).")),
    length_penalty: float = typer.Option(1.0, "--length-penalty", help=pick("束搜索的长度惩罚。", "Length penalty for beam search.")),
    num_return_sequences: int = typer.Option(1, "--num-return-sequences", min=1, help=pick("每条病历返回的序列数，取第一个通过校验的。", "Sequences returned per record; the first valid one is kept.")),
    seed: int = typer.Option(0, "--seed", help=pick("采样随机种子。", "Random seed for sampling.")),
    device: str = typer.Option("auto", "--device", help=pick("运行设备：auto、cpu、cuda、cuda:1 等。", "Device: auto, cpu, cuda, cuda:1, …")),
    dtype: str = typer.Option("auto", "--dtype", help=pick("权重精度：auto（CPU 用 float32，GPU 用 bfloat16）、float32、bfloat16、float16。", "Weight dtype: auto (float32 on CPU, bfloat16 on GPU), float32, bfloat16, float16.")),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help=pick("允许执行模型仓库中的代码（默认关闭）。", "Allow code from the model repository to run (off by default).")),
    thinking: bool = typer.Option(False, "--thinking", help=pick("打开 Qwen3 的思考模式（默认关闭）。", "Turn Qwen3 thinking on (off by default).")),
    free: bool = typer.Option(False, "--free", help=pick("关闭按 schema 约束的解码（默认开启）。", "Turn off schema-constrained decoding (on by default).")),
    grounded: Optional[list[str]] = typer.Option(
        None, "--grounded",
        help=pick("另外要求照抄病历原文的字段路径，可重复，如 姓名、入院诊断[]、用药[].药名。",
                  "Extra field paths whose values must be copied verbatim from the record; repeatable, e.g. 姓名, 入院诊断[], 用药[].药名."),
    ),
    no_grounding: bool = typer.Option(False, "--no-grounding", help=pick("不强制照抄原文（忽略 schema 中的 x-grounded）。", "Do not force verbatim copies (ignore x-grounded in the schema).")),
) -> None:
    with user_errors():
        settings = GenerationSettings(
            max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p,
            num_beams=num_beams, repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
            length_penalty=length_penalty, num_return_sequences=num_return_sequences, seed=seed,
        )
        options = RunOptions(
            schema=schema, template=template, examples=examples, no_examples=no_examples, examples_mode=examples_mode,
            model=model, hub=hub, revision=revision, adapter=str(adapter) if adapter else None,
            max_record_chars=max_record_chars, batch_size=batch_size, max_retries=max_retries, generation=settings,
            device=device, dtype=dtype, trust_remote_code=trust_remote_code, thinking=thinking, free=free,
            grounded=list(grounded or []), no_grounding=no_grounding,
        )
        records = load_inputs(inputs, id_key, text_key, max_record_chars)
        extractor = build_extractor(options)
        rows = run_extraction(extractor, records, out)
    raise typer.Exit(code=0 if all(r["status"] == "valid" for r in rows) else 1)


def run_extraction(extractor: Extractor, records: list[Record], out: str) -> list[dict[str, Any]]:
    """Run the extractor with a progress bar, write every row as it finishes, then print the tables."""
    table_console = error_console if out == "-" else console
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with _open_output(out) as stream, _progress() as progress:
        task = progress.add_task(pick("抽取中", "Extracting"), total=len(records))
        writer = RowWriter(stream)
        for row in extractor.run(records):
            writer.write(row)
            rows.append(row.to_dict())
            progress.advance(task)
    wall = time.perf_counter() - started

    table_console.print(rows_table(rows))
    table_console.print(summary_table(rows, wall))
    if out != "-":
        table_console.print(pick("结果已写入 {out}", "Rows written to {out}", out=out))
    return rows


def _shorten(record: Record, max_chars: int) -> Record:
    if record.error is not None or len(record.text) <= max_chars:
        return record
    logger.info("record %s shortened from %d to %d characters", record.id, len(record.text), max_chars)
    return Record(id=record.id, text=truncate_middle(record.text, max_chars), source=record.source)


@contextlib.contextmanager
def _open_output(out: str) -> Any:
    if out == "-":
        yield sys.stdout
        return
    path = Path(out)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as stream:
        yield stream


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=error_console,
        transient=False,
    )


@app.command(help=pick(
    "打印一条病历实际送入模型的完整提示词（经模型自带的 chat template 渲染）。",
    "Print the exact prompt text a record gets, rendered by the model's own chat template.",
))
def render(
    record: Path = typer.Argument(..., help=pick("一条病历：.txt 文件，或 JSONL（取第一条）。", "One record: a .txt file, or a JSONL file (its first record).")),
    schema: str = SchemaOption,
    template: Optional[str] = TemplateOption,
    examples: Optional[str] = ExamplesOption,
    no_examples: bool = NoExamplesOption,
    examples_mode: str = ModeOption,
    model: str = ModelOption,
    hub: str = HubOption,
    max_record_chars: int = MaxRecordCharsOption,
    messages_only: bool = typer.Option(False, "--messages", help=pick("只打印对话消息（JSON），不加载分词器。", "Print the chat messages as JSON without loading a tokenizer.")),
    thinking: bool = typer.Option(False, "--thinking", help=pick("按 Qwen3 思考模式渲染。", "Render with Qwen3 thinking on.")),
) -> None:
    with user_errors():
        options = build_prompt_options(schema, template, examples, no_examples, examples_mode)
        first = next(iter(read_records([record])), None)
        if first is None or first.error is not None:
            reason = first.error if first is not None else pick("没有病历", "no record")
            raise InputError(pick("无法读取病历 {path}：{reason}", "Cannot read record {path}: {reason}", path=record, reason=reason))
        text = truncate_middle(first.text, max_record_chars) if max_record_chars else first.text
        messages = options.builder.messages(text)
        if messages_only:
            import json

            _write(sys.stdout, json.dumps(messages, ensure_ascii=False, indent=2) + "\n")
            return

        from ..decoding.loading import load_tokenizer, resolve_model
        from ..decoding.transformers_backend import render_prompt

        tokenizer = load_tokenizer(resolve_model(model, hub=hub))
        _write(sys.stdout, render_prompt(tokenizer, messages, thinking=thinking))


def _write(stream: IO[str], text: str) -> None:
    stream.write(text)
    stream.flush()
