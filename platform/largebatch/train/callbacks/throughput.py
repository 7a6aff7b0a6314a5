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
from torch import Tensor

from largebatch.train.callbacks.emit import emit_block
from largebatch.train.callbacks.step_callback import StepCallback, check_every


def samples_in(batch: Any) -> int:
    """The number of samples in ``batch``: the length of its first tensor (batch dimension first), looking into
    tuples, lists and dicts; ``len(batch)`` for anything else."""
    while isinstance(batch, (tuple, list, dict)) and len(batch):
        batch = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return len(batch)


class Throughput(StepCallback):
    """Logs ``throughput/samples_per_s`` and ``throughput/step_ms`` on the first optimizer step and every
    ``every_n_steps``-th, at ``step`` = ``trainer.global_step`` after the update.

    Time is ``time.perf_counter`` between ``on_train_batch_end`` calls that close an optimizer step; CUDA is
    synchronised only on logging steps, so each logged value is the mean over the steps since the last logged
    one (exact however asynchronous the device is). ``samples_per_s`` is the samples of those steps over all
    micro-batches and devices divided by their time. The samples come from the datamodule's
    ``samples_through(step)`` where it has one (largebatch's datamodule does, so batches that change between steps
    count exactly); else from ``samples_per_step`` per step. Without ``samples_per_step`` it is counted once, from
    the first training batch: ``len`` of its first tensor (or of the batch itself) ×
    ``trainer.accumulate_grad_batches`` × ``trainer.world_size`` — right for any Lightning project whose batches
    are tensors or tuples/lists/dicts of tensors with the batch first and equally large; pass ``samples_per_step``
    otherwise. Windows restart at every training epoch start, and validation time is not counted.
    :meth:`summary` gives the medians of the logged values. Values reach the loggers in blocks (see
    :mod:`.step_callback`).
    """

    def __init__(self, every_n_steps: int = 10, samples_per_step: int | None = None) -> None:
        super().__init__()
        self.every_n_steps = check_every(every_n_steps)
        if samples_per_step is not None and samples_per_step < 1:
            raise ValueError(f"samples_per_step must be >= 1, got {samples_per_step}")
        self.samples_per_step = samples_per_step
        self.samples_per_s: list[float] = []
        self.step_ms: list[float] = []
        self._start: float | None = None
        self._window_step = 0  # the optimizer step after which the current window started
        self._paused_at: float | None = None
        self._samples_through: Any = None  # the datamodule's samples_through, where it has one
        self._cuda: torch.device | None = None  # the module's device where it is a CUDA device

    def summary(self) -> dict[str, float]:
        """Medians of the logged ``samples_per_s`` and ``step_ms`` (NaN before anything was logged)."""
        if not self.step_ms:
            return {"samples_per_s": float("nan"), "step_ms": float("nan")}
        return {"samples_per_s": statistics.median(self.samples_per_s), "step_ms": statistics.median(self.step_ms)}

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._cuda = pl_module.device if pl_module.device.type == "cuda" else None
        self._synchronize()
        self._samples_through = getattr(trainer.datamodule, "samples_through", None)
        self._start, self._window_step = time.perf_counter(), trainer.global_step

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self.samples_per_step is None:  # once: the first batch of the fit
            self.samples_per_step = samples_in(batch) * trainer.accumulate_grad_batches * trainer.world_size

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start is not None:
            self._synchronize()
            self._paused_at = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start is not None and self._paused_at is not None:
            self._synchronize()
            self._start += time.perf_counter() - self._paused_at
            self._paused_at = None

    def after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        if self._start is None or step <= self._window_step:
            return
        self._synchronize()
        now = time.perf_counter()
        step_s = (now - self._start) / (step - self._window_step)
        samples_per_s = self._samples(step) / (now - self._start)
        self._start, self._window_step = now, step
        self.samples_per_s.append(samples_per_s)
        self.step_ms.append(1000.0 * step_s)
        self.hold(step, [samples_per_s, 1000.0 * step_s])

    def _samples(self, step: int) -> int:
        """Samples of the steps after ``_window_step`` up to ``step``."""
        if self._samples_through is None:
            return self.samples_per_step * (step - self._window_step)  # type: ignore[operator]  (set at the first batch)
        return self._samples_through(step) - self._samples_through(self._window_step)

    def _synchronize(self) -> None:
        """Wait for queued CUDA work, so the host clock measures the device's progress."""
        if self._cuda is not None:
            torch.cuda.synchronize(self._cuda)

    def write(self, trainer: pl.Trainer, steps: list[int], values: Tensor, context: Any) -> None:
        emit_block(trainer, steps, ["throughput/samples_per_s", "throughput/step_ms"], values.flatten().tolist())
