"""GradNormMonitor: the global and per-layer gradient norm of the optimizer's steps.

The gradient norm is the other half of the LARS trust ratio ‖w‖/‖g‖ (You et al. 2017, arXiv:1708.03888) and,
as ‖E g‖² against E‖g‖², the raw material of the gradient noise scale that predicts the critical batch size
(McCandlish et al. 2018, arXiv:1812.06162). It is measured in ``on_before_optimizer_step``: after gradient
accumulation (the gradient of the whole effective batch), AMP unscaling and DDP reduction, before clipping.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
from torch import Tensor

from largebatch.train.callbacks._emit import (
    StepCallback, check_every, due, emit, grad_norms, step_sees_final_gradients, step_stats,
)


def global_norm(per_layer: list[float], norm_type: float) -> float:
    """The ``norm_type``-norm of all gradients as one vector, from the per-layer norms."""
    if norm_type == 2:
        return math.hypot(*per_layer)
    if math.isinf(norm_type):
        return max(map(abs, per_layer))
    return math.fsum(abs(v) ** norm_type for v in per_layer) ** (1 / norm_type)


class GradNormMonitor(StepCallback):
    """Logs ``grad_norm/global`` and, with ``per_layer``, ``grad_norm/<layer>`` for the parameters of the
    trainer's first optimizer (named as in :func:`~largebatch.train.callbacks._emit.named_layers`).

    Measured on the first optimizer step and every ``every_n_steps``-th with one multi-tensor norm, shared with
    :class:`TrustRatioMonitor` when both run on the same step — or, for the 2-norm, read from the optimizer's own
    step statistics when it reports ‖g‖ of unclipped gradients (LARS, fused LAMB): nothing is measured twice.
    Logged to all loggers at ``step`` = ``trainer.global_step`` after the update (held and written in blocks, see
    ``_emit``). The global norm is the ``norm_type``-norm of the per-layer norms, i.e. of all gradients as one
    vector (as in ``torch.nn.utils.clip_grad_norm_``), computed in float64 when the block is written.
    """

    def __init__(self, every_n_steps: int = 10, per_layer: bool = True, norm_type: float = 2.0) -> None:
        super().__init__()
        if norm_type <= 0:
            raise ValueError(f"norm_type must be > 0, got {norm_type}")
        self.every_n_steps = check_every(every_n_steps)
        self.per_layer = per_layer
        self.norm_type = float(norm_type)
        self._measured: tuple[list[str], Tensor] | None = None
        self._reads_optimizer: bool | None = None
        self._keys: dict[tuple[str, ...], list[str]] = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reads_optimizer = None

    def before_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        if not due(step, self.every_n_steps):
            return
        optimizer = trainer.optimizers[0]
        if self._reads_optimizer is None:  # clipping, precision and the optimizer do not change during a fit
            self._reads_optimizer = self.norm_type == 2 and step_sees_final_gradients(trainer, optimizer)
        if not self._reads_optimizer:  # else the step's own ‖g‖ is read afterwards (or p.grad, unchanged, measured)
            self._measured = grad_norms(optimizer, pl_module.model, step, self.norm_type)

    def after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        if not due(step, self.every_n_steps):
            return
        measured, self._measured = self._measured, None
        if measured is not None:
            names, per_layer = measured[0], [measured[1]]
        else:
            optimizer = trainer.optimizers[0]
            parts = step_stats(optimizer)
            if all(part.grad_norm is not None for part in parts):
                names, per_layer = [name for part in parts for name in part.names], [p.grad_norm for p in parts]
            else:
                names, norm = grad_norms(optimizer, pl_module.model, step, self.norm_type)
                per_layer = [norm]
        if names:
            self.hold(step, per_layer, names)

    def write(self, trainer: pl.Trainer, step: int, values: list[float], context: Any) -> None:
        metrics = {"grad_norm/global": global_norm(values, self.norm_type)}
        if self.per_layer:
            key = tuple(context)
            keys = self._keys.get(key)
            if keys is None:
                keys = self._keys[key] = [f"grad_norm/{name}" for name in context]
            metrics.update(zip(keys, values))
        emit(trainer, metrics, step)
