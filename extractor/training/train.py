"""LoRA training with the transformers ``Trainer``: data, model, callbacks, then the adapter and its manifest.

``run_training`` reads as the steps of a run: prepare the output folder, load the tokenizer, prepare and
tokenize the data, pick device and precision, load the base model, add LoRA, train, save the adapter, write
the manifest. Data preparation lives in ``prepared.py``, the hardware choice in ``runtime.py``.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from ..decoding.loading import ModelSpec, load_tokenizer, resolve_model
from ..errors import InputError, SetupError
from ..i18n import pick
from ..prompts import PromptBuilder
from .base_model import load_dense_model
from .callbacks import LOG_NAME, JsonlLogCallback, RichProgressCallback, TimeBudgetCallback, offline_swanlab_callback
from .config import TrainConfig
from .data import Dropped
from .manifest import new_manifest, write_manifest
from .prepared import PreparedData, prepare_data
from .runtime import Runtime, choose_runtime
from .tokenization import PaddingCollator, as_features, choose_pad_id

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"


@dataclass
class TrainResult:
    """The outputs of a finished run."""

    out: Path
    manifest: dict[str, Any]
    seconds: float
    stopped_early: bool
    dropped: list[Dropped]
    """Records left out of training, from conversion or for not fitting ``max_length``."""
    model: Any = None
    """The trained peft model, still in memory (the best checkpoint's weights when there was a validation set)."""


def run_training(config: TrainConfig, builder: PromptBuilder | None = None, console: Console | None = None) -> TrainResult:
    """Train a LoRA adapter as ``config`` sets out, and save it with its manifest and resolved config in ``config.out``.

    ``builder`` builds prompts for raw annotated data; it must be the one ``extract`` would use.
    """
    started = time.monotonic()
    console = console or Console()
    runtime = choose_runtime(config.device, config.precision, config.gradient_checkpointing)
    out = prepare_out(config)
    resume = resolve_resume(config.resume, out)

    spec = resolve_model(config.model, hub=config.hub, revision=config.revision)
    tokenizer = load_tokenizer(spec, trust_remote_code=config.trust_remote_code)
    tokenizer.padding_side = "right"
    data = prepare_data(config, tokenizer, builder)
    console.print(data.summary_line(), highlight=False)

    model = load_base_model(spec, runtime, config.trust_remote_code)
    model = add_lora(model, config)

    trainer, budget = build_trainer(config, model, tokenizer, data, runtime, out, console)
    with warnings.catch_warnings():
        # peft looks for the base model's config.json to tell whether the vocabulary changed; a GGUF base has
        # none, and LoRA never changes the vocabulary.
        warnings.filterwarnings("ignore", message="Could not find a config file", category=UserWarning)
        train_output = trainer.train(resume_from_checkpoint=resume)
        trainer.save_model(str(out))
    config.save(out)
    manifest = build_manifest(config, spec, data, runtime, trainer, train_output, time.monotonic() - started)
    write_manifest(out, manifest)
    logger.info("adapter saved to %s after %d steps", out, trainer.state.global_step)
    return TrainResult(
        out=out,
        manifest=manifest,
        seconds=time.monotonic() - started,
        stopped_early=bool(budget and budget.stopped_early),
        dropped=data.all_dropped,
        model=trainer.model,
    )


def prepare_out(config: TrainConfig) -> Path:
    """Create the output folder; refuse to train over an earlier run unless resuming."""
    if not config.out:
        raise InputError(pick("请用 --out 指定 adapter 的输出文件夹。", "Pass the adapter's output folder with --out."))
    out = Path(config.out)
    earlier = (out / "adapter_config.json").exists() or (out / CHECKPOINTS).is_dir()
    if earlier and config.resume is None:
        raise InputError(
            pick(
                "输出文件夹 {out} 中已有训练结果。用 --resume 继续训练，或换一个 --out。",
                "Output folder {out} already holds a training run. Continue it with --resume, or choose another --out.",
                out=out,
            )
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def resolve_resume(resume: str | None, out: Path) -> str | None:
    """Turn ``--resume`` into a checkpoint folder: ``latest`` is the newest one under ``out/checkpoints``."""
    if resume is None:
        return None
    if resume != "latest":
        path = Path(resume)
        if not (path / "trainer_state.json").is_file():
            raise InputError(
                pick(
                    "{path} 不是训练检查点（缺少 trainer_state.json）。请传入 checkpoint-N 文件夹，或用 --resume latest。",
                    "{path} is not a training checkpoint (no trainer_state.json). Pass a checkpoint-N folder, or use --resume latest.",
                    path=path,
                )
            )
        return str(path)
    candidates = sorted(
        (p for p in (out / CHECKPOINTS).glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
        key=lambda p: int(p.name.rsplit("-", 1)[-1]) if p.name.rsplit("-", 1)[-1].isdigit() else -1,
    )
    if not candidates:
        raise InputError(
            pick(
                "{out} 下没有可继续的检查点。去掉 --resume 重新训练，或检查 --out。",
                "No checkpoint to resume under {out}. Drop --resume to start afresh, or check --out.",
                out=out / CHECKPOINTS,
            )
        )
    return str(candidates[-1])


def load_base_model(spec: ModelSpec, runtime: Runtime, trust_remote_code: bool) -> Any:
    """Load the base model in the runtime's dtype, with the KV cache off (training never reuses it)."""
    model = load_dense_model(spec, runtime.dtype, trust_remote_code)
    model.config.use_cache = False
    if runtime.gradient_checkpointing:
        # With checkpointing, the frozen embeddings' outputs need requires_grad, or no gradient reaches LoRA.
        model.enable_input_require_grads()
    logger.info("loaded base model %s as %s", spec.name, runtime.dtype)
    return model


def lora_settings(config: TrainConfig) -> dict[str, Any]:
    """Return the peft ``LoraConfig`` arguments for ``config``, as recorded in the manifest."""
    return {
        "r": config.rank,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": config.target_modules,
        "bias": "none",
        "task_type": "CAUSAL_LM",
    }


def add_lora(model: Any, config: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    with warnings.catch_warnings():
        # peft 0.21 reads the deprecated is_gradient_checkpointing property, and transformers 5 warns about it.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, LoraConfig(**lora_settings(config)))
    trainable, total = peft_model.get_nb_trainable_parameters()
    logger.info("LoRA: %d of %d parameters trainable (%.2f%%)", trainable, total, 100 * trainable / max(total, 1))
    return peft_model


def build_trainer(
    config: TrainConfig, model: Any, tokenizer: Any, data: PreparedData, runtime: Runtime, out: Path, console: Console
) -> tuple[Any, TimeBudgetCallback | None]:
    """Assemble the Trainer with our progress bar, JSONL log, early stopping and time budget."""
    from transformers import EarlyStoppingCallback, PrinterCallback, Trainer

    has_val = bool(data.val.samples)
    args = training_arguments(config, runtime, out, n_train=len(data.train.samples), has_val=has_val)
    callbacks: list[Any] = [RichProgressCallback(console), JsonlLogCallback(out / LOG_NAME)]
    callbacks += report_callbacks(config.report_to, out)
    if has_val and config.early_stopping_patience > 0 and config.save_checkpoints:
        # The Trainer tracks the best eval loss only while it keeps checkpoints to load the best one from.
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    budget = TimeBudgetCallback(config.max_minutes) if config.max_minutes else None
    if budget is not None:
        callbacks.append(budget)

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=as_features(data.train.samples),
        eval_dataset=as_features(data.val.samples) if has_val else None,
        data_collator=PaddingCollator(choose_pad_id(tokenizer)),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    # disable_tqdm makes the Trainer print raw log dicts; our progress bar replaces both.
    trainer.remove_callback(PrinterCallback)
    return trainer, budget


def planned_steps(config: TrainConfig, n_train: int) -> int:
    """Optimiser steps the run will take (before early stopping or the time budget)."""
    if config.max_steps > 0:
        return config.max_steps
    per_epoch = max(1, -(-n_train // (config.batch_size * config.grad_accum)))
    return max(1, int(per_epoch * config.epochs + 0.999))


def training_arguments(config: TrainConfig, runtime: Runtime, out: Path, n_train: int, has_val: bool) -> Any:
    from transformers import TrainingArguments

    steps = planned_steps(config, n_train)
    eval_steps = config.eval_steps or max(1, steps // 10)
    checkpointing = runtime.gradient_checkpointing
    return TrainingArguments(
        output_dir=str(out / CHECKPOINTS),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.lr,
        lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the total steps (transformers 5)
        weight_decay=config.weight_decay,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_val else "no",
        eval_steps=eval_steps,
        save_strategy="steps" if config.save_checkpoints else "no",
        save_steps=eval_steps,
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=has_val and config.save_checkpoints,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        bf16=runtime.bf16,
        fp16=runtime.fp16,
        use_cpu=runtime.device == "cpu",
        activation_checkpointing=checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=0,
    )


def report_callbacks(report_to: str, out: Path) -> list[Any]:
    """Build the TensorBoard or SwanLab callback, writing under ``out``. SwanLab runs offline unless SWANLAB_MODE is set."""
    if report_to == "tensorboard":
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise SetupError(_missing_tracker("tensorboard")) from exc
        from transformers.integrations import TensorBoardCallback

        return [TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(out / "tensorboard")))]
    if report_to == "swanlab":
        try:
            import swanlab  # noqa: F401
        except ImportError as exc:
            raise SetupError(_missing_tracker("swanlab")) from exc
        # Offline mode keeps the run on disk (upload later with `swanlab sync`); a mode set by the user wins.
        return [offline_swanlab_callback(out / "swanlog")]
    return []


def _missing_tracker(name: str) -> str:
    return pick(
        "--report-to {name} 需要先安装：pip install {name}",
        "--report-to {name} needs the package: pip install {name}",
        name=name,
    )


def build_manifest(
    config: TrainConfig,
    spec: ModelSpec,
    data: PreparedData,
    runtime: Runtime,
    trainer: Any,
    train_output: Any,
    seconds: float,
) -> dict[str, Any]:
    """Describe the run so that ``check_adapter_manifest`` and people can tell how the adapter was made."""
    state = trainer.state
    eval_losses = [entry["eval_loss"] for entry in state.log_history if "eval_loss" in entry]
    train_losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    return new_manifest(
        base_model={"name": spec.name, "source": spec.source, "revision": spec.revision, "gguf_file": spec.gguf_file},
        prompt=data.prompt,
        thinking=config.thinking,
        max_length=config.max_length,
        max_completion_tokens=max(data.train.max_completion_tokens, data.val.max_completion_tokens),
        masking=data.masking(),
        seed=config.seed,
        lora=lora_settings(config),
        training={
            "epochs": config.epochs,
            "max_steps": config.max_steps,
            "max_minutes": config.max_minutes,
            "global_step": state.global_step,
            "lr": config.lr,
            "scheduler": config.scheduler,
            "warmup_ratio": config.warmup_ratio,
            "batch_size": config.batch_size,
            "grad_accum": config.grad_accum,
            "device": runtime.device,
            "precision": runtime.precision,
            "gradient_checkpointing": runtime.gradient_checkpointing,
            "resumed_from": config.resume,
        },
        data=data.describe(),
        metrics={
            "train_loss": train_losses[-1] if train_losses else None,
            "first_train_loss": train_losses[0] if train_losses else None,
            "mean_train_loss": getattr(train_output, "training_loss", None),
            "eval_loss": eval_losses[-1] if eval_losses else None,
            "best_eval_loss": state.best_metric,
            "best_checkpoint": state.best_model_checkpoint,
            "seconds": round(seconds, 1),
        },
        extra=config.extra,
    )
