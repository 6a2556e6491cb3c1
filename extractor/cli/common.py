"""Helpers shared by the CLI commands: error reporting and console set-up."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import ExtractorError
from ..i18n import pick

console = Console()
error_console = Console(stderr=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn this package's errors into one clear message on stderr and the error's exit code, with no traceback."""
    try:
        yield
    except ExtractorError as exc:
        error_console.print(f"[bold red]{pick('错误', 'Error')}:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(code=exc.exit_code) from None
    except KeyboardInterrupt:
        error_console.print(pick("已中断。", "Interrupted."))
        raise typer.Exit(code=130) from None


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
