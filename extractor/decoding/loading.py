"""Finding and loading a base model (local folder, GGUF file, ModelScope or Hugging Face id) and an adapter."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import InputError, SetupError
from ..i18n import pick

logger = logging.getLogger(__name__)

Hub = Literal["modelscope", "hf"]
HUBS: tuple[str, ...] = ("modelscope", "hf")

# Qwen3-1.7B: Apache-2.0, strong Chinese, a 32k-token context that fits long inpatient records, about 3.4 GB
# in bf16 so it runs on a small GPU, and slow but workable on CPU. Thinking is switched off in its chat template.
DEFAULT_MODEL = "Qwen/Qwen3-1.7B"


@dataclass(frozen=True)
class ModelSpec:
    """Location of a base model's files."""

    name: str
    """The value the user passed: a path or a hub id."""
    source: Literal["local", "gguf", "modelscope", "hf"]
    location: str
    """Local folder to load from, or the hub id for ``hf`` (transformers resolves its own cache)."""
    gguf_file: str | None = None
    revision: str | None = None

    def load_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.gguf_file:
            kwargs["gguf_file"] = self.gguf_file
        if self.source == "hf" and self.revision:
            kwargs["revision"] = self.revision
        return kwargs


def resolve_model(model: str, hub: str = "modelscope", revision: str | None = None) -> ModelSpec:
    """Decide what ``--model`` names and make its files available locally.

    A path to a ``.gguf`` file or to a folder with ``config.json`` loads as is. Anything else is a hub id:
    ModelScope (downloaded with ``snapshot_download`` into its usual cache) or, with ``hub="hf"``, Hugging Face.
    """
    if hub not in HUBS:
        raise InputError(pick("未知的模型仓库：{hub}。可选：modelscope、hf。", "Unknown hub: {hub}. Choose modelscope or hf.", hub=hub))

    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise InputError(
                pick(
                    "--model 指向的文件 {path} 不是 .gguf。请传入 GGUF 文件，或包含 config.json 的模型文件夹。",
                    "--model points to {path}, which is not a .gguf file. Pass a GGUF file or a model folder with config.json.",
                    path=path,
                )
            )
        return ModelSpec(name=model, source="gguf", location=str(path.parent), gguf_file=path.name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(
                pick(
                    "模型文件夹 {path} 中没有 config.json。请传入 Hugging Face 格式的模型文件夹或 .gguf 文件。",
                    "Model folder {path} has no config.json. Pass a Hugging Face model folder or a .gguf file.",
                    path=path,
                )
            )
        return ModelSpec(name=model, source="local", location=str(path))
    if _looks_like_path(model):
        raise InputError(
            pick(
                "找不到模型：{path}。请检查路径，或传入 ModelScope 模型 ID（如 {default}）。",
                "Model not found: {path}. Check the path, or pass a ModelScope model id such as {default}.",
                path=model, default=DEFAULT_MODEL,
            )
        )
    if hub == "hf":
        return ModelSpec(name=model, source="hf", location=model, revision=revision)
    return ModelSpec(name=model, source="modelscope", location=_modelscope_download(model, revision), revision=revision)


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.endswith(".gguf") or model.count("/") > 1 or "\\" in model


def _modelscope_download(model_id: str, revision: str | None) -> str:
    try:
        from modelscope import snapshot_download
    except ImportError as exc:
        raise SetupError(
            pick(
                "未安装 modelscope，无法下载 {model}。请运行 pip install modelscope，或用 --model 传入本地路径。",
                "modelscope is not installed, so {model} cannot be downloaded. Run pip install modelscope, "
                "or pass a local path with --model.",
                model=model_id,
            )
        ) from exc

    try:
        return str(snapshot_download(model_id, revision=revision, local_files_only=True))
    except Exception:  # modelscope raises its own error types for a cache miss; fall through to a download
        logger.info("model %s is not in the ModelScope cache; downloading", model_id)
    try:
        return str(snapshot_download(model_id, revision=revision))
    except Exception as exc:  # network, auth and not-found errors all end the same way for the user
        raise SetupError(_offline_message(model_id)) from exc


def _offline_message(model: str) -> str:
    return pick(
        "模型 {model} 不在本地缓存中，且无法连接模型仓库下载；请用 --model 传入本地模型文件夹或 .gguf 文件的路径。",
        "Model {model} is not cached and the hub cannot be reached; pass a local model folder or .gguf file with --model.",
        model=model,
    )


def choose_device_and_dtype(device: str = "auto", dtype: str = "auto") -> tuple[str, Any]:
    """Pick the device and dtype: fp32 on CPU, bf16 on GPUs that support it, fp16 on older GPUs."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype != "auto":
        try:
            return device, getattr(torch, dtype)
        except AttributeError:
            raise InputError(
                pick("未知的 dtype：{dtype}。可选：auto、float32、bfloat16、float16。",
                     "Unknown dtype: {dtype}. Choose auto, float32, bfloat16 or float16.", dtype=dtype)
            ) from None
    if device.startswith("cuda"):
        return device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return device, torch.float32


def load_tokenizer(spec: ModelSpec, trust_remote_code: bool = False) -> Any:
    """Load the tokenizer, padded on the left for batched generation."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.location, trust_remote_code=trust_remote_code, **spec.load_kwargs())
    except OSError as exc:
        raise SetupError(_offline_message(spec.name) if spec.source == "hf" else str(exc)) from exc
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    spec: ModelSpec,
    adapter: str | Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Load the base model (plus a peft LoRA adapter when given) and its tokenizer, ready for ``generate``."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as transformers_logging

    # Weight-loading progress bars would interleave with our own progress display.
    transformers_logging.disable_progress_bar()
    device, torch_dtype = choose_device_and_dtype(device, dtype)
    tokenizer = load_tokenizer(spec, trust_remote_code)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            spec.location, dtype=torch_dtype, trust_remote_code=trust_remote_code, **spec.load_kwargs()
        )
    except OSError as exc:
        raise SetupError(_offline_message(spec.name) if spec.source == "hf" else str(exc)) from exc
    if adapter is not None:
        model = attach_adapter(model, adapter)
    model.to(device)
    model.eval()
    logger.info("loaded %s (%s) on %s as %s", spec.name, spec.source, device, torch_dtype)
    return model, tokenizer


def attach_adapter(model: Any, adapter: str | Path) -> Any:
    """Put a peft LoRA adapter from a folder on top of the base model."""
    adapter_path = Path(adapter)
    if not (adapter_path / "adapter_config.json").is_file():
        raise InputError(
            pick(
                "adapter 文件夹 {path} 中没有 adapter_config.json。请传入 extractor train 的输出文件夹。",
                "Adapter folder {path} has no adapter_config.json. Pass the output folder of extractor train.",
                path=adapter_path,
            )
        )
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_path))
