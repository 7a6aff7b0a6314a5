"""ProgressLog: one plain progress line every few seconds, for output that is not a terminal.

Under ``nohup``, in SLURM or CI logs, or with stdout piped, Lightning's progress bar is off (it redraws one
terminal line) and a run would print nothing until it ends. This callback prints lines a log keeps::

    step 120/1500 (8%)  epoch 3  loss 0.8123  412 samples/s  elapsed 0:00:31
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from largebatch.train.callbacks.divergence import batch_loss


def print_line(line: str) -> None:
    print(line, file=sys.stdout, flush=True)


class ProgressLog(Callback):
    """Writes a progress line at most every ``every_s`` seconds (checked once per training batch: one clock read)
    and one when training ends: optimizer step (of ``trainer.max_steps`` where set), epoch, the last batch's
    training loss, samples per second since the previous line (``samples_per_step`` × optimizer steps / seconds;
    left out when ``samples_per_step`` is None) and the elapsed time. Works in any Lightning project: it reads
    only the trainer and the ``training_step`` output (a loss tensor or a dict with ``"loss"``).
    ``write`` receives each line (default: ``print`` to stdout, flushed); under DDP only rank 0 writes.
    """

    def __init__(self, every_s: float = 30.0, samples_per_step: int | None = None,
                 write: Callable[[str], None] | None = None) -> None:
        if every_s <= 0:
            raise ValueError(f"every_s must be > 0, got {every_s}")
        self.every_s = every_s
        self.samples_per_step = samples_per_step
        self.write = write or print_line
        self._started = self._last_time = self._due = 0.0
        self._last_step = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = self._last_time = time.monotonic()
        self._due = self._started + self.every_s
        self._last_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.monotonic()
        if now >= self._due:
            self._report(trainer, outputs, now)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report(trainer, None, time.monotonic())

    def _report(self, trainer: pl.Trainer, outputs: Any, now: float) -> None:
        if not trainer.is_global_zero:  # one process writes the lines of a data-parallel run
            return
        step = trainer.global_step
        parts = [f"step {step}" + (f"/{trainer.max_steps} ({step / trainer.max_steps:.0%})"
                                   if trainer.max_steps > 0 else ""), f"epoch {trainer.current_epoch}"]
        loss = batch_loss(outputs)
        if loss is not None:
            parts.append(f"loss {float(loss):.4g}")
        if self.samples_per_step is not None and step > self._last_step and now > self._last_time:
            rate = self.samples_per_step * (step - self._last_step) / (now - self._last_time)
            parts.append(f"{rate:,.0f} samples/s")
        parts.append(f"elapsed {timedelta(seconds=round(now - self._started))}")
        self.write("  ".join(parts))
        self._last_time, self._last_step, self._due = now, step, now + self.every_s
