"""Choosing the training device and precision, and rejecting combinations that would make the loss NaN."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..errors import InputError, SetupError
from ..i18n import pick

logger = logging.getLogger(__name__)

# fp16 tensor cores arrived with Volta (compute capability 7.0). On older GPUs fp16 training is slow and its
# narrow range overflows in attention and the loss, which shows up as NaN.
MIN_FP16_CAPABILITY = (7, 0)


@dataclass(frozen=True)
class Runtime:
    """The device, precision and checkpointing of a training run."""

    device: str
    """``cpu`` or ``cuda``."""
    precision: str
    """``fp32``, ``bf16`` or ``fp16``: the base model's dtype and the Trainer's mixed-precision mode."""
    gradient_checkpointing: bool

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"

    @property
    def fp16(self) -> bool:
        return self.precision == "fp16"

    @property
    def dtype(self) -> Any:
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]


def choose_runtime(device: str = "auto", precision: str = "auto", gradient_checkpointing: bool | None = None) -> Runtime:
    """Pick the device and precision, or raise ``InputError`` for a precision the hardware cannot train in.

    ``auto`` precision is bf16 on GPUs that support it, fp16 on other GPUs with fp16 tensor cores, fp32
    otherwise. Gradient checkpointing defaults to on for GPUs (memory is the limit there) and off on CPU.
    """
    import torch

    cuda = torch.cuda.is_available()
    if device == "auto":
        device = "cuda" if cuda else "cpu"
    if device == "cuda" and not cuda:
        raise SetupError(
            pick(
                "指定了 --device cuda，但 torch 找不到可用的 GPU。请安装 CUDA 版 torch，或用 --device cpu。",
                "--device cuda was requested but torch finds no usable GPU. Install a CUDA build of torch, or use --device cpu.",
            )
        )

    if precision == "auto":
        precision = _auto_precision(device)
    elif precision == "fp16":
        _check_fp16(device)
    elif precision == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
        raise InputError(
            pick(
                "这块 GPU 不支持 bf16。请改用 --fp16，或不指定精度由程序选择。",
                "This GPU does not support bf16. Use --fp16, or leave the precision out to let the program choose.",
            )
        )

    checkpointing = device == "cuda" if gradient_checkpointing is None else gradient_checkpointing
    runtime = Runtime(device=device, precision=precision, gradient_checkpointing=checkpointing)
    logger.info("training on %s in %s (gradient checkpointing %s)", device, precision, checkpointing)
    return runtime


def _auto_precision(device: str) -> str:
    import torch

    if device != "cuda":
        return "fp32"
    if torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp16" if torch.cuda.get_device_capability() >= MIN_FP16_CAPABILITY else "fp32"


def _check_fp16(device: str) -> None:
    import torch

    if device != "cuda":
        raise InputError(
            pick(
                "CPU 上不能用 --fp16 训练（fp16 混合精度需要 GPU，在 CPU 上损失会变成 NaN 或直接报错）。"
                "请去掉 --fp16（CPU 默认 fp32），或在 GPU 上训练。",
                "--fp16 cannot train on CPU (fp16 mixed precision needs a GPU; on CPU the loss turns NaN or training "
                "fails). Drop --fp16 (CPU uses fp32), or train on a GPU.",
            )
        )
    capability = torch.cuda.get_device_capability()
    if capability < MIN_FP16_CAPABILITY:
        raise InputError(
            pick(
                "这块 GPU（计算能力 {major}.{minor}）没有 fp16 张量核心，fp16 训练的损失容易变成 NaN。请去掉 --fp16 用 fp32。",
                "This GPU (compute capability {major}.{minor}) has no fp16 tensor cores, and fp16 training tends to "
                "turn the loss NaN there. Drop --fp16 to train in fp32.",
                major=capability[0], minor=capability[1],
            )
        )
