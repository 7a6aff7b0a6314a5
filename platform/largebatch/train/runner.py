"""Run one experiment end to end: data, model, Lightning trainer, callbacks, run store, W&B mirror.

``train(config)`` is what ``largebatch train`` and every sweep trial call. A run never knows about sweeps:
callers may add callbacks (e.g. to report to a tuner) and choose the run directory.
Divergence is a result (``status="diverged"``), not an exception; any other error is recorded as
``status="failed"`` with the error and then re-raised, so a caller can retry.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from largebatch.data import build_dataset
from largebatch.models import build_model
from largebatch.train.batch_schedule import BatchSchedule, build_batch_schedule, max_steps
from largebatch.train.callbacks import (
    BatchScheduleRecorder, CallbackGroup, DivergenceGuard, GeneralizationGap, GradNormMonitor, NoiseScaleMonitor,
    ProgressLog, SharpnessProbe, Throughput, TrustRatioMonitor,
)
from largebatch.core.errors import ConfigError
from largebatch.records.store import FINISHED, SUMMARY, RunStore
from largebatch.train.chance import at_chance_warning
from largebatch.train.config import ExperimentConfig
from largebatch.train.datamodule import TensorDataModule
from largebatch.train.logger import RunStoreLogger
from largebatch.train.module import MODULES
from largebatch.train.plan import BatchPlan, plan_batches
from largebatch.train.scheduled_data import ScheduledDataModule
from largebatch.train.wandb_mirror import finish as finish_wandb
from largebatch.train.wandb_mirror import wandb_logger

CHECKPOINT = "last.ckpt"
RUN_DIR_ENV = "LARGEBATCH_RUN_DIR"


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    run_id: str
    status: str
    summary: dict[str, Any]
    warnings: tuple[str, ...] = ()  # what the caller should tell the user, e.g. a run that ended at chance level


def _uses_cuda(config: ExperimentConfig) -> bool:
    accelerator = config.trainer.accelerator
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def device_count(config: ExperimentConfig) -> int:
    """How many devices the trainer will use (needed before it exists, to split the batch)."""
    if config.trainer.devices == "auto":
        return torch.cuda.device_count() if _uses_cuda(config) else 1
    return config.trainer.devices


def available_devices(config: ExperimentConfig) -> tuple[int, str]:
    """How many devices of the configured accelerator this machine has, and what they are called."""
    if _uses_cuda(config):
        return torch.cuda.device_count(), "CUDA devices"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores, "CPU cores"


def check_devices(config: ExperimentConfig) -> None:
    """Refuse ``trainer.devices`` beyond what this machine has: Lightning starts one process per device, and on
    CPU dozens of them would share a few cores silently for minutes. (MPS has one device; Lightning checks it.)"""
    devices = config.trainer.devices
    if devices == "auto" or devices <= 1 or config.trainer.accelerator == "mps":
        return
    available, kind = available_devices(config)
    if devices > available:
        raise ConfigError(f"trainer.devices={devices}: this machine has {available} {kind} (one process per device); "
                          f"use trainer.devices={max(available, 1)} or fewer")


def check_precision(config: ExperimentConfig) -> None:
    """Refuse ``16-mixed`` off a GPU: fp16 autocast has no CPU kernels, and Lightning would silently train in
    ``bf16-mixed`` while the run records ``16-mixed``."""
    if config.trainer.precision == "16-mixed" and not _uses_cuda(config):
        raise ConfigError("trainer.precision: '16-mixed' needs a CUDA GPU (fp16 autocast does not run on the CPU); "
                          "on the CPU use one of 32-true, bf16-mixed, bf16-true, 64-true")


def _progress_bar(setting: str) -> bool:
    if setting == "auto":
        return sys.stderr.isatty() and not os.environ.get("CI")
    return setting == "on"


def _needs_noise_scale(config: ExperimentConfig) -> bool:
    """An adaptive batch and AdaScale's lr read the noise scale, so they measure it whatever ``probes`` says."""
    return config.batch_schedule.kind == "adaptive" or (config.batch_schedule.kind != "fixed"
                                                        and config.batch_schedule.lr == "adascale")


def _probes(config: ExperimentConfig) -> dict[str, Callback]:
    """The probes ``config.probes`` enables (both off by default; the noise scale on where the batch schedule
    needs it)."""
    noise, sharp = config.probes.noise_scale, config.probes.sharpness
    probes: dict[str, Callback] = {}
    if noise.enabled or _needs_noise_scale(config):
        probes["noise_scale"] = NoiseScaleMonitor(every_n_steps=noise.every_n_steps, ema=noise.ema,
                                                  probe_every_n_steps=noise.probe_every_n_steps,
                                                  per_layer=noise.per_layer)
    if sharp.enabled:
        probes["sharpness"] = SharpnessProbe(every_n_epochs=sharp.every_n_epochs, batch_size=sharp.batch_size,
                                             tol=sharp.tol, max_iterations=sharp.max_iterations)
    return probes


@dataclass(frozen=True)
class Telemetry:
    """The runner's own callbacks; the summary reads the guard, the gap and the throughput."""

    trust_ratio: TrustRatioMonitor
    grad_norm: GradNormMonitor
    gap: GeneralizationGap
    guard: DivergenceGuard
    throughput: Throughput
    probes: tuple[Callback, ...] = ()  # after the guard: the sharpness probe skips a run the guard stopped at its end
    batch_schedule: BatchScheduleRecorder | None = None  # where the batch changes during training
    progress: ProgressLog | None = None

    def in_order(self) -> list[Callback]:
        """All of them, in the order their hooks run."""
        rest = [c for c in (self.batch_schedule, self.progress) if c is not None]
        return [self.trust_ratio, self.grad_norm, self.gap, self.guard, self.throughput, *self.probes, *rest]


def _callbacks(config: ExperimentConfig, schedule: BatchSchedule | None = None) -> Telemetry:
    """The telemetry callbacks (the runner registers them as one :class:`CallbackGroup`), with the batch schedule's
    recorder where the batch changes."""
    every = config.logging.telemetry_every_n_steps
    probes = _probes(config)
    progress = config.logging.progress_every_s and not sys.stdout.isatty()  # nohup, SLURM, CI, a pipe
    return Telemetry(
        trust_ratio=TrustRatioMonitor(every_n_steps=every, per_layer_to_loggers=config.logging.per_layer_to_loggers),
        grad_norm=GradNormMonitor(every_n_steps=every),
        gap=GeneralizationGap(),
        # the guard folds every step's loss (on the device, on an accelerator) and syncs only when it checks
        guard=DivergenceGuard(factor=config.guard.divergence_factor, check_every_n_steps=config.logging.every_n_steps),
        throughput=Throughput(every_n_steps=config.logging.every_n_steps, samples_per_step=config.batch_size),
        probes=tuple(probes.values()),
        batch_schedule=None if schedule is None else BatchScheduleRecorder(schedule, probes.get("noise_scale")),
        progress=ProgressLog(every_s=config.logging.progress_every_s, samples_per_step=config.batch_size)
        if progress else None,
    )


def _checkpoint(checkpoint_dir: Path) -> ModelCheckpoint:
    """One rolling checkpoint at each epoch end (monitor=None, top-1 = the latest): what ``--resume`` continues
    from."""
    return ModelCheckpoint(dirpath=checkpoint_dir, filename=CHECKPOINT.removesuffix(".ckpt"), save_top_k=1,
                           every_n_epochs=1, enable_version_counter=False)


def _final_evaluation(
    module: pl.LightningModule, data: TensorDataModule, gap: GeneralizationGap, step: int
) -> dict[str, float]:
    """Loss and accuracy of the final model on the gap-train, validation and test sets.

    Train and validation come from ``gap`` when it measured this very step (training ended at an epoch end,
    the usual case): the same model on the same batches, so they are not evaluated twice.
    """
    reused = {}
    if gap.step == step and gap.last:
        reused = {f"{split}_{key}": gap.last[f"gap/{split}_{key}"]
                  for split in ("train", "val") for key in ("loss", "acc")}
    results = dict(reused)
    for split, batches in (("train", data.gap_train_batches), ("val", data.val_batches), ("test", data.test_batches)):
        if f"{split}_loss" in reused:
            continue
        evaluated = batches()
        if evaluated is not None:
            for key, value in module.evaluate(evaluated).items():
                results[f"{split}_{'acc' if key == 'accuracy' else key}"] = value
    results["gen_gap"] = results["train_acc"] - results["val_acc"]
    return results


def prepare(config: ExperimentConfig) -> tuple[TensorDataModule, pl.LightningModule, BatchPlan]:
    """Data, model and batch plan for ``config`` (seeded), without a trainer."""
    check_precision(config)
    pl.seed_everything(config.seed, workers=True, verbose=False)
    try:
        splits = build_dataset(config.data.name, seed=config.seed, **config.data.options)
    except (TypeError, ValueError, RuntimeError) as err:  # RuntimeError: an online-only dataset, offline
        raise ConfigError(f"data: {err}") from None
    try:
        model = build_model(config.model.name, splits.meta, **config.model.options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model: {err}") from None
    plan = plan_batches(config, len(splits.train[0]), device_count(config))
    schedule = build_batch_schedule(config, plan)
    module = MODULES[splits.meta.get("task", "classification")](model, config, plan, schedule)
    if schedule is not None:
        return ScheduledDataModule(splits, plan, config.seed, schedule=schedule), module, plan
    return TensorDataModule(splits, plan, config.seed), module, plan


class ResumeRefused(ValueError):
    """A resume that would train a finished run again (its results would be overwritten)."""


def _record_end(store: RunStore, raised: BaseException, **fields: Any) -> None:
    """Write the terminal ``fields`` into the summary where the disk allows, and say on ``raised`` (a note) whether
    that worked; close the store's files. A disk error without a file name gets the run directory as its name."""
    if isinstance(raised, OSError) and raised.filename is None:
        raised.filename = str(store.path)
    try:
        store.write_summary(**fields)
    except OSError as failed:
        raised.add_note(f"status not recorded ({failed.strerror}: {failed.filename or store.path / SUMMARY})")
    else:
        raised.add_note(f"run {store.run_id} recorded as {fields['status']} in {store.path / SUMMARY}")
        if fields["status"] == "interrupted":
            raised.add_note(f"continue it with --resume {store.run_id}")
    try:
        store.close()
    except OSError:
        pass  # rows the full disk refused are lost; the summary above says how the run ended


def _open_store(config: ExperimentConfig, resolved: dict[str, Any], run_dir: str | Path | None,
                resume: bool, devices: int, provenance: Mapping[str, Any] | None) -> tuple[RunStore, bool]:
    """The run's store, locked for this process, and whether this process is a re-launched DDP rank (which must
    not write it, nor lock it).

    Lightning's DDP launcher re-runs the command once per extra device; the first process records its run
    directory in ``LARGEBATCH_RUN_DIR`` (inherited by those ranks), so all ranks share one run. A resume of a
    finished (completed or diverged) run is refused (ResumeRefused), as is one of a run another process writes
    (RunBusyError).
    """
    shared = os.environ.get(RUN_DIR_ENV)
    if shared and max(int(os.environ.get(var) or 0) for var in ("RANK", "LOCAL_RANK")) > 0:
        return RunStore.open(shared), True
    if resume:
        if run_dir is None:
            raise ValueError("resume needs the run directory to continue")
        store = RunStore.open(run_dir)
    elif run_dir is not None:
        store = RunStore.create(Path(run_dir).parent, config.name, run_id=Path(run_dir).name)
    else:
        store = RunStore.create(config.tracking.runs_root, config.name)
    store.lock()
    try:
        if resume:
            status = store.read_summary()["status"]
            if status in FINISHED:
                raise ResumeRefused(f"run {store.run_id} is {status} ({store.path}): resuming would train it again "
                                    "and overwrite its results; start a new run instead")
        else:
            store.write_config(resolved)
            store.write_provenance(seed=config.seed, extra=provenance)
        store.write_summary(status="running", run_id=store.run_id, name=config.name)
    except OSError as err:
        _record_end(store, err, status="failed", error=f"{type(err).__name__}: {err}")
        store.unlock()
        raise
    except BaseException:
        store.unlock()
        raise
    if devices > 1:
        os.environ[RUN_DIR_ENV] = str(store.path.resolve())
    return store, False


def train(
    config: ExperimentConfig,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    trainer_overrides: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> RunResult:
    """Train ``config`` into a new run directory under ``tracking.runs_root`` (or ``run_dir``).

    With ``resume=True`` and an existing ``run_dir``, training continues from its last checkpoint and appends
    to its records. ``trainer_overrides`` replace or add ``lightning.pytorch.Trainer`` arguments (e.g. a
    launcher's own strategy and cluster-environment plugins). ``provenance`` keys replace those this process
    collects in a new run's ``provenance.json`` (a sweep records its driver's command and code once). The run
    directory is locked for this process from start to end (``RunStore.lock``). An interruption (SIGTERM, Ctrl-C)
    or an error is recorded in the summary where the disk allows, then re-raised with a note saying how the run
    was recorded.
    """
    if "devices" not in (trainer_overrides or {}):  # a launcher that sets devices places the processes itself
        check_devices(config)
    data, module, plan = prepare(config)
    resolved = {**config.resolved(), "plan": plan.as_dict()}
    store, is_child = _open_store(config, resolved, run_dir, resume, plan.devices, provenance)
    try:
        return _fit(config, store, is_child, data, module, plan, resolved, resume, callbacks, trainer_overrides)
    finally:
        store.unlock()


def _fit(
    config: ExperimentConfig, store: RunStore, is_child: bool, data: TensorDataModule, module: pl.LightningModule,
    plan: BatchPlan, resolved: dict[str, Any], resume: bool, callbacks: Sequence[Callback],
    trainer_overrides: Mapping[str, Any] | None,
) -> RunResult:
    """Build the trainer for ``store``'s run, fit, evaluate and record the outcome (see :func:`train`)."""
    checkpoint = store.path / "checkpoints" / CHECKPOINT
    loggers: list[Any] = [RunStoreLogger(store)]
    mirror = wandb_logger(config.tracking.wandb, store.path, store.run_id, resolved)
    if mirror is not None:
        loggers.append(mirror)
    schedule = getattr(data, "schedule", None)
    ours = _callbacks(config, schedule)
    t = config.trainer
    trainer = pl.Trainer(**{
        **dict(
            accelerator=t.accelerator, devices=t.devices, strategy=t.strategy, precision=t.precision,
            max_steps=plan.total_steps if schedule is None else max_steps(schedule, plan), max_epochs=-1,
            accumulate_grad_batches=plan.accumulate if schedule is None else 1,
            gradient_clip_val=t.gradient_clip_val, deterministic=t.deterministic,
            logger=loggers, log_every_n_steps=config.logging.every_n_steps,
            callbacks=[CallbackGroup(ours.in_order()), _checkpoint(store.path / "checkpoints"), *callbacks],
            enable_progress_bar=_progress_bar(config.logging.progress_bar), enable_model_summary=False,
            num_sanity_val_steps=0, default_root_dir=store.path,
        ),
        **(trainer_overrides or {}),
    })
    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=data, ckpt_path=checkpoint if resume and checkpoint.exists() else None)
        if is_child or trainer.global_rank > 0:
            return RunResult(store.path, store.run_id, "child", {})
        summary = _record_outcome(store, trainer, ours, module, data, plan, started)
    except BaseException as err:  # recorded, then re-raised for the caller (a sweep retries failed trials)
        stopped = isinstance(err, (KeyboardInterrupt, SystemExit))  # SystemExit: Lightning's SIGTERM and Ctrl-C
        if not is_child:
            _record_end(store, err, status="interrupted" if stopped else "failed",
                        **({} if stopped else {"error": f"{type(err).__name__}: {err}"}),
                        wall_time_s=time.perf_counter() - started, steps=trainer.global_step)
        finish_wandb(exit_code=1)
        raise
    if mirror is not None and summary["eval"]:
        mirror.experiment.summary.update({f"eval/{k}": v for k, v in summary["eval"].items() if math.isfinite(v)})
    store.close()
    finish_wandb()
    chance = at_chance_warning(summary["eval"], data.splits.meta.get("num_classes"),
                               f"{config.optimizer.name} at peak lr {plan.lr:g}, batch {plan.batch_size}")
    return RunResult(store.path, store.run_id, summary["status"], summary, (chance,) if chance else ())


def _record_outcome(store: RunStore, trainer: pl.Trainer, ours: Telemetry, module: pl.LightningModule,
                    data: TensorDataModule, plan: BatchPlan, started: float) -> dict[str, Any]:
    """After ``fit`` returned: the status (completed, interrupted, diverged), the final evaluation and the
    summary, written and returned."""
    guard = ours.guard
    status = "completed"
    if trainer.interrupted:
        status = "interrupted"
    elif guard.diverged is not None:
        status = "diverged"
    final = _final_evaluation(module, data, ours.gap, trainer.global_step) if status != "diverged" else {}
    return store.write_summary(
        status=status, error=None, wall_time_s=time.perf_counter() - started, steps=trainer.global_step,
        epochs=trainer.current_epoch, samples_seen=data.samples_through(trainer.global_step), diverged_at=guard.diverged,
        eval=final, throughput=ours.throughput.summary(),
        plan=plan.as_dict(),
    )
