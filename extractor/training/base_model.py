"""Loading a base model for training or merging, including a GGUF file dequantized into ordinary tensors."""

from __future__ import annotations

import logging
from typing import Any

from ..decoding.loading import ModelSpec
from ..errors import SetupError
from ..i18n import pick

logger = logging.getLogger(__name__)


def load_dense_model(spec: ModelSpec, dtype: Any, trust_remote_code: bool = False) -> Any:
    """Load the base model with every weight as a plain floating-point tensor.

    transformers dequantizes a GGUF file into ordinary tensors but keeps its quantizer attached, and the Trainer
    and ``save_pretrained`` then treat the model as quantized. The quantizer is dropped once the weights are
    checked to be dense.
    """
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(
            spec.location, dtype=dtype, trust_remote_code=trust_remote_code, **spec.load_kwargs()
        )
    except OSError as exc:
        raise SetupError(str(exc)) from exc
    if spec.gguf_file:
        release_gguf_quantizer(model, spec.gguf_file)
    return model


def release_gguf_quantizer(model: Any, name: str) -> None:
    """Detach the GGUF quantizer from a model whose weights were all dequantized at load time."""
    packed = [n for n, p in model.named_parameters() if not p.dtype.is_floating_point]
    if packed:
        raise SetupError(
            pick(
                "GGUF 文件 {name} 的权重以量化块形式加载（{param} 等），无法训练或合并。请卸载 kernels 包让 transformers 解量化，"
                "或改用 Hugging Face 格式的模型文件夹。",
                "The weights of GGUF file {name} were loaded as quantized blocks ({param} and others), which cannot be "
                "trained or merged. Uninstall the kernels package so that transformers dequantizes them, or use a "
                "Hugging Face model folder.",
                name=name, param=packed[0],
            )
        )
    model.hf_quantizer = None
    model.is_quantized = False
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    logger.debug("dropped the GGUF quantizer of %s; its weights are dense", name)
