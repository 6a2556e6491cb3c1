"""The ``extractor`` command line: one Typer app, one module per command group."""

from __future__ import annotations

import logging

import typer

from ..i18n import pick

app = typer.Typer(
    name="extractor",
    help=pick(
        "把中文病历文本抽取为经过校验的结构化 JSON（本地 Qwen 模型，可加 LoRA adapter）。",
        "Turn Chinese medical-record text into validated, structured JSON with a local Qwen model and optional LoRA adapter.",
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def _configure(
    verbose: bool = typer.Option(False, "--verbose", "-v", help=pick("输出调试日志。", "Print debug logs.")),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    app()


# Command modules register themselves on ``app`` when imported.
from . import extract_cmd  # noqa: E402,F401
from . import eval_cmd  # noqa: E402,F401
from . import parse_cmd  # noqa: E402,F401
from . import train_cmd  # noqa: E402,F401
from . import compare_cmd  # noqa: E402,F401
