"""TrustRatioMonitor: per-layer trust ratios and learning rates of the optimizer's steps.

The layer-wise trust ratio is what LARS (You et al. 2017, arXiv:1708.03888, eq. 6) and LAMB (You et al. 2019,
arXiv:1904.00962, Algorithm 2) add to SGD and Adam; how it spreads across layers, and how it moves during
warmup, is the first thing to look at when a large-batch run trains badly.

Where the values come from:

* Optimizers with ``layer_stats()`` (:class:`~largebatch.optim.LARS`, :class:`~largebatch.optim.LAMB`): the
  statistics the step itself computed, read after the step; nothing is recomputed, except ‖g‖ where the
  optimizer did not need it (LAMB reports ``grad_norm=None``). Then, on logging steps only, the monitor
  measures ‖p.grad‖ in ``on_before_optimizer_step`` with one multi-tensor norm: the gradient after
  accumulation, AMP unscaling and DDP reduction, *before* gradient clipping and NVLAMB's pre-normalisation.
  ``lr`` is the optimizer's effective per-layer rate lr·ratio.
* Any other optimizer (SGD, AdamW, ...): the ratio LARS *would* apply with η = 1 and no weight decay,
  measured in ``on_before_optimizer_step`` before the update: ``weight_norm`` = ‖w‖, ``grad_norm`` =
  ``update_norm`` = ‖g‖, ``trust_ratio`` = ‖w‖/‖g‖ (1 where either is 0) and ``lr`` = the parameter group's
  lr (the optimizer applies no ratio, so this is the rate it really uses).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from largebatch.optim import LayerStats, trust_ratio
from largebatch.train.callbacks._emit import (
    Layers, StepCallback, check_every, due, emit, emit_layers, grad_norms, named_layers, norms, step_stats,
)

COLUMNS = ("weight_norm", "grad_norm", "update_norm", "trust_ratio", "lr")


def would_be_lars(layers: Layers, grad_norm: Tensor) -> LayerStats:
    """The fallback statistics of ``layers`` (whose gradient norms are ``grad_norm``) for optimizers without
    ``layer_stats()`` (see the module docstring)."""
    weight_norm = norms([p for _, p, _ in layers])
    lr = torch.tensor([float(group["lr"]) for _, _, group in layers], dtype=torch.float64, device=weight_norm.device)
    return LayerStats([name for name, _, _ in layers], weight_norm, grad_norm, trust_ratio(weight_norm, grad_norm), lr,
                      grad_norm)


def matched(names: list[str], measured: list[str], values: Tensor) -> Tensor:
    """``values`` (one per ``measured`` layer) reordered to ``names``, NaN for a layer not measured."""
    if names == measured:
        return values
    position = {name: i for i, name in enumerate(measured)}
    padded = torch.cat([values, values.new_full((1,), float("nan"))])
    return padded[[position.get(name, len(measured)) for name in names]]


def min_median_max(values: list[float]) -> tuple[float, float, float]:
    """The smallest, median (mean of the middle two for an even count) and largest of ``values``."""
    ordered, k = sorted(values), len(values)
    return ordered[0], (ordered[(k - 1) // 2] + ordered[k // 2]) / 2, ordered[-1]


class TrustRatioMonitor(StepCallback):
    """Logs the per-layer trust ratio and lr on the first optimizer step and every ``every_n_steps``-th.

    To all loggers, at ``step`` = ``trainer.global_step`` after the update: ``trust_ratio/{min,median,max}``
    and ``lr_layer/{min,median,max}`` over the layers the optimizer adapts (groups with ``adapt=False``,
    whose ratio is 1 by construction, are left out of these aggregates but not out of the table); with
    ``per_layer_to_loggers=True`` also ``trust_ratio/<layer>``. To loggers with ``log_layers``: the table
    ``layer, weight_norm, grad_norm, update_norm, trust_ratio, lr`` (NaN where unknown). The median of an
    even number of layers is the mean of the middle two. Only the first optimizer of the trainer is watched.
    A logging step costs no tensor operation: the step's own statistics are held as they are and joined with
    those of the other held steps when the block is written.
    """

    def __init__(self, every_n_steps: int = 10, per_layer_to_loggers: bool = False) -> None:
        super().__init__()
        self.every_n_steps = check_every(every_n_steps)
        self.per_layer_to_loggers = per_layer_to_loggers
        self._fallback: LayerStats | None = None
        self._grads: tuple[list[str], Tensor] | None = None
        self._optimizer_gives_grad_norm = False
        self._frozen: set[str] | None = None
        self._adapted: dict[tuple[str, ...], list[int]] = {}

    def before_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        if not due(step, self.every_n_steps):
            return
        optimizer = trainer.optimizers[0]
        if not hasattr(optimizer, "layer_stats"):
            _, grad_norm = grad_norms(optimizer, pl_module.model, step)
            self._fallback = would_be_lars(named_layers(optimizer, pl_module.model), grad_norm)
        elif not self._optimizer_gives_grad_norm:
            self._grads = grad_norms(optimizer, pl_module.model, step)

    def after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        if not due(step, self.every_n_steps):
            return
        fallback, grads, self._fallback, self._grads = self._fallback, self._grads, None, None
        optimizer = trainer.optimizers[0]
        parts = [fallback] if fallback is not None else step_stats(optimizer)
        gives_grad_norm = all(part.grad_norm is not None for part in parts)
        if fallback is None:
            self._optimizer_gives_grad_norm = gives_grad_norm
        names = [name for part in parts for name in part.names]
        if not names:
            return
        if gives_grad_norm:
            grad = [part.grad_norm for part in parts]
        else:
            assert grads is not None, "grad norms are measured whenever the optimizer does not report them"
            grad = [matched(names, *grads)]
        if self._frozen is None:  # the groups' adapt flags do not change during a fit
            self._frozen = {name for name, _, group in named_layers(optimizer, pl_module.model)
                            if not group.get("adapt", True)}
        columns = [part.weight_norm for part in parts] + grad  # held in COLUMNS order
        for column in ("update_norm", "trust_ratio", "lr"):
            columns += [getattr(part, column) for part in parts]
        self.hold(step, columns, names)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._frozen = None
        self._adapted.clear()

    def write(self, trainer: pl.Trainer, step: int, values: list[float], context: Any) -> None:
        """The table and the aggregates over the adapted layers (those not in a group with ``adapt=False``)."""
        names: list[str] = context
        n = len(names)
        table: dict[str, list[Any]] = {"layer": names}
        table.update({key: values[k * n:(k + 1) * n] for k, key in enumerate(COLUMNS)})
        key = tuple(names)
        adapted = self._adapted.get(key)
        if adapted is None:
            adapted = self._adapted[key] = [i for i, name in enumerate(names) if name not in (self._frozen or ())]
        metrics = {}
        if adapted:
            for prefix, column in (("trust_ratio", table["trust_ratio"]), ("lr_layer", table["lr"])):
                low, middle, high = min_median_max([column[i] for i in adapted])
                metrics.update({f"{prefix}/min": low, f"{prefix}/median": middle, f"{prefix}/max": high})
        if self.per_layer_to_loggers:
            metrics.update({f"trust_ratio/{name}": r for name, r in zip(names, table["trust_ratio"])})
        emit(trainer, metrics, step)
        emit_layers(trainer, step, table)
