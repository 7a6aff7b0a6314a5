"""Throughput: samples per second and wall time per optimizer step.

Large-batch training is worth its trouble only if the larger batch buys wall-clock time: steps to a target
shrink with batch size up to a critical batch size (Shallue et al. 2019, arXiv:1811.03600; McCandlish et al.
2018, arXiv:1812.06162), while the time per step grows. This callback measures the second factor.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import lightning.pytorch as pl
import torch

from largebatch.train.callbacks._emit import StepCallback, check_every, due, emit


def synchronize(pl_module: pl.LightningModule) -> None:
    """Wait for queued CUDA work, so the host clock measures the device's progress."""
    if pl_module.device.type == "cuda":
        torch.cuda.synchronize(pl_module.device)


class Throughput(StepCallback):
    """Logs ``throughput/samples_per_s`` and ``throughput/step_ms`` on the first optimizer step and every
    ``every_n_steps``-th, at ``step`` = ``trainer.global_step`` after the update.

    Time is ``time.perf_counter`` between ``on_train_batch_end`` calls that close an optimizer step; CUDA is
    synchronised only on logging steps, so each logged value is the mean over the steps since the last logged
    one (exact however asynchronous the device is). ``samples_per_s`` is ``trainer.datamodule.effective_batch_size``
    (samples per optimizer step over all micro-batches and devices) divided by the mean step time.
    Windows restart at every training epoch start, and validation time is not counted. :meth:`summary` gives
    the medians of the logged values. Values reach the loggers in blocks (see ``_emit``).
    """

    def __init__(self, every_n_steps: int = 10) -> None:
        super().__init__()
        self.every_n_steps = check_every(every_n_steps)
        self.samples_per_s: list[float] = []
        self.step_ms: list[float] = []
        self._start: float | None = None
        self._steps = 0
        self._paused_at: float | None = None
        self._batch = 0

    def summary(self) -> dict[str, float]:
        """Medians of the logged ``samples_per_s`` and ``step_ms`` (NaN before anything was logged)."""
        if not self.step_ms:
            return {"samples_per_s": float("nan"), "step_ms": float("nan")}
        return {"samples_per_s": statistics.median(self.samples_per_s), "step_ms": statistics.median(self.step_ms)}

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        synchronize(pl_module)
        self._batch = trainer.datamodule.effective_batch_size
        self._start, self._steps = time.perf_counter(), 0

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start is not None:
            synchronize(pl_module)
            self._paused_at = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start is not None and self._paused_at is not None:
            synchronize(pl_module)
            self._start += time.perf_counter() - self._paused_at
            self._paused_at = None

    def after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        if self._start is None:
            return
        self._steps += 1
        if not due(step, self.every_n_steps):
            return
        synchronize(pl_module)
        now = time.perf_counter()
        step_s = (now - self._start) / self._steps
        self._start, self._steps = now, 0
        samples_per_s = self._batch / step_s
        self.samples_per_s.append(samples_per_s)
        self.step_ms.append(1000.0 * step_s)
        self.hold(step, [samples_per_s, 1000.0 * step_s])

    def write(self, trainer: pl.Trainer, step: int, values: list[float], context: Any) -> None:
        emit(trainer, {"throughput/samples_per_s": values[0], "throughput/step_ms": values[1]}, step)
