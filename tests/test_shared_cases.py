"""Every case of the shared model-output table gives exactly its accepted outcome through ``extractor parse``.

``CASES_DIR`` (a folder beside the repository, present in CI) contains ``llm_outputs.jsonl``, one raw
completion per line with ``accept`` (the expected JSON first, or null for a rejection), and the
``schema.json`` the cases are checked against.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from extractor.cli import app

CASES_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "cases"
runner = CliRunner()


def load_cases() -> list[dict]:
    if not CASES_DIR.is_dir():
        return []
    lines = (CASES_DIR / "llm_outputs.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


CASES = load_cases()
pytestmark = pytest.mark.skipif(not CASES_DIR.is_dir(), reason=f"shared cases folder {CASES_DIR} is absent")


def test_cases_found() -> None:
    assert len(CASES) >= 12


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['kind']}" for i, c in enumerate(CASES)])
def test_case_outcome(case: dict) -> None:
    result = runner.invoke(app, ["parse", "--schema", str(CASES_DIR / "schema.json"), "-"], input=case["raw_output"])
    expected = case["accept"][0]
    if expected is None:
        assert result.exit_code == 1, result.stdout
        assert result.stdout == ""
        assert result.stderr.strip()
    else:
        assert result.exit_code == 0, result.stderr
        parsed = json.loads(result.stdout)
        assert parsed == expected
        # Equal as JSON text too, so 45 and 45.0 count as different.
        assert json.dumps(parsed, sort_keys=True) == json.dumps(expected, sort_keys=True)
