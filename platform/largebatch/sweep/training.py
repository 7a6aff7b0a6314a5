"""Training inside a trial: the run with its reporter, single-process or as one rank of a data-parallel run.

Everything here imports Lightning; :mod:`largebatch.sweep.trial` imports this module only where training
happens, so the sweep driver and the actor driving a data-parallel trial stay light.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from largebatch.records.store import CONFIG
from largebatch.sweep.reporting import Report, finished_result, time_axes, with_finite_objective
from largebatch.sweep.space import Sweep
from largebatch.train.callbacks import GeneralizationGap, find
from largebatch.train.module import STEP
from largebatch.train.runner import RUN_DIR_ENV, train

POSITION = (STEP, "epoch")  # logged by the module to place its metrics; the time axes below say the same


def epoch_metrics(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
    """The metrics and time axes of the epoch that just ended (see the module docstring)."""
    metrics: dict[str, Any] = {
        name: float(value) for name, value in trainer.callback_metrics.items() if name not in POSITION
    }
    for gap in find(trainer, GeneralizationGap):
        metrics.update({k: v for k, v in gap.last.items() if k != "epoch"})
    samples = trainer.datamodule.samples_through(trainer.global_step)
    return {**metrics, **time_axes(trainer.global_step, pl_module.plan.as_dict(), samples), "status": "running"}


class EpochReporter(Callback):
    """Calls ``report`` with :func:`epoch_metrics` at every training epoch end (after validation), on every
    rank (Ray Train's ``report`` is collective); :attr:`last` keeps the latest result."""

    def __init__(self, report: Report, metric: str, mode: str) -> None:
        self.report, self.metric, self.mode = report, metric, mode
        self.last: dict[str, Any] = {}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.last = with_finite_objective(epoch_metrics(trainer, pl_module), self.metric, self.mode)
        self.report(dict(self.last))


class StopWhenRequested(Callback):
    """Stops training as Lightning's SIGTERM handling does (``SIGTERMException``: the runner records the run
    ``interrupted`` and finishes W&B) once the file ``request`` exists (see :mod:`largebatch.sweep.stopping`);
    looks for it at most every ``every_s`` seconds, so a batch costs a clock read."""

    def __init__(self, request: Path, every_s: float = 0.5) -> None:
        self.request, self.every_s = request, every_s
        self._next_look = 0.0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        now = time.monotonic()
        if now < self._next_look:
            return
        self._next_look = now + self.every_s
        if self.request.exists():
            raise SIGTERMException


def train_trial(
    params: Mapping[str, Any], sweep: Sweep, run_dir: Path, resume: bool, report: Report,
    provenance: Mapping[str, Any], trainer_overrides: Mapping[str, Any] | None = None,
    callbacks: tuple[Callback, ...] = (),
) -> None:
    """Train the trial's run with a reporter, then report its outcome: rank 0 (or the only process) from the
    run's summary (final metrics, status, final evaluation), other ranks their last epoch's result. A new run
    records ``provenance`` (the sweep driver's) over its own."""
    metric, mode = sweep.config.metric, sweep.config.mode
    reporter = EpochReporter(report, metric, mode)
    result = train(sweep.experiment_for(params, run_dir), run_dir=run_dir, resume=resume,
                   callbacks=[reporter, *callbacks], trainer_overrides=trainer_overrides, provenance=provenance)
    report(finished_result(result.summary, metric, mode) if result.summary else reporter.last)


class PrepareForRay(Callback):
    """Checks the trainer with Ray's ``prepare_trainer`` once it is set up (Ray strategy and environment)."""

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        from ray.train.lightning import prepare_trainer

        prepare_trainer(trainer)


def wait_for_run(run_dir: Path, timeout_s: float = 600.0) -> None:
    """Block until rank 0 has created the run (its ``config.yaml``, written atomically)."""
    deadline = time.monotonic() + timeout_s
    while not (run_dir / CONFIG).is_file():
        if time.monotonic() > deadline:
            raise TimeoutError(f"rank 0 did not create the run {run_dir} within {timeout_s:g} s")
        time.sleep(0.2)


def train_rank(config: dict[str, Any]) -> None:
    """One Ray Train worker (rank) of a data-parallel trial.

    Rank 0 creates (or resumes) the run; the other ranks wait for it and open the same run directory, so every
    rank starts from the same checkpoint (or none) and only rank 0 writes metrics. Other ranks on rank 0's node
    are also marked as the runner's re-launched DDP ranks (``RUN_DIR_ENV``), which never write the run's summary.
    """
    import ray.train
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment

    run_dir, resume = Path(config["run_dir"]), config["resume"]
    if ray.train.get_context().get_world_rank() > 0:
        os.environ[RUN_DIR_ENV] = str(run_dir)
        if not resume:
            wait_for_run(run_dir)
            resume = True
    overrides = {"strategy": RayDDPStrategy(), "plugins": [RayLightningEnvironment()], "devices": "auto"}
    train_trial(config["params"], config["sweep"], run_dir, resume, ray.train.report, config["provenance"],
                trainer_overrides=overrides, callbacks=(PrepareForRay(),))
