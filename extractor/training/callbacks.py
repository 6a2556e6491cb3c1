"""Trainer callbacks: a rich progress bar, a JSONL log written as training goes, and a time budget."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import TrainerCallback

from ..i18n import pick

logger = logging.getLogger(__name__)

LOG_NAME = "train_log.jsonl"


def log_entry(logs: Mapping[str, Any], step: int, epoch: float | None, seconds: float) -> dict[str, Any]:
    """Turn one Trainer log event into a ``train_log.jsonl`` line with fixed key names."""
    entry: dict[str, Any] = {
        "step": step,
        "epoch": round(epoch, 4) if epoch is not None else None,
        "loss": logs.get("loss"),
        "lr": logs.get("learning_rate"),
        "eval_loss": logs.get("eval_loss"),
        "time": round(seconds, 2),
    }
    renamed = {"loss", "learning_rate", "eval_loss", "epoch"}
    entry.update({key: value for key, value in logs.items() if key not in renamed and _is_number(value)})
    return entry


def format_status(latest: Mapping[str, Any]) -> str:
    """Summarise the latest loss, learning rate and eval loss for the progress bar."""
    parts = []
    if latest.get("loss") is not None:
        parts.append(f"loss {latest['loss']:.4f}")
    if latest.get("lr") is not None:
        parts.append(f"lr {latest['lr']:.2e}")
    if latest.get("eval_loss") is not None:
        parts.append(f"eval {latest['eval_loss']:.4f}")
    return " · ".join(parts)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class JsonlLogCallback(TrainerCallback):
    """Append one JSON line per log event (train loss, eval loss, final summary), flushed at once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.started = time.monotonic()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.monotonic()

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs or not state.is_world_process_zero:
            return
        entry = log_entry(logs, state.global_step, state.epoch, time.monotonic() - self.started)
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(entry, ensure_ascii=False) + "\n")


class RichProgressCallback(TrainerCallback):
    """Show steps, loss, learning rate, elapsed time and ETA in a rich progress bar.

    On a console that is not a terminal (a log file, CI) the bar cannot redraw, so each log event is printed
    as one line instead.
    """

    def __init__(self, console: Console | None = None, description: str | None = None) -> None:
        self.console = console or Console()
        self.description = description or pick("训练", "Training")
        self.progress: Progress | None = None
        self.task: Any = None
        self.latest: dict[str, Any] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
        )
        self.task = self.progress.add_task(self.description, total=state.max_steps, completed=state.global_step, status="")
        self.progress.start()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if self.progress is None or not logs:
            return
        for source, target in (("loss", "loss"), ("learning_rate", "lr"), ("eval_loss", "eval_loss")):
            if logs.get(source) is not None:
                self.latest[target] = logs[source]
        status = format_status(self.latest)
        self.progress.update(self.task, status=status)
        if not self.console.is_terminal and any(k in logs for k in ("loss", "eval_loss")):
            self.console.print(f"{self.description} {state.global_step}/{state.max_steps}: {status}", highlight=False)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)
            self.progress.stop()
            self.progress = None


class TimeBudgetCallback(TrainerCallback):
    """Stop training once ``minutes`` have passed since it began; the adapter is saved as usual afterwards."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60
        self.started = time.monotonic()
        self.stopped_early = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if time.monotonic() - self.started >= self.seconds and state.global_step < state.max_steps:
            logger.info("time budget of %.1f min reached at step %d; stopping", self.seconds / 60, state.global_step)
            self.stopped_early = True
            control.should_training_stop = True


def offline_swanlab_callback(log_dir: str | Path) -> TrainerCallback:
    """Build a SwanLab callback that logs offline into ``log_dir`` and closes its run when training ends.

    ``SWANLAB_MODE`` and ``SWANLAB_LOG_DIR`` set by the user win. They are set only while SwanLab starts its
    run and restored afterwards, so a second run in the same process gets its own folder.
    """
    from transformers.integrations import SwanLabCallback

    class OfflineSwanLabCallback(SwanLabCallback):  # type: ignore[misc]
        def setup(self, args: Any, state: Any, model: Any, **kwargs: Any) -> None:
            defaults = {"SWANLAB_MODE": "offline", "SWANLAB_LOG_DIR": str(log_dir)}
            saved = {name: os.environ.get(name) for name in defaults}
            for name, value in defaults.items():
                os.environ.setdefault(name, value)
            try:
                self._start_run()
                super().setup(args, state, model, **kwargs)
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value

        def _start_run(self) -> None:
            # NOTE: transformers 5.25 expects swanlab.get_run() to return None without a run, but swanlab 0.10
            # raises RuntimeError, so the run is started here. Drop this once the callback handles both.
            try:
                run = self._swanlab.get_run()
            except RuntimeError:
                run = None
            if run is None:
                self._swanlab.init(project=os.environ.get("SWANLAB_PROJECT", "extractor"))

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            super().on_train_end(args, state, control, **kwargs)
            if self._initialized and state.is_world_process_zero:
                self._swanlab.finish()

    return OfflineSwanLabCallback()
