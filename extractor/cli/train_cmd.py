"""``extractor data convert``, ``extractor train``, ``extractor merge`` and ``extractor demo``."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

import typer
from rich.panel import Panel

from ..errors import InputError
from ..i18n import pick
from . import app
from .common import console, error_console, user_errors
from .extract_cmd import (
    ExamplesOption,
    HubOption,
    ModeOption,
    ModelOption,
    NoExamplesOption,
    TemplateOption,
    build_prompt_options,
)

logger = logging.getLogger(__name__)

data_app = typer.Typer(
    help=pick("训练数据：把标注好的病历转换为对话格式。", "Training data: turn annotated records into chat-format rows."),
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")


@data_app.command("convert", help=pick(
    "把标注好的病历（text+fields，或 instruction/input/output）转换为与 extract 完全相同提示词的训练数据。",
    "Convert annotated records (text+fields, or instruction/input/output) into training rows with exactly the prompts extract sends.",
))
def convert(
    input_path: Path = typer.Option(..., "--input", "-i", help=pick("原始标注 JSONL。", "Raw annotated JSONL.")),
    out: Path = typer.Option(..., "--out", "-o", help=pick("输出文件夹（train.jsonl、val.jsonl、dropped.jsonl）。", "Output folder (train.jsonl, val.jsonl, dropped.jsonl).")),
    schema: str = typer.Option(..., "--schema", "-s", help=pick("JSON Schema 文件或内置名称。", "JSON Schema file or bundled name.")),
    template: Optional[str] = TemplateOption,
    examples: Optional[str] = ExamplesOption,
    no_examples: bool = NoExamplesOption,
    examples_mode: str = ModeOption,
    val_ratio: float = typer.Option(0.1, "--val-ratio", min=0.0, max=0.9, help=pick("验证集比例。", "Share of records held out for validation.")),
    seed: int = typer.Option(0, "--seed", help=pick("划分训练/验证集的随机种子。", "Random seed for the train/validation split.")),
) -> None:
    from ..training.data import convert_records, write_conversion
    from ..training.tables import conversion_table, dropped_table

    with user_errors():
        builder = build_prompt_options(schema, template, examples, no_examples, examples_mode).builder
        conversion = convert_records(input_path, builder)
        paths = write_conversion(out, builder, conversion, val_ratio, seed)
        counts = {"train": 0, "val": 0, "dropped": len(conversion.dropped)}
        counts["val"] = sum(1 for _ in open(paths["val"], encoding="utf-8"))
        counts["train"] = len(conversion.rows) - counts["val"]
        console.print(conversion_table(counts, paths))
        if conversion.dropped:
            console.print(dropped_table(conversion.dropped))
        if conversion.ignored_instructions:
            console.print(
                pick(
                    "注意：忽略了 {n} 条 alpaca 记录的 instruction，提示词由模板生成，与 extract 一致。",
                    "Note: ignored the instruction of {n} alpaca row(s); the template writes the prompt, as in extract.",
                    n=conversion.ignored_instructions,
                )
            )
        if not conversion.rows:
            raise InputError(
                pick("{path} 中没有可用的记录（见上表）。", "No usable records in {path} (see the table above).", path=input_path)
            )


@app.command(help=pick(
    "LoRA 微调：训练提示词与 extract 的提示词逐 token 一致，输出 adapter 和清单。",
    "LoRA fine-tuning with prompts identical to extract's, token for token; writes the adapter and its manifest.",
))
def train(
    data: Optional[str] = typer.Option(None, "--data", "-d", help=pick("训练数据：原始标注或 data convert 的输出。", "Training data: raw annotated records or the output of data convert.")),
    out: Optional[str] = typer.Option(None, "--out", "-o", help=pick("adapter 输出文件夹。", "Output folder for the adapter.")),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=pick("基座模型（默认 Qwen/Qwen3-1.7B）。", "Base model (default Qwen/Qwen3-1.7B).")),
    hub: Optional[str] = typer.Option(None, "--hub", help=pick("模型 ID 的来源：modelscope 或 hf。", "Where a model id is downloaded from: modelscope or hf.")),
    revision: Optional[str] = typer.Option(None, "--revision", help=pick("模型版本。", "Model revision.")),
    val: Optional[str] = typer.Option(None, "--val", help=pick("验证数据（默认：原始数据按 --val-ratio 划分）。", "Validation data (default: split raw data by --val-ratio).")),
    schema: Optional[str] = typer.Option(None, "--schema", "-s", help=pick("原始数据需要的 JSON Schema。", "JSON Schema, needed for raw data.")),
    template: Optional[str] = TemplateOption,
    examples: Optional[str] = ExamplesOption,
    no_examples: bool = NoExamplesOption,
    examples_mode: Optional[str] = typer.Option(None, "--examples-mode", help=pick("history 或 inline。", "history or inline.")),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help=pick("配置文件（TOML/YAML/JSON），命令行参数优先。", "Config file (TOML/YAML/JSON); command-line options override it.")),
    epochs: Optional[float] = typer.Option(None, "--epochs", help=pick("训练轮数。", "Number of epochs.")),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help=pick("最多训练步数（覆盖 --epochs）。", "Maximum optimiser steps (overrides --epochs).")),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help=pick("训练时长上限（分钟），到时保存并停止。", "Stop and save after this many minutes of training.")),
    lr: Optional[float] = typer.Option(None, "--lr", help=pick("学习率。", "Learning rate.")),
    rank: Optional[int] = typer.Option(None, "--rank", help=pick("LoRA 秩。", "LoRA rank.")),
    alpha: Optional[int] = typer.Option(None, "--alpha", help=pick("LoRA alpha。", "LoRA alpha.")),
    dropout: Optional[float] = typer.Option(None, "--dropout", help=pick("LoRA dropout。", "LoRA dropout.")),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help=pick("每个设备的批大小。", "Batch size per device.")),
    grad_accum: Optional[int] = typer.Option(None, "--grad-accum", help=pick("梯度累积步数。", "Gradient accumulation steps.")),
    max_length: Optional[int] = typer.Option(None, "--max-length", help=pick("提示词加答案的最大 token 数。", "Maximum tokens of prompt plus answer.")),
    val_ratio: Optional[float] = typer.Option(None, "--val-ratio", help=pick("原始数据的验证集比例。", "Validation share when splitting raw data.")),
    eval_steps: Optional[int] = typer.Option(None, "--eval-steps", help=pick("每隔多少步验证并保存检查点。", "Evaluate and save a checkpoint every N steps.")),
    seed: Optional[int] = typer.Option(None, "--seed", help=pick("随机种子。", "Random seed.")),
    resume: bool = typer.Option(False, "--resume", help=pick("从 --out 下最新的检查点继续训练。", "Resume from the newest checkpoint under --out.")),
    resume_from: Optional[str] = typer.Option(None, "--resume-from", help=pick("从指定的检查点文件夹继续训练。", "Resume from this checkpoint folder.")),
    report_to: Optional[str] = typer.Option(None, "--report-to", help=pick("none、tensorboard 或 swanlab（离线）。", "none, tensorboard or swanlab (offline).")),
    device: Optional[str] = typer.Option(None, "--device", help=pick("auto、cpu 或 cuda。", "auto, cpu or cuda.")),
    bf16: bool = typer.Option(False, "--bf16", help=pick("用 bf16 混合精度。", "Train in bf16 mixed precision.")),
    fp16: bool = typer.Option(False, "--fp16", help=pick("用 fp16 混合精度（需要有 fp16 张量核心的 GPU）。", "Train in fp16 mixed precision (needs a GPU with fp16 tensor cores).")),
    thinking: Optional[bool] = typer.Option(None, "--thinking/--no-thinking", help=pick("Qwen3 思考模式（默认关闭）。", "Qwen3 thinking mode (off by default).")),
) -> None:
    from ..training.config import load_config
    from ..training.tables import dropped_table, training_table
    from ..training.train import run_training

    with user_errors():
        if bf16 and fp16:
            raise InputError(pick("--bf16 和 --fp16 只能选一个。", "Choose one of --bf16 and --fp16."))
        if resume and resume_from:
            raise InputError(pick("--resume 和 --resume-from 只能选一个。", "Choose one of --resume and --resume-from."))
        precision = None
        if bf16:
            precision = "bf16"
        elif fp16:
            precision = "fp16"
        overrides: dict[str, Any] = {
            "data": data, "out": out, "model": model, "hub": hub, "revision": revision, "val": val, "schema": schema,
            "template": template, "examples": examples, "no_examples": no_examples or None, "examples_mode": examples_mode,
            "epochs": epochs, "max_steps": max_steps, "max_minutes": max_minutes, "lr": lr, "rank": rank, "alpha": alpha,
            "dropout": dropout, "batch_size": batch_size, "grad_accum": grad_accum, "max_length": max_length,
            "val_ratio": val_ratio, "eval_steps": eval_steps, "seed": seed, "resume": resume_from or ("latest" if resume else None), "report_to": report_to,
            "device": device, "precision": precision, "thinking": thinking,
        }
        config = load_config(config_file, overrides)
        builder = None
        if config.schema:
            builder = build_prompt_options(
                config.schema, config.template, config.examples, config.no_examples, config.examples_mode
            ).builder
        result = run_training(config, builder=builder, console=console)
        console.print(training_table(result.manifest, str(result.out), result.seconds))
        if result.dropped:
            console.print(dropped_table(result.dropped))
        if result.stopped_early:
            console.print(pick("已到 --max-minutes 时间上限，提前停止。", "Stopped early at the --max-minutes limit."))
        console.print(
            pick("用法：extractor extract --model {m} --adapter {a} …", "Use it: extractor extract --model {m} --adapter {a} …",
                 m=config.model, a=result.out),
            highlight=False,
        )


@app.command(help=pick(
    "把 LoRA adapter 合并进基座模型，并修正生成配置使其在 <|im_end|> 处停止。",
    "Merge a LoRA adapter into its base model, with the generation config fixed to stop on <|im_end|>.",
))
def merge(
    adapter: Path = typer.Option(..., "--adapter", "-a", help=pick("extractor train 的输出文件夹。", "Output folder of extractor train.")),
    out: Path = typer.Option(..., "--out", "-o", help=pick("合并后模型的输出文件夹。", "Output folder for the merged model.")),
    model: str = ModelOption,
    hub: str = HubOption,
    revision: Optional[str] = typer.Option(None, "--revision", help=pick("模型版本。", "Model revision.")),
    dtype: str = typer.Option("auto", "--dtype", help=pick("auto（保持基座模型的精度）、float32、bfloat16 或 float16。", "auto (keep the base model's dtype), float32, bfloat16 or float16.")),
) -> None:
    from ..training.merge import merge_adapter

    with user_errors():
        result = merge_adapter(model, adapter, out, hub=hub, revision=revision, dtype=dtype)
        for warning in result.warnings:
            error_console.print(f"[yellow]{warning}[/]", highlight=False)
        console.print(
            pick(
                "已合并到 {out}（{dtype}）。生成在 token {eos} 处停止，pad token 为 {pad}。",
                "Merged into {out} ({dtype}). Generation stops on token ids {eos}; the pad token id is {pad}.",
                out=result.out, dtype=result.dtype, eos=result.eos_token_ids, pad=result.pad_token_id,
            ),
            highlight=False,
        )


@app.command(help=pick(
    "离线演示：用小替身模型在 CPU 上完成微调、合并与抽取，并对比微调前后的字段准确率。",
    "Offline demo: fine-tune, merge and extract with a small stand-in model on CPU, comparing field accuracy before and after.",
))
def demo(
    minutes: float = typer.Option(5.0, "--minutes", help=pick("大致的总时长（分钟），按 2 核 CPU 估算。", "Rough total time in minutes, sized for a 2-core CPU.")),
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help=pick("输出文件夹。", "Output folder.")),
    records: Optional[int] = typer.Option(None, "--records", min=1, help=pick("评估的验证集病历条数（默认按时长决定）。", "Held-out records to evaluate (default: sized by --minutes).")),
) -> None:
    # OpenMP threads that spin while waiting slow a CPU run down several times when other processes compete for
    # the cores. Passive waiting costs little on an idle machine. The setting only takes effect before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ..training.demo import run_demo, stand_in_notice

    with user_errors():
        console.print(Panel(stand_in_notice(), title=pick("替身模型", "Stand-in model"), expand=False))
        summary = run_demo(minutes, out, console, dev_records=records)
        console.print(
            pick("总用时 {s:.0f} 秒；结果在 {out}。", "Total time {s:.0f} s; results in {out}.", s=summary["total_seconds"], out=out),
            highlight=False,
        )
