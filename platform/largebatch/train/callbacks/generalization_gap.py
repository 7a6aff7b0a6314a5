"""GeneralizationGap: train vs validation loss and accuracy, measured the same way, at every epoch end.

Large-batch training tends to reach a training loss as low as small-batch training and still generalise worse
(Keskar et al. 2017, arXiv:1609.04836); part of the gap closes with more updates (Hoffer et al. 2017,
arXiv:1705.08741). The training side is measured on a fixed training subset the size of the validation set,
in eval mode, so both numbers come from the same model with the same estimator (a running average of training
batches would mix models from the whole epoch and train-mode BatchNorm/dropout).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from largebatch.train.callbacks.emit import emit
from largebatch.train.callbacks.evaluation_data import evaluation_data


class GeneralizationGap(Callback):
    """At each training epoch end, evaluates ``pl_module.evaluate`` on the datamodule's ``gap_train_batches()``
    and ``val_batches()`` (read through :func:`~.evaluation_data.evaluation_data`) and logs, at
    ``step=trainer.global_step``: ``gap/train_loss``, ``gap/train_acc``,
    ``gap/val_loss``, ``gap/val_acc``, ``gen_gap`` = train_acc − val_acc, ``loss_gap`` = val_loss − train_loss
    and ``epoch`` (the finished epoch, 0-based). The last values stay in :attr:`last`, measured after optimizer
    step :attr:`step` (both in checkpoints too).

    The validation side is not evaluated twice: when Lightning's validation loop ran over the whole validation
    set at this very step (the usual case: once per epoch, just before this hook) and logged ``val_metrics``
    (loss, accuracy; weighted by batch size, i.e. the same means), those values are taken.
    """

    def __init__(self, val_metrics: tuple[str, str] = ("val/loss", "val/acc")) -> None:
        self.val_metrics = val_metrics
        self.last: dict[str, float] = {}
        self.step: int | None = None
        self._validated: tuple[int, dict[str, float]] | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validated = None
        whole = isinstance(trainer.limit_val_batches, float) and trainer.limit_val_batches == 1.0
        logged = trainer.callback_metrics
        if trainer.sanity_checking or not whole or not all(key in logged for key in self.val_metrics):
            return
        loss, accuracy = (float(logged[key]) for key in self.val_metrics)
        self._validated = (trainer.global_step, {"loss": loss, "accuracy": accuracy})

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        data = evaluation_data(trainer)
        train = pl_module.evaluate(data.gap_train_batches())
        validated, self._validated = self._validated, None
        if validated is not None and validated[0] == trainer.global_step:
            val = validated[1]
        else:
            val = pl_module.evaluate(data.val_batches())
        self.last = {
            "gap/train_loss": train["loss"],
            "gap/train_acc": train["accuracy"],
            "gap/val_loss": val["loss"],
            "gap/val_acc": val["accuracy"],
            "gen_gap": train["accuracy"] - val["accuracy"],
            "loss_gap": val["loss"] - train["loss"],
            "epoch": float(trainer.current_epoch),
        }
        self.step = trainer.global_step
        emit(trainer, self.last, trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        return {"last": dict(self.last), "step": self.step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last = dict(state_dict["last"])
        self.step = state_dict.get("step")
