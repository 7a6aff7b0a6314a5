"""Plumbing shared by the telemetry callbacks: per-optimizer-step hooks, cadence, held values, emitting, norms.

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
and table (``log_metric_block``, ``log_layer_block``, where the logger has them). Blocks are flushed every
``FLUSH_EVERY_N_STEPS`` held steps or ``FLUSH_EVERY_S`` seconds, whichever comes first, and at every epoch end,
checkpoint, the end of training and on an exception — so a run killed outright (SIGKILL) loses at most that
window of telemetry.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from itertools import groupby
from typing import Any
from weakref import WeakKeyDictionary

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from largebatch.optim import LayerStats

HALF = (torch.float16, torch.bfloat16)
Layers = list[tuple[str, Tensor, dict[str, Any]]]
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


def emit(trainer: pl.Trainer, metrics: Mapping[str, float], step: int) -> None:
    """Scalars to every logger of ``trainer`` (one call per logger, not ``LightningModule.log``)."""
    for logger in trainer.loggers:
        logger.log_metrics(dict(metrics), step=step)


def emit_block(
    trainer: pl.Trainer, steps: list[int], names: list[str], values: list[float], digits: int | None = None
) -> None:
    """Scalars of several steps to every logger: ``values[i * len(names) + j]`` is ``names[j]`` at ``steps[i]``.
    Loggers with ``log_metric_block`` take the block in one call (written with ``digits`` significant digits where
    given, e.g. 9 for float32 measurements), others one ``log_metrics`` per step."""
    width = len(names)
    for logger in trainer.loggers:
        log_block = getattr(logger, "log_metric_block", None)
        if callable(log_block):
            log_block(steps, names, values, digits=digits)
            continue
        for i, step in enumerate(steps):
            logger.log_metrics(dict(zip(names, values[i * width:(i + 1) * width])), step=step)


def emit_layer_block(trainer: pl.Trainer, steps: list[int], layers: list[str], table: dict[str, list[float]]) -> None:
    """Per-layer tables of several steps (each column ``len(steps) * len(layers)`` values, step after step) to the
    loggers that take them: in one call where the logger has ``log_layer_block``, else one ``log_layers`` per step."""
    n = len(layers)
    for logger in trainer.loggers:
        log_block = getattr(logger, "log_layer_block", None)
        log_layers = getattr(logger, "log_layers", None)
        if callable(log_block):
            log_block(steps, layers, table)
        elif callable(log_layers):
            for i, step in enumerate(steps):
                log_layers(step, {"layer": layers, **{key: column[i * n:(i + 1) * n] for key, column in table.items()}})


def joined(tensors: Sequence[Tensor]) -> Tensor:
    """``tensors`` flattened and joined into one vector: one ``torch.cat`` in the usual case (1-D tensors on one
    device, dtypes promoted), else each is flattened and moved to the first one's device."""
    try:
        return torch.cat(list(tensors))
    except RuntimeError:  # 0-d tensors, or several devices
        device = tensors[0].device
        return torch.cat([t.reshape(-1).to(device) for t in tensors])


def norms(tensors: Sequence[Tensor], norm_type: float = 2.0) -> Tensor:
    """The ``norm_type``-norm of each tensor, in order, as one float32 vector on the first tensor's device.

    One multi-tensor ``torch._foreach_norm`` call (two where half- and full-precision tensors mix: the
    half-precision ones are reduced in float32, the others in their own dtype).
    """
    if not tensors:
        return torch.empty(0)
    device, dtype = tensors[0].device, tensors[0].dtype
    if dtype == torch.float32 and all(t.dtype == dtype and t.device == device for t in tensors):  # the usual case
        return torch.stack(torch._foreach_norm(list(tensors), norm_type))
    out: list[Tensor] = [torch.empty(0)] * len(tensors)
    for half in (True, False):
        index = [i for i, t in enumerate(tensors) if (t.dtype in HALF) == half]
        if index:
            results = torch._foreach_norm([tensors[i] for i in index], norm_type, dtype=torch.float32 if half else None)
            for i, n in zip(index, results):
                out[i] = n.to(device, torch.float32)
    return torch.stack(out)


_ALL_LAYERS: WeakKeyDictionary[torch.optim.Optimizer, tuple[int, Layers]] = WeakKeyDictionary()
_GRAD_NORMS: WeakKeyDictionary[torch.optim.Optimizer, tuple[int, float, list[str], Tensor]] = WeakKeyDictionary()


def named_layers(optimizer: torch.optim.Optimizer, model: nn.Module) -> Layers:
    """(name, parameter, group) for every parameter of ``optimizer`` that has a gradient.

    Names are the group's ``param_names`` (what LARS/LAMB statistics use, and what
    :func:`largebatch.optim.param_groups` sets), else ``model``'s parameter names (the monitors pass the
    LightningModule: e.g. ``net.0.weight``), else ``group{i}.param{j}``. The name table is built once per optimizer (and again if its groups grow).
    """
    size = sum(len(group["params"]) for group in optimizer.param_groups)
    cached = _ALL_LAYERS.get(optimizer)
    if cached is None or cached[0] != size:
        model_names = {id(p): n for n, p in model.named_parameters()}
        layers = []
        for i, group in enumerate(optimizer.param_groups):
            names = group.get("param_names") or [
                model_names.get(id(p), f"group{i}.param{j}") for j, p in enumerate(group["params"])
            ]
            layers.extend(zip(names, group["params"], [group] * len(names)))
        cached = _ALL_LAYERS[optimizer] = (size, layers)
    return [layer for layer in cached[1] if layer[1].grad is not None]


def unnamed_to_module_names(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict[str, str]:
    """``model``'s names of the parameters in ``optimizer``'s groups without ``param_names``, keyed by the
    ``group{i}.param{j}`` names that LARS/LAMB statistics give them (e.g. after ``LAMB(model.parameters())``)."""
    model_names = {id(p): n for n, p in model.named_parameters()}
    return {f"group{i}.param{j}": model_names[id(p)] for i, group in enumerate(optimizer.param_groups)
            if not group.get("param_names") for j, p in enumerate(group["params"]) if id(p) in model_names}


def step_stats(optimizer: torch.optim.Optimizer) -> list[LayerStats]:
    """``optimizer``'s statistics of its last step (it has ``layer_stats()``), one part per parameter bucket where
    it offers them so (``bucket_stats()``, nothing joined), else one part."""
    by_bucket = getattr(optimizer, "bucket_stats", None)
    return by_bucket() if callable(by_bucket) else [optimizer.layer_stats()]


def step_sees_final_gradients(trainer: pl.Trainer, optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer``'s own per-step statistics (``layer_stats()``, e.g. LARS's and fused LAMB's ‖g‖) are of
    the gradients as ``on_before_optimizer_step`` sees them: nothing clips them in between and no fp16 GradScaler
    can skip the step (which would leave the previous step's statistics in place)."""
    return hasattr(optimizer, "layer_stats") and not trainer.gradient_clip_val and trainer.precision != "16-mixed"


def grad_norms(
    optimizer: torch.optim.Optimizer, model: nn.Module, step: int, norm_type: float = 2.0
) -> tuple[list[str], Tensor]:
    """Layer names and ``norm_type``-norms of the gradients ``optimizer`` is about to apply at ``step``.

    Measured once per step and norm type, whichever monitor asks first (trust ratio and gradient-norm
    monitors share it); call it from ``on_before_optimizer_step``, when the gradients are final.
    """
    cached = _GRAD_NORMS.get(optimizer)
    if cached is not None and cached[:2] == (step, norm_type):
        return cached[2], cached[3]
    layers = named_layers(optimizer, model)
    names, values = [name for name, _, _ in layers], norms([p.grad for _, p, _ in layers], norm_type)
    _GRAD_NORMS[optimizer] = (step, norm_type, names, values)
    return names, values
