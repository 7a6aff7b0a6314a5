"""From an experiment's effective batch size to what the trainer runs: micro-batch, accumulation, steps, lr."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from largebatch.core.errors import ConfigError
from largebatch.optim.schedules import Schedule, scaled_lr, warmup_steps_from_epochs
from largebatch.train.config import ExperimentConfig


@dataclass(frozen=True)
class BatchPlan:
    """Effective batch = ``micro_batch × accumulate × devices``; every optimizer step sees exactly that many samples."""

    batch_size: int
    micro_batch: int
    accumulate: int
    devices: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    lr: float
    train_samples: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def split_batch(batch_size: int, devices: int, max_micro_batch: int | None) -> tuple[int, int]:
    """(micro_batch, accumulate) with micro·accumulate·devices = batch_size and micro ≤ max_micro_batch."""
    if batch_size % devices:
        raise ConfigError(f"batch_size {batch_size} is not divisible by the {devices} devices")
    per_device = batch_size // devices
    cap = max_micro_batch or per_device
    accumulate = math.ceil(per_device / cap)
    while per_device % accumulate:
        accumulate += 1
    return per_device // accumulate, accumulate


def plan_batches(config: ExperimentConfig, train_samples: int, devices: int = 1) -> BatchPlan:
    """The plan for ``config`` on a training set of ``train_samples`` (clear errors when it cannot run)."""
    micro, accumulate = split_batch(config.batch_size, devices, config.max_micro_batch)
    steps_per_epoch = train_samples // config.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(
            f"batch_size {config.batch_size} is larger than the {train_samples} training samples of "
            f"'{config.data.name}'; raise data.options.num_samples (where the dataset has it) or lower batch_size"
        )
    budget = config.budget
    if budget.epochs is not None:
        total = max(1, round(budget.epochs * steps_per_epoch))
    elif budget.steps is not None:
        total = budget.steps
    else:
        total = max(1, math.ceil(budget.samples / config.batch_size))
    sched = config.schedule
    if sched.warmup_epochs is not None:
        warmup = warmup_steps_from_epochs(sched.warmup_epochs, steps_per_epoch)
    else:
        warmup = sched.warmup_steps or 0
    warmup = min(warmup, total)
    lr = scaled_lr(config.optimizer.lr, config.batch_size, config.lr_scaling.reference_batch_size,
                   config.lr_scaling.rule)
    return BatchPlan(config.batch_size, micro, accumulate, devices, steps_per_epoch, total, warmup, lr, train_samples)


def schedule_for(config: ExperimentConfig, plan: BatchPlan) -> Schedule:
    s = config.schedule
    return Schedule(
        total_steps=plan.total_steps, warmup_steps=plan.warmup_steps, decay=s.decay, power=s.power,
        warmup_start_factor=s.warmup_start_factor, final_factor=s.final_factor,
    )
