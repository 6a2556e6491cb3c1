"""Training and validation samples from either raw annotated records or converted ``messages`` JSONL."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..decoding.transformers_backend import stop_token_ids
from ..errors import InputError
from ..i18n import pick
from ..prompts import PromptBuilder
from ..records import TRUNCATION_MARKER
from .config import TrainConfig
from .data import Dropped, convert_records, detect_format, prompt_stamp, read_conversion, read_training_rows, split_rows
from .tokenization import EncodedSet, SampleEncoder, choose_pad_id

logger = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """Tokenized samples plus what the manifest needs to know about them."""

    train: EncodedSet
    val: EncodedSet
    prompt: dict[str, Any] | None
    """The prompt stamp (template, examples, schema, system prompt), or None when unknown."""
    train_path: str
    data_format: str
    val_source: str
    dropped: list[Dropped] = field(default_factory=list)
    """Records dropped before tokenization (conversion); tokenization drops are in ``train``/``val``."""
    masking_info: dict[str, Any] = field(default_factory=dict)

    @property
    def all_dropped(self) -> list[Dropped]:
        return [*self.dropped, *self.train.dropped, *self.val.dropped]

    def describe(self) -> dict[str, Any]:
        return {
            "train": self.train_path,
            "format": self.data_format,
            "val": self.val_source,
            "n_train": len(self.train.samples),
            "n_val": len(self.val.samples),
            "dropped": dict(Counter(d.reason for d in self.all_dropped)),
            "cut_to_fit": self.train.cut + self.val.cut,
        }

    def masking(self) -> dict[str, Any]:
        return {**self.masking_info, "completion_prefix": self.train.completion_prefix}

    def summary_line(self) -> str:
        return pick(
            "训练数据：训练 {train} 条，验证 {val} 条；丢弃 {dropped} 条，{cut} 条病历为适应 --max-length 截去了中间部分。",
            "Training data: {train} train and {val} validation samples; {dropped} dropped, {cut} record(s) cut in "
            "the middle to fit --max-length.",
            train=len(self.train.samples), val=len(self.val.samples), dropped=len(self.all_dropped),
            cut=self.train.cut + self.val.cut,
        )


def prepare_data(config: TrainConfig, tokenizer: Any, builder: PromptBuilder | None) -> PreparedData:
    """Read, convert if needed, split and tokenize the training and validation data."""
    if not config.data:
        raise InputError(pick("请用 --data 指定训练数据。", "Pass the training data with --data."))
    data_path = config.data
    data_format = detect_format(data_path)
    prompt: dict[str, Any] | None
    if data_format == "raw":
        raw_builder = _require_builder(builder, data_path)
        train_rows, val_rows, dropped, val_source = _raw_rows(config, data_path, raw_builder)
        prompt = prompt_stamp(raw_builder)
    else:
        train_rows, val_rows, dropped, val_source = _converted_rows(config, data_path, builder)
        prompt = _converted_prompt(data_path, train_rows, builder)

    encoder = SampleEncoder(tokenizer, config.max_length, thinking=config.thinking)
    train = encoder.encode_rows(train_rows)
    val = encoder.encode_rows(val_rows)
    if not train.samples:
        raise InputError(
            pick(
                "没有可用的训练样本：{path} 中的记录全部被丢弃（见上表）。",
                "No training samples are left: every record in {path} was dropped (see the table above).",
                path=data_path,
            )
        )
    return PreparedData(
        train=train, val=val, prompt=prompt, train_path=data_path, data_format=data_format,
        val_source=val_source, dropped=dropped, masking_info=_masking_info(tokenizer),
    )


def _require_builder(builder: PromptBuilder | None, path: str) -> PromptBuilder:
    if builder is None:
        raise InputError(
            pick(
                "{path} 是原始标注数据，需要 --schema（以及与 extract 相同的 --template/--examples）来构建提示词。",
                "{path} holds raw annotated records, which need --schema (and the same --template/--examples as "
                "extract) to build prompts.",
                path=path,
            )
        )
    return builder


Rows = list[dict[str, Any]]


def _raw_rows(config: TrainConfig, data_path: str, builder: PromptBuilder) -> tuple[Rows, Rows, list[Dropped], str]:
    conversion = convert_records(data_path, builder)
    dropped = list(conversion.dropped)
    if config.val:
        val_rows, val_dropped = _load_rows(config.val, builder)
        return conversion.rows, val_rows, dropped + val_dropped, config.val
    train_rows, val_rows = split_rows(conversion.rows, config.val_ratio, config.seed)
    return train_rows, val_rows, dropped, f"split {config.val_ratio} seed {config.seed}"


def _converted_rows(config: TrainConfig, data_path: str, builder: PromptBuilder | None) -> tuple[Rows, Rows, list[Dropped], str]:
    train_rows = read_training_rows(data_path)
    val_path = config.val
    if val_path is None:
        sibling = Path(data_path).with_name("val.jsonl")
        if sibling.is_file() and sibling.stat().st_size > 0 and sibling != Path(data_path):
            val_path = str(sibling)
            logger.info("using %s, written beside the training data by data convert, for validation", sibling)
    if val_path is None:
        return train_rows, [], [], "none"
    val_rows, dropped = _load_rows(val_path, builder)
    return train_rows, val_rows, dropped, val_path


def _load_rows(path: str, builder: PromptBuilder | None) -> tuple[Rows, list[Dropped]]:
    if detect_format(path) == "messages":
        return read_training_rows(path), []
    conversion = convert_records(path, _require_builder(builder, path))
    return conversion.rows, conversion.dropped


def _converted_prompt(data_path: str, rows: Rows, builder: PromptBuilder | None) -> dict[str, Any] | None:
    """Return the prompt stamp of converted data, checking it against ``builder`` when both are known."""
    conversion = read_conversion(data_path)
    recorded = conversion.get("prompt") if conversion else None
    if builder is None:
        return recorded
    sample = next((row for row in rows if isinstance(row.get("text"), str)), None)
    if sample is not None and builder.messages(sample["text"]) != sample["messages"][:-1]:
        raise InputError(
            pick(
                "{path} 中的提示词与本次 --schema/--template/--examples 构建的不同。请用相同设置重新运行 data convert，"
                "或去掉这些选项直接用转换好的数据。",
                "The prompts in {path} differ from those that --schema/--template/--examples build now. Run data "
                "convert again with the same settings, or drop these options to train on the converted data as is.",
                path=data_path,
            )
        )
    return recorded or prompt_stamp(builder)


def _masking_info(tokenizer: Any) -> dict[str, Any]:
    stops = stop_token_ids(tokenizer)
    return {
        "mode": "completion_only",
        "labels": "completion tokens through the first stop token; prompt tokens are -100",
        "stop_tokens": tokenizer.convert_ids_to_tokens(stops),
        "pad_token": tokenizer.convert_ids_to_tokens(choose_pad_id(tokenizer)),
        "truncation": "middle of the record text",
        "truncation_marker": TRUNCATION_MARKER,
    }
