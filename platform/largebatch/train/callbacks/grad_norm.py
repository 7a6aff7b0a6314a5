"""GradNormMonitor: the global and per-layer gradient norm of the optimizer's steps.

The gradient norm is the other half of the LARS trust ratio ‖w‖/‖g‖ (You et al. 2017, arXiv:1708.03888) and,
as ‖E g‖² against E‖g‖², the raw material of the gradient noise scale that predicts the critical batch size
(McCandlish et al. 2018, arXiv:1812.06162). It is measured in ``on_before_optimizer_step``: after gradient
accumulation (the gradient of the whole effective batch), AMP unscaling and DDP reduction, before clipping.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import Tensor

from largebatch.train.callbacks._emit import StepCallback, check_every, due, emit, norms


class GradNormMonitor(StepCallback):
    """Logs ``grad_norm/global`` and, with ``per_layer``, ``grad_norm/<layer>`` (``pl_module.model``'s names).

    Measured on the first optimizer step and every ``every_n_steps``-th with one multi-tensor norm; logged to
    all loggers at ``step`` = ``trainer.global_step`` after the update. The global norm is the ``norm_type``-norm
    of the per-layer norms, i.e. of all gradients as one vector (as in ``torch.nn.utils.clip_grad_norm_``).
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
        if not due(step, self.every_n_steps):
            return
        named = [(name, p.grad) for name, p in pl_module.model.named_parameters() if p.grad is not None]
        if named:
            per_layer = norms([g for _, g in named], self.norm_type)
            total = torch.linalg.vector_norm(per_layer, self.norm_type).reshape(1)
            self._measured = [name for name, _ in named], torch.cat([total, per_layer])

    def after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        if self._measured is None:
            return
        (names, values), self._measured = self._measured, None
        total, *per_layer = (values if self.per_layer else values[:1]).tolist()
        emit(trainer, {"grad_norm/global": total, **{f"grad_norm/{n}": v for n, v in zip(names, per_layer)}}, step)
