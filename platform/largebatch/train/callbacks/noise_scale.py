"""NoiseScaleMonitor: the gradient noise scale B_simple during training (McCandlish et al. 2018, App. A.1).

Two gradient norms per measurement, from gradients the run already computes where possible:

* With gradient accumulation (A > 1 micro-batches per step): |G_small|² from the first micro-batch's gradient
  (read in ``on_after_backward``; Lightning scales each micro-batch loss by 1/A, so it is A²·‖p.grad‖²) and
  |G_big|² from the accumulated gradient in ``on_before_optimizer_step``. B_small = micro-batch, B_big = the
  effective batch. Under DDP the first micro-batch is not yet all-reduced (Lightning skips the sync while
  accumulating), so B_small is per device and B_big global, as in the paper's data-parallel estimator.
* Without accumulation: every ``probe_every_n_steps`` steps, one extra gradient of the first
  ``probe_fraction`` (default ¼) of the current micro-batch (``torch.autograd.grad``, so ``p.grad`` is
  untouched; BatchNorm buffers are restored), B_small = that slice, B_big = the effective batch. A small slice
  is cheap and gives a less noisy tr(Σ) estimate than a half (the two norms differ more). Its cost is logged as
  ``noise_scale/probe_ms``.

Batch sizes are counted from the batches the step saw (:func:`~.throughput.samples_in`), so the monitor reads
nothing of the datamodule and stays right when the batch size changes during training: B_big = the samples of the
step's micro-batches × the number of devices, B_small = the first micro-batch (per device) or the probe's slice.

Logged (step convention of :mod:`.step_callback`): ``noise_scale/b_simple``, ``noise_scale/grad_sq`` (|G|²),
``noise_scale/trace`` (tr Σ), each from the bias-corrected EMAs; with ``per_layer=True`` also
``noise_scale/b_simple/<layer>``. Not for fp16 AMP (the first micro-batch gradient is still loss-scaled).
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from largebatch.train.callbacks.emit import emit
from largebatch.train.callbacks.layer_norms import norms
from largebatch.train.callbacks.step_callback import StepCallback, check_every, due
from largebatch.train.callbacks.throughput import samples_in
from largebatch.train.noise_scale import NoiseScaleEstimator


def _trainable(pl_module: pl.LightningModule) -> list[tuple[str, Tensor]]:
    return [(n, p) for n, p in pl_module.model.named_parameters() if p.requires_grad]


class NoiseScaleMonitor(StepCallback):
    """Estimates B_simple = tr(Σ)/|G|² per optimizer step (see the module docstring)."""

    def __init__(self, every_n_steps: int = 10, probe_every_n_steps: int = 10, ema: float = 0.95,
                 per_layer: bool = False, probe_fraction: float = 0.25) -> None:
        super().__init__()
        if not 0 < probe_fraction < 1:
            raise ValueError(f"probe_fraction must lie in (0, 1), got {probe_fraction}")
        self.probe_fraction = probe_fraction
        self.every_n_steps = check_every(every_n_steps)
        self.probe_every_n_steps = check_every(probe_every_n_steps)
        self.estimator = NoiseScaleEstimator(ema)
        self.per_layer = per_layer
        self.history: list[dict[str, float]] = []
        self.probe_seconds = 0.0
        self._micro = 0
        self._samples = 0
        self._small: tuple[Tensor, float] | None = None
        self._batch: Any = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self._micro == 0:
            self._batch, self._samples = batch, 0
        self._samples += samples_in(batch)

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._micro += 1
        # the accumulation of the step in progress (it changes under a batch schedule)
        accumulate = getattr(trainer.datamodule, "accumulate", trainer.accumulate_grad_batches)
        if self._micro == 1 and accumulate > 1:
            grads = [p.grad for _, p in _trainable(pl_module)]
            self._small = (norms(grads).double() ** 2 * accumulate**2, math.nan)  # its size: known at the step

    def before_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        micro, self._micro = self._micro, 0
        small, self._small = self._small, None
        if small is None:
            if step % self.probe_every_n_steps and step != 1:
                return
            small = self._probe(pl_module)
        else:  # one micro-batch of the step: its samples over its backward passes (one batch each, or one step
            # holding all of them under a batch schedule)
            small = (small[0], self._samples / micro)
        big_sq = norms([p.grad for _, p in _trainable(pl_module)]).double() ** 2
        small_sq, b_small = small
        b_big = float(self._samples * trainer.world_size)
        # layer-wise estimates first, then the whole model (sums of squared norms)
        self.estimator.update(torch.cat([small_sq, small_sq.sum().reshape(1)]),
                              torch.cat([big_sq, big_sq.sum().reshape(1)]), b_small, b_big)

    def after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        if self.estimator.count == 0 or not due(step, self.every_n_steps):
            return
        b_simple = self.estimator.b_simple.tolist()
        grad_sq, trace = self.estimator.grad_sq[-1].item(), self.estimator.trace[-1].item()
        metrics = {"noise_scale/b_simple": b_simple[-1], "noise_scale/grad_sq": grad_sq, "noise_scale/trace": trace}
        if self.probe_seconds:
            metrics["noise_scale/probe_ms"] = 1e3 * self.probe_seconds / max(1, self.estimator.count)
        if self.per_layer:
            names = [n for n, _ in _trainable(pl_module)]
            metrics.update({f"noise_scale/b_simple/{n}": v for n, v in zip(names, b_simple[:-1])})
        self.history.append({"step": step, **metrics})
        emit(trainer, metrics, step)

    def _probe(self, pl_module: pl.LightningModule) -> tuple[Tensor, float]:
        """|G|² of a slice of the current micro-batch, without touching p.grad or BatchNorm buffers."""
        started = time.perf_counter()
        size = max(1, int(len(self._batch[0]) * self.probe_fraction))
        batch = tuple(t[:size] for t in self._batch)
        buffers = [b.clone() for b in pl_module.model.buffers()]
        params = [p for _, p in _trainable(pl_module)]
        with torch.enable_grad():
            loss_sum, _, count = pl_module.batch_losses(batch)
            grads = torch.autograd.grad(loss_sum / count, params)
        for buffer, saved in zip(pl_module.model.buffers(), buffers):
            buffer.copy_(saved)
        result = norms(list(grads)).double() ** 2, float(size)
        self.probe_seconds += time.perf_counter() - started
        return result

    def state_dict(self) -> dict[str, Any]:
        return {"estimator": self.estimator.state_dict(), "history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.estimator.load_state_dict(state_dict["estimator"])
        self.history = state_dict["history"]
