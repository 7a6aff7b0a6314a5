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

from largebatch.records.store import FLOAT32_DIGITS
from largebatch.train.callbacks.emit import emit_block
from largebatch.train.callbacks.layer_norms import (
    grad_norms, step_sees_final_gradients, step_stats, unnamed_to_module_names,
)
from largebatch.train.callbacks.step_callback import StepCallback, check_every, due


class GradNormMonitor(StepCallback):
    """Logs ``grad_norm/global`` and, with ``per_layer``, ``grad_norm/<layer>`` for the parameters of the
    trainer's first optimizer (named as in :func:`~largebatch.train.callbacks.layer_norms.named_layers`).

    Measured on the first optimizer step and every ``every_n_steps``-th with one multi-tensor norm, shared with
    :class:`TrustRatioMonitor` when both run on the same step — or, for the 2-norm, read from the optimizer's own
    step statistics when it reports ‖g‖ of unclipped gradients (LARS, fused LAMB): nothing is measured twice.
    Logged to all loggers at ``step`` = ``trainer.global_step`` after the update (held and written in blocks, see
    :mod:`.step_callback`). The global norm is the ``norm_type``-norm of the per-layer norms, i.e. of all gradients as one
    vector (as in ``torch.nn.utils.clip_grad_norm_``), computed in float64 for a whole block of steps at once.
    """

    def __init__(self, every_n_steps: int = 10, per_layer: bool = True, norm_type: float = 2.0) -> None:
        super().__init__()
        if norm_type <= 0:
            raise ValueError(f"norm_type must be > 0, got {norm_type}")
        self.every_n_steps = check_every(every_n_steps)
        self.per_layer = per_layer
        self.norm_type = float(norm_type)
        self._measured: tuple[list[str], Tensor] | None = None
        self._keys: dict[tuple[str, ...], list[str]] = {}
        self._renamed: dict[str, str] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        # clipping, precision and the optimizer do not change during a fit; where the step's own ‖g‖ can be read
        # afterwards, nothing is measured before it
        reads_optimizer = self.norm_type == 2 and step_sees_final_gradients(trainer, trainer.optimizers[0])
        self.measures_before_step = not reads_optimizer
        self._renamed = unnamed_to_module_names(trainer.optimizers[0], pl_module)

    def before_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        if due(step, self.every_n_steps):
            self._measured = grad_norms(trainer.optimizers[0], pl_module, step, self.norm_type)

    def after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        measured, self._measured = self._measured, None
        if measured is not None:
            names, per_layer = (measured[0],), [measured[1]]
        else:
            optimizer = trainer.optimizers[0]
            parts = step_stats(optimizer)
            if all(part.grad_norm is not None for part in parts):
                names, per_layer = tuple(part.names for part in parts), [p.grad_norm for p in parts]
            else:
                measured = grad_norms(optimizer, pl_module, step, self.norm_type)
                names, per_layer = (measured[0],), [measured[1]]
        if any(names):
            self.hold(step, per_layer, names)  # names: the same lists every step

    def write(self, trainer: pl.Trainer, steps: list[int], values: Tensor, context: Any) -> None:
        global_norm = torch.linalg.vector_norm(values, ord=self.norm_type, dim=1, keepdim=True)
        if not self.per_layer:
            emit_block(trainer, steps, ["grad_norm/global"], global_norm.flatten().tolist(), FLOAT32_DIGITS)
            return
        names = tuple(name for part in context for name in part)
        keys = self._keys.get(names)
        if keys is None:
            keys = self._keys[names] = ["grad_norm/global"] + [f"grad_norm/{self._renamed.get(name, name)}"
                                                               for name in names]
        emit_block(trainer, steps, keys, torch.cat([global_norm, values], dim=1).flatten().tolist(), FLOAT32_DIGITS)
