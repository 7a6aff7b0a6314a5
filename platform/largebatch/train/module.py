"""Lightning modules: one per task type, sharing optimizer/schedule construction and evaluation."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.plugins import Precision
import torch
from lightning.pytorch.strategies import ParallelStrategy
from torch import Tensor, nn
from torch.nn import functional as F

from largebatch.optim.schedules import build_scheduler
from largebatch.train.batch_schedule import BatchSchedule
from largebatch.train.config import ExperimentConfig
from largebatch.train.optimizers import build_optimizer
from largebatch.train.plan import BatchPlan, schedule_for

Batch = tuple[Tensor, ...]
# Logged with the metrics so that Lightning writes them at this step (its documented override) instead of its count
# of batches that stepped, which lags one behind: every metric, Lightning's and the telemetry callbacks', then sits
# at step N = optimizer updates done (``trainer.global_step`` after update N; samples = N × batch size).
STEP = "step"


class LargeBatchModule(pl.LightningModule):
    """Trains ``model`` with the experiment's optimizer and per-step schedule; subclasses define the loss.

    ``batch_losses`` returns (summed loss, correct predictions, counted targets) of a batch, so that training
    (mean loss), validation and :meth:`evaluate` share one definition.

    With a ``schedule`` (a batch that changes during training) each training batch is a whole optimizer step,
    accumulated here over micro-batches of ``plan.micro_batch`` (manual optimization, see :meth:`scheduled_step`).
    """

    def __init__(self, model: nn.Module, config: ExperimentConfig, plan: BatchPlan,
                 schedule: BatchSchedule | None = None) -> None:
        super().__init__()
        self.model, self.config, self.plan, self.schedule = model, config, plan, schedule
        self.automatic_optimization = schedule is None
        self._base_lrs: list[float] = []
        self._batch_metrics: tuple[int, Tensor, Tensor] | None = None  # (step, loss, accuracy) of the last batch

    def batch_losses(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def _log_position(self, step: int, **how: Any) -> None:
        """Log ``step`` (see :data:`STEP`) and the epoch, which Lightning adds itself only when no step is logged."""
        self.log(STEP, float(step), **how)
        self.log("epoch", float(self.current_epoch), **how)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        step = self.trainer.global_step + 1  # the update this batch makes (or completes)
        if self.schedule is not None:
            loss, accuracy = self.scheduled_step(batch, self.schedule)
        else:
            loss_sum, correct, count = self.batch_losses(batch)
            loss, accuracy = loss_sum / count, correct / count
        self._batch_metrics = (step, loss.detach(), accuracy.detach())
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        """Logs the batch's training loss and accuracy (with its step and epoch) where Lightning will write them
        or someone reads them: on its ``log_every_n_steps`` cadence or a stop (its ``should_update_logs``, read
        here after the callbacks' hooks, which may stop training), at an epoch's last batch (the sweep's epoch
        report reads ``callback_metrics``) and at the last step. ``LightningModule.log`` costs about 0.15 ms a
        call on the host: logging four values at every step made a small model's step 1.5× a plain loop's."""
        if self._batch_metrics is None:
            return
        (step, loss, accuracy), self._batch_metrics = self._batch_metrics, None
        trainer = self.trainer
        if not (trainer._logger_connector.should_update_logs
                or trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
                or 0 < trainer.max_steps <= trainer.global_step):
            return
        self._log_position(step, on_step=True, on_epoch=False)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        self.log("train/acc", accuracy, on_step=True, on_epoch=False)

    def scheduled_step(self, batch: Batch, schedule: BatchSchedule) -> tuple[Tensor, Tensor]:
        """One optimizer step on ``batch`` (this rank's share of the step): its micro-batches' gradients are
        accumulated (each loss scaled by 1/k, as Lightning's accumulation does; DDP synchronises only the last
        backward pass), the lr is set from the schedule, then the optimizer steps. Returns the mean loss and
        accuracy of the micro-batches."""
        optimizer = self.optimizers()
        step = self.global_step + 1
        factor = schedule.lr_factor(step)
        for group, base in zip(optimizer.param_groups, self._base_lrs):
            group["lr"] = base * factor
        micro_batches = list(zip(*(t.split(self.plan.micro_batch) for t in batch)))
        strategy = self.trainer.strategy
        losses, accuracy = [], []
        for index, micro in enumerate(micro_batches):
            last = index == len(micro_batches) - 1
            blocked = strategy.block_backward_sync() if isinstance(strategy, ParallelStrategy) and not last else None
            with blocked or nullcontext():
                loss_sum, correct, count = self.batch_losses(micro)
                loss = loss_sum / count
                self.manual_backward(loss / len(micro_batches))
            losses.append(loss.detach())
            accuracy.append((correct / count).detach())
        optimizer.step()
        optimizer.zero_grad()
        return torch.stack(losses).mean(), torch.stack(accuracy).mean()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        loss_sum, correct, count = self.batch_losses(batch)
        n = int(count)
        self._log_position(self.trainer.global_step, on_epoch=True, batch_size=n)  # updates done so far
        self.log("val/loss", loss_sum / count, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)
        self.log("val/acc", correct / count, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Batch]) -> dict[str, float]:
        """Mean loss and accuracy over ``batches`` in eval mode (train mode restored afterwards).

        Batches go the way Lightning's evaluation loop feeds them: onto the module's device, converted by the
        trainer's precision plugin (``convert_input``: float inputs to bf16 under ``bf16-true``, to float64
        under ``64-true``) and run inside its ``val_step_context`` (autocast under ``*-mixed``). Without a
        trainer they are only moved to the device.
        """
        precision = self._trainer.precision_plugin if self._trainer is not None else Precision()
        was_training = self.model.training
        self.model.eval()
        totals = torch.zeros(3, device=self.device, dtype=torch.float64)
        with precision.val_step_context():
            for batch in batches:
                batch = precision.convert_input(tuple(t.to(self.device) for t in batch))
                totals += torch.stack([v.double() for v in self.batch_losses(batch)])
        self.model.train(was_training)
        loss_sum, correct, count = totals.tolist()
        return {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1)}

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.config.optimizer, self.model, self.plan.lr)
        if self.schedule is not None:  # the lr of every step is set by scheduled_step
            self._base_lrs = [group["lr"] for group in optimizer.param_groups]
            return {"optimizer": optimizer}
        scheduler = build_scheduler(optimizer, schedule_for(self.config, self.plan))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class ClassificationModule(LargeBatchModule):
    """Cross-entropy classification; accuracy is top-1."""

    def batch_losses(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        logits = self.model(x)
        loss_sum = F.cross_entropy(logits.float(), y, reduction="sum")
        correct = (logits.argmax(-1) == y).sum()
        return loss_sum, correct, torch.tensor(float(len(y)), device=loss_sum.device)


class MaskedLMModule(LargeBatchModule):
    """Masked language modelling (Devlin et al. 2019): loss and accuracy over the masked positions only."""

    def batch_losses(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        input_ids, labels = batch
        logits = self.model(input_ids)
        selected = labels != -100
        loss_sum = F.cross_entropy(logits[selected].float(), labels[selected], reduction="sum")
        correct = (logits[selected].argmax(-1) == labels[selected]).sum()
        return loss_sum, correct, selected.sum().clamp(min=1).float()


MODULES: dict[str, type[LargeBatchModule]] = {"classification": ClassificationModule, "mlm": MaskedLMModule}
