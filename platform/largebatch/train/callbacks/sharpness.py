"""SharpnessProbe: the top Hessian eigenvalue of the training loss (Keskar et al. 2017's question, the modern proxy).

Measured at the end of training (and every ``every_n_epochs`` epochs, if set) on one fixed evaluation batch:
the first ``batch_size`` samples of the datamodule's fixed training subset (``gap_train_batches``, read through
:func:`~.evaluation_data.evaluation_data`), with the model in eval mode (BatchNorm uses its running statistics,
so the measured loss is a deterministic function of the weights). Power iteration to a relative tolerance ``tol``; logged as ``sharpness/lambda_max`` with
``sharpness/iterations`` and ``sharpness/seconds``. Compare runs at matched training loss, not equal epochs:
sharpness falls as the cross-entropy goes to 0 (Keskar et al. compare at equal epochs; match the loss).
A run that diverged (a :class:`DivergenceGuard` of the trainer tripped, or a weight is NaN/inf) is not probed at
its end: the curvature of blown-up weights means nothing, and the iteration would cost as much as a healthy one.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from largebatch.train.callbacks.emit import emit
from largebatch.train.callbacks.evaluation_data import evaluation_data
from largebatch.train.callbacks.divergence import DivergenceGuard
from largebatch.train.callbacks.group import find
from largebatch.train.sharpness import top_hessian_eigenvalue


class SharpnessProbe(Callback):
    """Logs λ_max of the training-loss Hessian at train end (and every ``every_n_epochs``)."""

    def __init__(self, every_n_epochs: int | None = None, batch_size: int = 512, tol: float = 1e-3,
                 max_iterations: int = 100) -> None:
        self.every_n_epochs, self.batch_size = every_n_epochs, batch_size
        self.tol, self.max_iterations = tol, max_iterations
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.measure(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.history and self.history[-1]["step"] == trainer.global_step:
            return
        diverged = any(guard.diverged for guard in find(trainer, DivergenceGuard))
        if diverged or not all(bool(torch.isfinite(p).all()) for p in pl_module.model.parameters()):
            return
        self.measure(trainer, pl_module)

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        started = time.perf_counter()
        rows: list[Any] = []
        for batch in evaluation_data(trainer).gap_train_batches():
            rows.append(batch)
            if sum(len(b[0]) for b in rows) >= self.batch_size:
                break
        batch = tuple(torch.cat(parts)[: self.batch_size].to(pl_module.device) for parts in zip(*rows))
        params = [p for p in pl_module.model.parameters() if p.requires_grad]
        was_training = pl_module.model.training
        pl_module.model.eval()
        try:
            with torch.enable_grad():
                def loss() -> torch.Tensor:
                    loss_sum, _, count = pl_module.batch_losses(batch)
                    return loss_sum / count

                result = top_hessian_eigenvalue(loss, params, max_iterations=self.max_iterations, tol=self.tol)
        finally:
            pl_module.model.train(was_training)
        record = {"step": trainer.global_step, "sharpness/lambda_max": result.value,
                  "sharpness/iterations": float(result.iterations), "sharpness/converged": float(result.converged),
                  "sharpness/seconds": time.perf_counter() - started}
        self.history.append(record)
        emit(trainer, {k: v for k, v in record.items() if k != "step"}, trainer.global_step)
        return record
