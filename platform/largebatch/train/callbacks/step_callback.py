"""StepCallback: the base of the telemetry callbacks that act per optimizer step (cadence, held values, flushes).

Step convention: everything these callbacks log about an optimizer step is logged at ``step=N`` where N is
``trainer.global_step`` *after* that step (1 for the first update). Values measured in
``on_before_optimizer_step`` (where ``trainer.global_step`` is still N − 1) are held until
``on_train_batch_end``, so the gradient and the trust ratio of one update share one step. Each callback counts
the optimizer steps itself (``on_before_optimizer_step`` runs once per step) from ``trainer.global_step`` read
when training and each epoch start (after a checkpoint was restored), instead of reading Lightning's property
(a chain of loop objects) on every step.

Held values: measurements stay on the device as tensors (:meth:`StepCallback.hold`) and reach the loggers in
blocks (:meth:`StepCallback.flush`): one concatenation and one host transfer per block instead of per step, and a
whole block of steps formatted by each callback with a few tensor operations and written with one call per logger
and table (``log_metric_block``, ``log_layer_block``, where the logger has them: see :mod:`.emit`). Blocks are flushed every
``FLUSH_EVERY_N_STEPS`` held steps or ``FLUSH_EVERY_S`` seconds, whichever comes first, and at every epoch end,
checkpoint, the end of training and on an exception — so a run killed outright (SIGKILL) loses at most that
window of telemetry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import groupby
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

FLUSH_EVERY_N_STEPS = 200
FLUSH_EVERY_S = 5.0


class StepCallback(Callback):
    """A callback that acts per optimizer step (not per micro-batch), with step N as in the module docstring.

    Subclasses override :meth:`before_step` (every step; gradients final: after accumulation, AMP unscaling and
    DDP reduction, before clipping) and/or :meth:`after_step` (at ``on_train_batch_end`` of the batch that
    completed the step, on the first step and every :attr:`every_n_steps`-th only: the steps between cost one
    comparison); they :meth:`hold` values there and log whole blocks of steps in :meth:`write`. Subclasses that
    override ``on_train_start`` or ``on_train_epoch_start`` call this class's too (it resynchronises the count).
    A subclass that finds, during a fit, that its :meth:`before_step` has nothing left to do sets
    :attr:`measures_before_step` to False; it is reset when training starts.
    """

    every_n_steps = 1

    def __init__(self) -> None:
        self._steps_done = 0
        self._step: int | None = None
        self.measures_before_step = self._overrides_before_step()
        self._held: list[tuple[int, Sequence[Tensor] | Sequence[float], Any]] = []
        self._flushed_at = time.perf_counter()

    def _overrides_before_step(self) -> bool:
        return type(self).before_step is not StepCallback.before_step

    def before_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        """Called before optimizer step ``step`` while :attr:`measures_before_step`; nothing by default."""

    def after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        """Called after optimizer step ``step`` where it is :func:`due`; nothing by default."""

    def hold(self, step: int, values: Sequence[Tensor] | Sequence[float], context: Any = None) -> None:
        """Keep ``values`` of ``step`` — device tensors (flattened and joined in order at the flush) or host
        floats — with a ``context`` for :meth:`write`, until the next flush. Holding costs no tensor operation.
        Values held with equal contexts must be equally many (they become rows of one block)."""
        self._held.append((step, values, context))

    def write(self, trainer: pl.Trainer, steps: list[int], values: Tensor, context: Any) -> None:
        """Log a block of held values: ``values[i]`` (a float64 CPU row) is what was held for ``steps[i]``, all
        with ``context``; subclasses that :meth:`hold` override this."""
        raise NotImplementedError

    def flush(self, trainer: pl.Trainer) -> None:
        """Every held value to :meth:`write`, in step order: one concatenation and one host transfer for the
        tensors, then one call per run of consecutive steps held with equal contexts."""
        held, self._held = self._held, []
        self._flushed_at = time.perf_counter()
        if not held:
            return
        tensors = [t for _, values, _ in held if _of_tensors(values) for t in values]
        flat = joined(tensors).to("cpu", torch.float64) if tensors else torch.empty(0, dtype=torch.float64)
        offset = 0
        for (context, of_tensors), entries in groupby(held, key=lambda entry: (entry[2], _of_tensors(entry[1]))):
            run = list(entries)
            if of_tensors:
                width = sum(t.numel() for t in run[0][1])  # type: ignore[union-attr]
                block, offset = flat[offset:offset + width * len(run)].view(len(run), width), offset + width * len(run)
            else:
                block = torch.tensor([list(values) for _, values, _ in run], dtype=torch.float64).view(len(run), -1)
            self.write(trainer, [step for step, _, _ in run], block, context)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._steps_done = trainer.global_step
        self.measures_before_step = self._overrides_before_step()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._steps_done = trainer.global_step

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        self._steps_done += 1
        self._step = self._steps_done
        if self.measures_before_step:
            self.before_step(trainer, pl_module, self._step)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step, self._step = self._step, None
        if step is None or step % self.every_n_steps and step != 1:  # not due (inlined: this runs every batch)
            return
        self.after_step(trainer, pl_module, step)
        if self._held and (len(self._held) >= FLUSH_EVERY_N_STEPS
                           or time.perf_counter() - self._flushed_at >= FLUSH_EVERY_S):
            self.flush(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.flush(trainer)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.flush(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.flush(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.flush(trainer)


def _of_tensors(values: Sequence[Tensor] | Sequence[float]) -> bool:
    return bool(values) and isinstance(values[0], Tensor)


def check_every(every_n_steps: int) -> int:
    """``every_n_steps`` validated as a positive integer."""
    if every_n_steps < 1:
        raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
    return every_n_steps


def due(step: int, every_n_steps: int) -> bool:
    """Whether optimizer step ``step`` (1-based) is logged: the first one, then every ``every_n_steps``-th."""
    return step == 1 or step % every_n_steps == 0



def joined(tensors: Sequence[Tensor]) -> Tensor:
    """``tensors`` flattened and joined into one vector: one ``torch.cat`` in the usual case (1-D tensors on one
    device, dtypes promoted), else each is flattened and moved to the first one's device."""
    try:
        return torch.cat(list(tensors))
    except RuntimeError:  # 0-d tensors, or several devices
        device = tensors[0].device
        return torch.cat([t.reshape(-1).to(device) for t in tensors])

