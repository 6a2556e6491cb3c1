"""Merging a LoRA adapter into its base model, with a generation config that stops on ``<|im_end|>``.

A merged model is an ordinary Hugging Face folder: ``extract --model MERGED`` loads it without peft. Two
settings make a merged chat model seem to ignore its training, and both are fixed here. The first is a
generation config that stops only on the base model's ``<|endoftext|>``, so generation runs on past
``<|im_end|>``. The second is a pad token equal to the stop token. The adapter's manifest is copied, so the merged folder still records how it was trained.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..decoding.loading import attach_adapter, load_tokenizer, resolve_model
from ..decoding.transformers_backend import END_OF_TURN, stop_token_ids
from ..errors import InputError
from ..i18n import pick
from .base_model import load_dense_model
from .manifest import check_base_model, read_manifest, write_manifest
from .tokenization import choose_pad_id

logger = logging.getLogger(__name__)

DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")


@dataclass
class MergeResult:
    out: Path
    eos_token_ids: list[int]
    pad_token_id: int
    dtype: str
    warnings: list[str] = field(default_factory=list)


def merge_adapter(
    model: str,
    adapter: str | Path,
    out: str | Path,
    hub: str = "modelscope",
    revision: str | None = None,
    dtype: str = "auto",
    trust_remote_code: bool = False,
) -> MergeResult:
    """Load the base model, apply the adapter with ``merge_and_unload`` and save model, tokenizer and manifest."""
    out = _prepare_out(out)
    manifest = read_manifest(adapter)
    model_warnings = check_base_model(manifest or {}, model)

    spec = resolve_model(model, hub=hub, revision=revision)
    tokenizer = load_tokenizer(spec, trust_remote_code=trust_remote_code)
    torch_dtype = _merge_dtype(dtype, spec.gguf_file is not None)
    base = load_dense_model(spec, torch_dtype, trust_remote_code)
    with warnings.catch_warnings():
        # peft 0.21 reads the deprecated is_gradient_checkpointing property, and transformers 5 warns about it.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        merged = attach_adapter(base, adapter).merge_and_unload()

    eos_ids, pad_id = fix_generation_config(merged, tokenizer)
    merged.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    if manifest is not None:
        write_manifest(out, {**manifest, "merged": {"base_model": model, "adapter": str(adapter), "dtype": str(merged.dtype)}})
    logger.info("merged %s into %s and saved to %s", adapter, model, out)
    return MergeResult(out=out, eos_token_ids=eos_ids, pad_token_id=pad_id, dtype=str(merged.dtype), warnings=model_warnings)


def fix_generation_config(model: Any, tokenizer: Any) -> tuple[list[int], int]:
    """Make generation stop on ``<|im_end|>`` (and the old eos ids) and pad with a token that is not a stop token."""
    stops = stop_token_ids(tokenizer, model)
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if end_of_turn in stops:
        stops.remove(end_of_turn)
        stops.insert(0, end_of_turn)
    pad_id = choose_pad_id(tokenizer)

    model.generation_config.eos_token_id = stops if len(stops) > 1 else stops[0]
    model.generation_config.pad_token_id = pad_id
    model.config.pad_token_id = pad_id
    if pad_id not in stops:
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(pad_id)
    return stops, pad_id


def _prepare_out(out: str | Path) -> Path:
    out = Path(out)
    if (out / "config.json").exists():
        raise InputError(
            pick(
                "{out} 中已有模型。请换一个 --out，或先删除它。",
                "{out} already holds a model. Choose another --out, or delete it first.",
                out=out,
            )
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def _merge_dtype(dtype: str, from_gguf: bool) -> Any:
    """``auto`` keeps the dtype stored with the base model; a GGUF base is dequantized to float32."""
    import torch

    if dtype not in DTYPES:
        raise InputError(
            pick("未知的 dtype：{dtype}。可选：{choices}。", "Unknown dtype: {dtype}. Choose one of: {choices}.",
                 dtype=dtype, choices=", ".join(DTYPES))
        )
    if dtype == "auto":
        return torch.float32 if from_gguf else "auto"
    return getattr(torch, dtype)
