"""Plumbing shared by the telemetry callbacks: per-optimizer-step hooks, cadence, emitting to loggers, norms.

Step convention: everything these callbacks log about an optimizer step is logged at ``step=N`` where N is
``trainer.global_step`` *after* that step (1 for the first update). Values measured in
``on_before_optimizer_step`` (where ``trainer.global_step`` is still N − 1) are held until
``on_train_batch_end`` and logged there, so the gradient and the trust ratio of one update share one step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

HALF = (torch.float16, torch.bfloat16)


class StepCallback(Callback):
    """A callback that acts per optimizer step (not per micro-batch), with step N as in the module docstring.

    Subclasses override :meth:`before_step` (gradients final: after accumulation, AMP unscaling and DDP
    reduction, before clipping) and/or :meth:`after_step` (at ``on_train_batch_end`` of the batch that completed
    the step).
    """

    def __init__(self) -> None:
        self._step: int | None = None

    def before_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        """Called before optimizer step ``step``; nothing by default."""

    def after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        """Called after optimizer step ``step``; nothing by default."""

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        self._step = trainer.global_step + 1
        self.before_step(trainer, pl_module, self._step)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._step is not None:
            step, self._step = self._step, None
            self.after_step(trainer, pl_module, step)


def check_every(every_n_steps: int) -> int:
    """``every_n_steps`` validated as a positive integer."""
    if every_n_steps < 1:
        raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
    return every_n_steps


def due(step: int, every_n_steps: int) -> bool:
    """Whether optimizer step ``step`` (1-based) is logged: the first one, then every ``every_n_steps``-th."""
    return step == 1 or step % every_n_steps == 0


def emit(trainer: pl.Trainer, metrics: Mapping[str, float], step: int) -> None:
    """Scalars to every logger of ``trainer`` (one call per logger, not ``LightningModule.log``)."""
    for logger in trainer.loggers:
        logger.log_metrics(dict(metrics), step=step)


def emit_layers(trainer: pl.Trainer, step: int, table: dict[str, list[Any]]) -> None:
    """A columnar per-layer table to the loggers that accept one (those with a ``log_layers`` method)."""
    for logger in trainer.loggers:
        log_layers = getattr(logger, "log_layers", None)
        if callable(log_layers):
            log_layers(step, table)


def norms(tensors: Sequence[Tensor], norm_type: float = 2.0) -> Tensor:
    """The ``norm_type``-norm of each tensor, in order, as one float32 vector on the first tensor's device.

    One multi-tensor ``torch._foreach_norm`` call (two where half- and full-precision tensors mix: the
    half-precision ones are reduced in float32, the others in their own dtype).
    """
    if not tensors:
        return torch.empty(0)
    device = tensors[0].device
    out: list[Tensor] = [torch.empty(0)] * len(tensors)
    for half in (True, False):
        index = [i for i, t in enumerate(tensors) if (t.dtype in HALF) == half]
        if index:
            results = torch._foreach_norm([tensors[i] for i in index], norm_type, dtype=torch.float32 if half else None)
            for i, n in zip(index, results):
                out[i] = n.to(device, torch.float32)
    return torch.stack(out)
