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
from largebatch.records.store import FLOAT32_DIGITS
from largebatch.train.callbacks.emit import emit_block, emit_layer_block
from largebatch.train.callbacks.layer_norms import (
    Layers, grad_norms, named_layers, norms, step_stats, unnamed_to_module_names,
)
from largebatch.train.callbacks.step_callback import StepCallback, check_every, due

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


def min_median_max(values: Tensor) -> Tensor:
    """Per row of ``values`` (steps × layers): the smallest, the median (mean of the middle two for an even count)
    and the largest, as columns. NaN sorts last: a layer's NaN ratio shows as the max."""
    ordered, k = values.sort(dim=1).values, values.shape[1]
    return torch.stack([ordered[:, 0], (ordered[:, (k - 1) // 2] + ordered[:, k // 2]) / 2, ordered[:, -1]], dim=1)


class TrustRatioMonitor(StepCallback):
    """Logs the per-layer trust ratio and lr on the first optimizer step and every ``every_n_steps``-th.

    To all loggers, at ``step`` = ``trainer.global_step`` after the update: ``trust_ratio/{min,median,max}``
    and ``lr_layer/{min,median,max}`` over the layers the optimizer adapts (groups with ``adapt=False``,
    whose ratio is 1 by construction, are left out of these aggregates but not out of the table); with
    ``per_layer_to_loggers=True`` also ``trust_ratio/<layer>``. To loggers with ``log_layer_block`` or
    ``log_layers``: the table ``layer, weight_norm, grad_norm, update_norm, trust_ratio, lr`` (NaN where unknown).
    The median of an even number of layers is the mean of the middle two; a NaN ratio sorts last (it shows as the
    max). Only the first optimizer of the trainer is watched.
    Works in any Lightning project: it reads only ``trainer.optimizers[0]``, the gradients of its parameters and
    the LightningModule's parameter names; layers are named by the groups' ``param_names`` where the optimizer has
    them (:func:`largebatch.optim.param_groups` and :func:`largebatch.optim.create_optimizer` set them), else by
    the LightningModule's parameter names.
    A logging step costs no tensor operation: the step's own statistics are held as they are, and a whole block
    of held steps is joined, aggregated and written at once.
    """

    def __init__(self, every_n_steps: int = 10, per_layer_to_loggers: bool = False) -> None:
        super().__init__()
        self.every_n_steps = check_every(every_n_steps)
        self.per_layer_to_loggers = per_layer_to_loggers
        self._fallback: LayerStats | None = None
        self._grads: tuple[list[str], Tensor] | None = None
        self._frozen: set[str] | None = None
        self._adapted: dict[tuple[str, ...], tuple[list[str], Tensor]] = {}
        self._renamed: dict[str, str] = {}

    def before_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        """‖g‖ (and, for optimizers without ``layer_stats()``, the fallback statistics) where the optimizer may not
        report it; turned off once it has (see :meth:`after_step`)."""
        if not due(step, self.every_n_steps):
            return
        optimizer = trainer.optimizers[0]
        if hasattr(optimizer, "layer_stats"):
            self._grads = grad_norms(optimizer, pl_module, step)
        else:
            _, grad_norm = grad_norms(optimizer, pl_module, step)
            self._fallback = would_be_lars(named_layers(optimizer, pl_module), grad_norm)

    def after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        fallback, grads, self._fallback, self._grads = self._fallback, self._grads, None, None
        optimizer = trainer.optimizers[0]
        parts = [fallback] if fallback is not None else step_stats(optimizer)
        if self._frozen is None:  # the groups' adapt flags do not change during a fit
            self._frozen = {name for name, _, group in named_layers(optimizer, pl_module)
                            if not group.get("adapt", True)}
        if all(part.grad_norm is not None for part in parts):
            self.measures_before_step = fallback is not None  # else the optimizer reports ‖g‖ itself
            columns = [getattr(part, column) for column in COLUMNS for part in parts]
        else:
            assert grads is not None, "‖g‖ is measured before every logged step until the optimizer has reported it"
            columns = [part.weight_norm for part in parts]
            columns.append(matched([self._renamed.get(name, name) for part in parts for name in part.names], *grads))
            columns += [getattr(part, column) for column in COLUMNS[2:] for part in parts]
        if any(part.names for part in parts):
            self.hold(step, columns, tuple(part.names for part in parts))  # the same name lists every step

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._frozen = None
        self._adapted.clear()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._renamed = unnamed_to_module_names(trainer.optimizers[0], pl_module)

    def write(self, trainer: pl.Trainer, steps: list[int], values: Tensor, context: Any) -> None:
        """The tables and the aggregates over the adapted layers (those not in a group with ``adapt=False``)."""
        key = tuple(name for part in context for name in part)
        known = self._adapted.get(key)
        if known is None:  # once per list of layers: the LightningModule's names, the adapted layers' columns
            renamed = [self._renamed.get(name, name) for name in key]
            known = self._adapted[key] = (renamed, torch.tensor(
                [i for i, name in enumerate(renamed) if name not in (self._frozen or ())], dtype=torch.long))
        names, adapted = known
        n = len(names)
        stats = values.view(len(steps), len(COLUMNS), n)
        metric_names, blocks = [], []
        if len(adapted):
            for prefix, column in (("trust_ratio", stats[:, 3]), ("lr_layer", stats[:, 4])):
                metric_names += [f"{prefix}/min", f"{prefix}/median", f"{prefix}/max"]
                blocks.append(min_median_max(column[:, adapted]))
        if self.per_layer_to_loggers:
            metric_names += [f"trust_ratio/{name}" for name in names]
            blocks.append(stats[:, 3])
        if blocks:
            emit_block(trainer, steps, metric_names, torch.cat(blocks, dim=1).flatten().tolist(), FLOAT32_DIGITS)
        table = dict(zip(COLUMNS, stats.transpose(0, 1).reshape(len(COLUMNS), -1).tolist()))
        emit_layer_block(trainer, steps, names, table)
