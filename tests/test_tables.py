from __future__ import annotations

from rich.console import Console

from extractor.tables import rows_table, summary_table

ROWS = [
    {"id": "r1", "status": "valid", "field_status": {"姓名": "present", "年龄": "not_mentioned"}, "n_attempts": 1,
     "prompt_tokens": 300, "completion_tokens": 40, "seconds": 1.25, "errors": []},
    {"id": "r2", "status": "invalid", "field_status": {"姓名": "present", "年龄": "failed"}, "n_attempts": 2,
     "prompt_tokens": 610, "completion_tokens": 90, "seconds": 3.5,
     "errors": [{"path": "$.年龄", "message": "年龄: not an integer"}, {"path": "$.性别", "message": "missing"}]},
]


def render(renderable) -> str:
    console = Console(width=100, no_color=True, force_terminal=False, color_system=None, record=True)
    console.print(renderable)
    return console.export_text()


def test_rows_table_exact_text() -> None:
    expected = """\
                                        Extraction results                                         
┏━━━━━━━━┳━━━━━━━━━┳━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓
┃ Record ┃ Status  ┃ Filled ┃ Attempts ┃ Tokens in/out ┃ Seconds ┃ First error                    ┃
┡━━━━━━━━╇━━━━━━━━━╇━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┩
│ r1     │ valid   │    1/2 │        1 │        300/40 │     1.2 │                                │
│ r2     │ invalid │    1/2 │        2 │        610/90 │     3.5 │ 年龄: not an integer (+1 more) │
└────────┴─────────┴────────┴──────────┴───────────────┴─────────┴────────────────────────────────┘
"""
    assert render(rows_table(ROWS)) == expected


def test_summary_table_counts() -> None:
    text = render(summary_table(ROWS, wall_seconds=10.0))
    assert "│ Records             │    2 │" in text
    assert "│ valid               │    1 │" in text
    assert "│ invalid             │    1 │" in text
    assert "│ Completion tokens/s │ 13.0 │" in text
