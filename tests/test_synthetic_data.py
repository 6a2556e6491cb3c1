"""Checks on the synthetic training set: reproducible from its seed, valid, grounded and varied."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extractor.schema import load_schema
from extractor.validation import validate

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
ADMISSION = load_schema(ROOT / "schemas" / "admission.json")
BASIC_INFO = load_schema(ROOT / "schemas" / "basic_info.json")
COUNTS = {"train": 160, "dev": 40}


def run_generator(out: Path, *extra: str, seed: int = 0) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, str(DATA / "generate.py"), "--seed", str(seed),
        "--train", str(COUNTS["train"]), "--dev", str(COUNTS["dev"]), "--out", str(out), *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def grounded_values(value: Any, spec: dict[str, Any], path: str = "$") -> Iterator[tuple[str, str]]:
    """Yield ``(path, string)`` for every value that the schema marks ``x-grounded``."""
    if spec.get("x-grounded") and isinstance(value, str):
        yield path, value
    if isinstance(value, dict):
        for name, child in spec.get("properties", {}).items():
            if name in value:
                yield from grounded_values(value[name], child, f"{path}.{name}")
    if isinstance(value, list) and isinstance(spec.get("items"), dict):
        for index, item in enumerate(value):
            yield from grounded_values(item, spec["items"], f"{path}[{index}]")


COMMITTED = {split: read_jsonl(DATA / f"{split}.jsonl") for split in COUNTS}
ALL_ROWS = COMMITTED["train"] + COMMITTED["dev"]


@pytest.fixture(scope="module")
def admission_rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("admission")
    result = run_generator(out, "--schema", "admission")
    assert result.returncode == 0, result.stderr
    return {split: read_jsonl(out / f"{split}.jsonl") for split in COUNTS}


def test_regenerated_files_identical(tmp_path: Path) -> None:
    result = run_generator(tmp_path)

    assert result.returncode == 0, result.stderr
    for split in COUNTS:
        assert (tmp_path / f"{split}.jsonl").read_bytes() == (DATA / f"{split}.jsonl").read_bytes(), split


def test_other_seed_differs(tmp_path: Path) -> None:
    result = run_generator(tmp_path, seed=1)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "train.jsonl").read_bytes() != (DATA / "train.jsonl").read_bytes()


def test_negative_count_rejected(tmp_path: Path) -> None:
    command = [sys.executable, str(DATA / "generate.py"), "--train", "-1", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 2
    assert "--train -1" in result.stderr
    assert not (tmp_path / "train.jsonl").exists()


def test_row_counts_and_ids() -> None:
    for split, count in COUNTS.items():
        ids = [row["id"] for row in COMMITTED[split]]
        assert ids == [f"syn-{split}-{i:04d}" for i in range(1, count + 1)]


def test_texts_unique_across_splits() -> None:
    texts = [row["text"] for row in ALL_ROWS]
    assert len(set(texts)) == len(texts)


def test_record_lengths() -> None:
    lengths = [len(row["text"]) for row in ALL_ROWS]
    assert 150 <= min(lengths)
    assert max(lengths) <= 400


def test_rows_valid_basic_info() -> None:
    invalid = {row["id"]: validate(row["fields"], BASIC_INFO) for row in ALL_ROWS}
    assert {k: v for k, v in invalid.items() if v} == {}
    assert all(list(row["fields"]) == list(BASIC_INFO.data["properties"]) for row in ALL_ROWS)


def test_rows_grounded() -> None:
    missing = [
        (row["id"], path)
        for row in ALL_ROWS
        for path, value in grounded_values(row["fields"], BASIC_INFO.data)
        if value not in row["text"]
    ]
    assert missing == []


def test_age_and_sex_consistent_with_text() -> None:
    for row in ALL_ROWS:
        fields, text = row["fields"], row["text"]
        if fields["年龄"] is None:
            assert "岁" not in text, row["id"]
            assert "年龄" not in text, row["id"]
            assert "个月" not in text, row["id"]
        elif fields["年龄"] > 0:
            assert re.search(rf"(年龄[:：]{fields['年龄']}|\D{fields['年龄']} ?岁)", text), row["id"]
        if fields["性别"] is None:
            assert "男" not in text, row["id"]
            assert "女" not in text, row["id"]
        else:
            assert fields["性别"] in text, row["id"]


def test_surface_forms_vary() -> None:
    texts = [row["text"] for row in ALL_ROWS]
    fields = [row["fields"] for row in ALL_ROWS]

    assert any(t.startswith("###") for t in texts)
    assert any(t.startswith("【") for t in texts)
    assert any(re.search(r"年龄[:：]\d+\s", t) for t in texts), "an age without 岁"
    assert any(re.search(r"，\d+ ?岁", t) for t in texts), "an age inside a sentence"
    assert any("男性" in t or "女性" in t for t in texts)
    assert any(f["年龄"] is None for f in fields)
    assert any(f["性别"] is None for f in fields)
    assert len({f["科别"] for f in fields}) >= 20
    assert max(len(f["入院诊断"]) for f in fields) >= 3


def test_admission_same_texts(admission_rows: dict[str, list[dict[str, Any]]]) -> None:
    for split in COUNTS:
        assert [r["text"] for r in admission_rows[split]] == [r["text"] for r in COMMITTED[split]]


def test_admission_projects_to_basic(admission_rows: dict[str, list[dict[str, Any]]]) -> None:
    names = list(BASIC_INFO.data["properties"])
    for split in COUNTS:
        for full, basic in zip(admission_rows[split], COMMITTED[split], strict=True):
            assert {name: full["fields"][name] for name in names} == basic["fields"], full["id"]


def test_admission_rows_valid_and_grounded(admission_rows: dict[str, list[dict[str, Any]]]) -> None:
    rows = admission_rows["train"] + admission_rows["dev"]
    invalid = {row["id"]: validate(row["fields"], ADMISSION) for row in rows}
    missing = [
        (row["id"], path)
        for row in rows
        for path, value in grounded_values(row["fields"], ADMISSION.data)
        if value not in row["text"]
    ]

    assert {k: v for k, v in invalid.items() if v} == {}
    assert missing == []
    for row in rows:
        for name in ("主诉", "现病史", "既往史", "过敏史"):
            assert row["fields"][name] is None or row["fields"][name] in row["text"], (row["id"], name)


def test_admission_orders_vary(admission_rows: dict[str, list[dict[str, Any]]]) -> None:
    rows = admission_rows["train"] + admission_rows["dev"]
    orders = [row["fields"]["用药"] for row in rows]

    assert any(o is None for o in orders), "a record without orders"
    assert any(o == [] for o in orders), "a record that orders no drugs"
    assert any("\t" in row["text"] and row["fields"]["用药"] for row in rows), "tab-separated orders"
    assert any(row["fields"]["生命体征"] is None for row in rows)
