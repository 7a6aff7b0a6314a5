"""DivergenceGuard: stop a run whose training loss became NaN/inf or blew up, and record it as a result.

Large-batch runs diverge at learning rates only slightly too high, typically early, before warmup has done
its work (Goyal et al. 2017, arXiv:1706.02677 §2.2; You et al. 2017, arXiv:1708.03888 §3). A sweep needs
that as an outcome (``status="diverged"``), not as a crash, and should not spend the rest of the budget on
NaN parameters. The guard stops the trainer normally (``trainer.should_stop``); it never raises.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from largebatch.train.callbacks.emit import emit
from largebatch.train.callbacks.step_callback import StepCallback


def batch_loss(outputs: Any) -> Tensor | None:
    """The training loss in ``outputs`` (a tensor, or a dict with ``"loss"``); None for a skipped step."""
    loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
    return loss if isinstance(loss, Tensor) else None


def worse(worst: float | None, loss: float) -> float:
    """The worse of two losses: NaN wins, ±inf counts as +inf."""
    loss = abs(loss) if math.isinf(loss) else loss
    if worst is None or math.isnan(loss):
        return loss
    return worst if math.isnan(worst) else max(worst, loss)


class DivergenceGuard(StepCallback):
    """Stops training when the training loss is NaN, ±inf, or more than ``factor`` × the initial loss.

    Every batch's loss is folded into the worst loss since the last check (NaN wins, −inf counts as inf),
    so nothing is missed between checks: on an accelerator the fold stays on the device (no batch forces a
    host sync); a CPU loss is read directly, which is cheaper than tensor ops, and only a loss that could be a
    divergence (not below ``factor`` × the initial loss, once that is known) is folded at all. Checks run after
    the first optimizer step and every one whose ``trainer.global_step`` is a multiple of ``check_every_n_steps``,
    and once when training ends (so the last steps are covered). The initial loss is the first finite value
    checked; the ``factor`` rule applies from ``global_step > min_steps`` and only when the initial loss is
    positive. On divergence: ``trainer.should_stop = True``, :attr:`diverged` =
    ``{"status": "diverged", "step": global_step, "loss": value, "reason": "nan" | "inf" | "exceeded
    <factor>×initial"}`` and ``diverged`` = 1 logged to all loggers. Under DDP the decision is shared by all
    ranks (a rank that saw nothing wrong records ``reason="another rank"``).
    """

    def __init__(self, factor: float = 10.0, check_every_n_steps: int = 1, min_steps: int = 0) -> None:
        super().__init__()
        if factor <= 1:
            raise ValueError(f"factor must be > 1, got {factor}")
        if check_every_n_steps < 1 or min_steps < 0:
            raise ValueError(f"need check_every_n_steps >= 1, min_steps >= 0; got {check_every_n_steps}, {min_steps}")
        self.factor = float(factor)
        self.every_n_steps = check_every_n_steps
        self.min_steps = min_steps
        self.initial_loss: float | None = None
        self.diverged: dict[str, Any] | None = None
        self._worst: Tensor | float | None = None
        self._limit = -math.inf  # a CPU loss below this cannot be a divergence: factor × initial loss, once known
        self._ranks = 1  # the trainer's world size, read when a fit starts
        self._on_cpu = True  # whether the module (so the loss) is on the CPU, read when a fit starts

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = batch_loss(outputs)
        if loss is not None and self._on_cpu:
            value = loss.item()
            if not -math.inf < value < self._limit:  # NaN, ±inf, over the limit, or the initial loss still unknown
                self._worst = worse(self._worst, value)  # type: ignore[arg-type]
        elif loss is not None:
            loss = loss.detach().float().reshape(())
            loss = torch.where(loss.isinf(), loss.abs(), loss)
            self._worst = loss if self._worst is None else torch.maximum(self._worst, loss)  # type: ignore[arg-type]
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ranks = trainer.world_size
        self._on_cpu = pl_module.device.type == "cpu"

    def after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        self._check(trainer, step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The steps after the last scheduled check are checked too."""
        self._check(trainer, trainer.global_step)
        super().on_train_end(trainer, pl_module)

    def _check(self, trainer: pl.Trainer, step: int) -> None:
        worst, self._worst = self._worst, None
        if worst is None and self._ranks == 1:
            return
        value = math.nan if worst is None else float(worst)  # None: nothing to check on this rank
        reason = None if worst is None else self._reason(value, step)
        diverged = reason is not None
        if self._ranks > 1:
            diverged = trainer.strategy.reduce_boolean_decision(diverged, all=False)
        if not diverged:
            return
        trainer.should_stop = True
        if self.diverged is None:  # the first record stands (Trainer(min_steps=...) may delay the stop)
            self.diverged = {"status": "diverged", "step": step, "loss": value, "reason": reason or "another rank"}
            emit(trainer, {"diverged": 1.0}, step)

    def _reason(self, value: float, step: int) -> str | None:
        """Why the worst loss ``value`` at ``step`` is a divergence, else None; the first finite value is kept as
        the initial loss."""
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf"
        if self.initial_loss is None:
            self._set_initial_loss(value)
        elif step > self.min_steps and self.initial_loss > 0 and value > self.factor * self.initial_loss:
            return f"exceeded {self.factor:g}×initial"
        return None

    def _set_initial_loss(self, value: float | None) -> None:
        self.initial_loss = value
        if value is None:
            self._limit = -math.inf
        else:
            self._limit = self.factor * value if value > 0 else math.inf

    def state_dict(self) -> dict[str, Any]:
        return {"initial_loss": self.initial_loss, "diverged": self.diverged}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._set_initial_loss(state_dict["initial_loss"])
        self.diverged = state_dict["diverged"]
