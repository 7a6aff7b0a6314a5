"""BatchScheduleRecorder: drives and records a run's :class:`~largebatch.train.batch_schedule.BatchSchedule`.

Per optimizer step it logs ``batch/size`` (effective batch, all ranks), ``batch/accumulate`` (micro-batches per
rank), ``batch/samples`` (training samples seen by the end of the step) and ``batch/lr`` (the lr of the first
parameter group at that step), in blocks (step convention of :mod:`.step_callback`). For an ``adaptive`` schedule it decides
the batch every ``every_n_steps`` steps from the noise monitor's smoothed B̂ (rank 0's estimate, broadcast so all
ranks agree) and logs ``batch/b_hat`` and ``batch/target`` (the batch chosen). With ``lr: adascale`` it hands the
monitor's |G|² and tr(Σ) estimates to the schedule after every step. It stops the trainer once the sample budget
is spent, and its checkpoint state is the schedule's, so a resumed run continues with the same batches.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from torch import Tensor

from largebatch.train.batch_schedule import BatchSchedule
from largebatch.train.callbacks.emit import emit_block
from largebatch.train.callbacks.noise_scale import NoiseScaleMonitor
from largebatch.train.callbacks.step_callback import StepCallback

STEP_METRICS = ("batch/size", "batch/accumulate", "batch/samples", "batch/lr")
DECISION_METRICS = ("batch/b_hat", "batch/target")


class BatchScheduleRecorder(StepCallback):
    """See the module docstring; ``noise`` is the run's noise monitor (needed by ``adaptive`` and ``adascale``)."""

    def __init__(self, schedule: BatchSchedule, noise: NoiseScaleMonitor | None = None) -> None:
        super().__init__()
        needs_noise = schedule.config.kind == "adaptive" or schedule.config.lr == "adascale"
        if needs_noise and noise is None:
            raise ValueError("an adaptive batch or adascale lr needs the NoiseScaleMonitor of the run")
        self.schedule, self.noise = schedule, noise

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._share_noise(trainer)

    def after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        s = self.schedule
        lr = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.hold(step, [float(s.batch_of(step)), float(s.accumulate_of(step)), float(s.samples_through(step)), lr],
                  "step")
        self._share_noise(trainer)
        if s.config.kind == "adaptive" and step % s.config.every_n_steps == 0 and self.noise.estimator.count:
            estimator = self.noise.estimator
            b_hat, count = trainer.strategy.broadcast((float(estimator.b_simple[-1]), estimator.count), src=0)
            target = s.decide(b_hat, count)
            self.hold(step, [b_hat, float(target * s.unit)], "decision")
        if s.budget_reached(step):
            trainer.fit_loop.epoch_loop.max_steps = step

    def _share_noise(self, trainer: pl.Trainer) -> None:
        """The (|G|², tr Σ) estimates to the schedule for ``adascale`` (rank 0's, so all ranks use one lr)."""
        estimator = self.noise.estimator if self.noise is not None else None
        if self.schedule.config.lr == "adascale" and estimator is not None and estimator.count:
            noise = (float(estimator.grad_sq[-1]), float(estimator.trace[-1]))
            self.schedule.noise = trainer.strategy.broadcast(noise, src=0)

    def write(self, trainer: pl.Trainer, steps: list[int], values: Tensor, context: Any) -> None:
        names = STEP_METRICS if context == "step" else DECISION_METRICS
        emit_block(trainer, steps, list(names), values.flatten().tolist())

    def state_dict(self) -> dict[str, Any]:
        """The schedule of the steps that ran (not those the data loader has prepared ahead)."""
        return self.schedule.state_dict(self._steps_done)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.schedule.load_state_dict(state_dict)
