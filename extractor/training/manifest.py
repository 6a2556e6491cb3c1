"""The adapter manifest: how an adapter was trained, so ``extract`` can warn when its settings differ.

``extractor_manifest.json`` sits beside ``adapter_config.json``. It records the base model, the prompt stamp
(template, examples, schema and system prompt), thinking mode, lengths, masking, seed, LoRA settings and
metrics. This module imports no torch, so ``extract`` can call ``check_adapter_manifest`` before loading a model.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ..errors import InputError
from ..i18n import pick

logger = logging.getLogger(__name__)

MANIFEST_NAME = "extractor_manifest.json"
MANIFEST_FORMAT = 1

# Prompt stamp keys that change the prompt, with their names in messages.
_PROMPT_KEYS: tuple[tuple[str, str, str], ...] = (
    ("template_sha256", "模板", "template"),
    ("examples_sha256", "少样本示例", "few-shot examples"),
    ("examples_mode", "示例模式", "examples mode"),
    ("schema_sha256", "schema", "schema"),
)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("emr-extractor")
    except PackageNotFoundError:
        return "unknown"


def new_manifest(**sections: Any) -> dict[str, Any]:
    """Start a manifest with the format, creation time and package version, then the given sections."""
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {"format": MANIFEST_FORMAT, "created": created, "extractor_version": package_version(), **sections}


def write_manifest(folder: str | Path, manifest: Mapping[str, Any]) -> Path:
    path = Path(folder) / MANIFEST_NAME
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """Return the manifest in an adapter (or merged model) folder, or None when the folder has none."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(
            pick(
                "{path} 不是合法的 JSON（第 {line} 行）。请删除它或重新训练。",
                "{path} is not valid JSON (line {line}). Delete it or train again.",
                path=path, line=exc.lineno,
            )
        ) from exc
    if not isinstance(data, dict):
        raise InputError(pick("{path} 应为 JSON 对象。", "{path} must contain a JSON object.", path=path))
    return data


def check_adapter_manifest(
    adapter_dir: str | Path, builder_stamp: Mapping[str, Any], model_name: str, thinking: bool
) -> list[str]:
    """Compare an adapter's manifest with the current extraction settings and return one warning per mismatch.

    ``builder_stamp`` is ``PromptBuilder.stamp()``, optionally with ``schema_sha256`` added. Returns an empty list
    when everything matches. A missing manifest is itself a warning, because nothing can be checked.
    """
    manifest = read_manifest(adapter_dir)
    if manifest is None:
        return [
            pick(
                "adapter {path} 没有 {name}，无法确认它是用相同的提示词训练的。",
                "Adapter {path} has no {name}, so it cannot be checked against the current prompt settings.",
                path=adapter_dir, name=MANIFEST_NAME,
            )
        ]

    warnings: list[str] = []
    if int(manifest.get("format", 0)) > MANIFEST_FORMAT:
        warnings.append(
            pick("adapter 清单格式比本程序新，部分检查可能不准。", "The adapter manifest has a newer format than this program; some checks may be incomplete.")
        )
    warnings.extend(check_base_model(manifest, model_name))
    warnings.extend(_check_prompt(manifest, builder_stamp))
    trained_thinking = bool(manifest.get("thinking", False))
    if trained_thinking != bool(thinking):
        warnings.append(
            pick(
                "adapter 训练时 thinking={trained}，本次抽取 thinking={current}：提示词结尾不同，输出可能变差。",
                "The adapter was trained with thinking={trained} but extraction uses thinking={current}: the prompt "
                "ends differently, so outputs may get worse.",
                trained=trained_thinking, current=bool(thinking),
            )
        )
    for warning in warnings:
        logger.debug("manifest check: %s", warning)
    return warnings


def check_base_model(manifest: Mapping[str, Any], model_name: str) -> list[str]:
    """Warn when the manifest's base model is not ``model_name`` (compared by last path component)."""
    trained = str((manifest.get("base_model") or {}).get("name") or "")
    if not trained or _model_key(trained) == _model_key(model_name):
        return []
    return [
        pick(
            "adapter 是在基座模型 {trained} 上训练的，本次抽取使用 {current}。adapter 只对训练时的基座模型有效。",
            "The adapter was trained on base model {trained}, but extraction uses {current}. An adapter only fits "
            "the base model it was trained on.",
            trained=trained, current=model_name,
        )
    ]


def _model_key(name: str) -> str:
    """Reduce a hub id or a path to its last component, so ``Qwen/Qwen3-1.7B`` matches ``/models/Qwen3-1.7B``."""
    cleaned = name.strip().rstrip("/\\")
    last = PureWindowsPath(cleaned).name if "\\" in cleaned else PurePosixPath(cleaned).name
    return last.lower()


def _check_prompt(manifest: Mapping[str, Any], builder_stamp: Mapping[str, Any]) -> list[str]:
    prompt = manifest.get("prompt")
    if not isinstance(prompt, Mapping):
        return [
            pick(
                "adapter 清单没有记录训练时的提示词（模板、示例），无法检查是否与本次一致。",
                "The adapter manifest does not record the training prompt (template, examples), so it cannot be "
                "compared with the current one.",
            )
        ]
    warnings = []
    for key, zh_name, en_name in _PROMPT_KEYS:
        trained, current = prompt.get(key), builder_stamp.get(key)
        if trained is None or current is None or trained == current:
            continue
        warnings.append(
            pick(
                "本次抽取的{zh_name}与训练 adapter 时不同（训练：{trained}，本次：{current}）。请使用相同设置，或重新训练。",
                "The {en_name} differs from the one the adapter was trained with (trained: {trained}, now: {current}). "
                "Use the same setting, or train again.",
                zh_name=zh_name, en_name=en_name, trained=_short(prompt, key), current=_short(builder_stamp, key),
            )
        )
    return warnings


def _short(stamp: Mapping[str, Any], key: str) -> str:
    """Show a stamp value briefly: a hash as its first 12 characters next to the file it came from."""
    value = str(stamp.get(key))
    if not key.endswith("_sha256"):
        return value
    source_key = {"template_sha256": "template", "examples_sha256": "examples", "schema_sha256": "schema"}[key]
    source = stamp.get(source_key)
    return f"{source} ({value[:12]})" if source else value[:12]
