"""GradNormMonitor: the global and per-layer gradient norm of the optimizer's steps.

The gradient norm is the other half of the LARS trust ratio ‖w‖/‖g‖ (You et al. 2017, arXiv:1708.03888) and,
as ‖E g‖² against E‖g‖², the raw material of the gradient noise scale that predicts the critical batch size
(McCandlish et al. 2018, arXiv:1812.06162). It is measured in ``on_before_optimizer_step``: after gradient
accumulation (the gradient of the whole effective batch), AMP unscaling and DDP reduction, before clipping.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from largebatch.train.callbacks._emit import (
    StepCallback, check_every, due, emit, grad_norms, step_sees_final_gradients,
)


class GradNormMonitor(StepCallback):
    """Logs ``grad_norm/global`` and, with ``per_layer``, ``grad_norm/<layer>`` for the parameters of the
    trainer's first optimizer (named as in :func:`~largebatch.train.callbacks._emit.named_layers`).

    Measured on the first optimizer step and every ``every_n_steps``-th with one multi-tensor norm, shared with
    :class:`TrustRatioMonitor` when both run on the same step — or, for the 2-norm, read from the optimizer's own
    step statistics when it reports ‖g‖ of unclipped gradients (LARS, fused LAMB): nothing is measured twice.
    Logged to all loggers at ``step`` =
    ``trainer.global_step`` after the update (held and written in blocks, see ``_emit``). The global norm is the
    ``norm_type``-norm of the per-layer norms, i.e. of all gradients as one vector (as in
    ``torch.nn.utils.clip_grad_norm_``).
    """

    def __init__(self, every_n_steps: int = 10, per_layer: bool = True, norm_type: float = 2.0) -> None:
        super().__init__()
        if norm_type <= 0:
            raise ValueError(f"norm_type must be > 0, got {norm_type}")
        self.every_n_steps = check_every(every_n_steps)
        self.per_layer = per_layer
        self.norm_type = float(norm_type)
        self._measured: tuple[list[str], Tensor] | None = None

    def before_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        optimizer = trainer.optimizers[0]
        if not due(step, self.every_n_steps) or (self.norm_type == 2 and step_sees_final_gradients(trainer, optimizer)):
            return  # in the second case the step's own ‖g‖ is read afterwards (or p.grad, still unchanged, measured)
        self._measured = grad_norms(optimizer, pl_module.model, step, self.norm_type)

    def after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        if not due(step, self.every_n_steps):
            return
        measured, self._measured = self._measured, None
        if measured is None:
            optimizer = trainer.optimizers[0]
            stats = optimizer.layer_stats()
            measured = (stats.names, stats.grad_norm) if stats.grad_norm is not None else grad_norms(
                optimizer, pl_module.model, step, self.norm_type)
        names, per_layer = measured
        if names:
            total = torch.linalg.vector_norm(per_layer, self.norm_type).reshape(1)
            self.hold(step, torch.cat([total, per_layer]) if self.per_layer else total, names)

    def write(self, trainer: pl.Trainer, step: int, values: list[float], context: Any) -> None:
        total, *per_layer = values
        emit(trainer, {"grad_norm/global": total, **{f"grad_norm/{n}": v for n, v in zip(context, per_layer)}}, step)
