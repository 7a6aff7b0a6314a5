"""Batch-size schedules: the effective batch of every optimizer step of a run whose batch changes.

The batch grows by gradient accumulation over a fixed micro-batch, so memory stays bounded: step ``n`` takes
``accumulate(n)`` micro-batches of ``micro_batch`` samples on each of ``devices`` ranks, i.e. exactly
``batch(n) = accumulate(n) · micro_batch · devices`` samples (the guarantee of :mod:`largebatch.train.plan`).

* ``steps`` (Smith et al. 2017, "Don't decay the learning rate, increase the batch size", arXiv:1711.00489): the
  batch is multiplied by ``factor`` once each milestone (epochs, steps or samples done) is passed.
* ``adaptive``: every N steps the batch becomes clip(c · B̂, min, max) with B̂ the smoothed simple noise scale
  B_simple = tr(Σ)/|G|² (McCandlish et al. 2018, arXiv:1812.06162, §2.2: B_crit ≈ B_noise ≈ B_simple), once B̂
  rests on enough measurements and by at most a stated factor per decision.

:class:`BatchSchedule` assigns each step its accumulation when the data loader prepares that step
(:meth:`BatchSchedule.propose`, then :meth:`BatchSchedule.record`), in step order, so data loader, module and
callbacks agree on every step's batch. An adaptive decision (:meth:`BatchSchedule.decide`) applies from the next
step the loader prepares: the step after next mid-epoch (Lightning prefetches one batch), the next one at an
epoch start. The record of assigned steps is the schedule's whole state, saved in checkpoints, so a resumed run
continues with the same per-step batches.

The learning rate of a step (:meth:`BatchSchedule.lr_factor`, relative to the plan's lr at ``batch_size``)
follows warmup/decay by *progress in samples* (samples seen / ``batch_size``: base-batch steps, so that a run with
a growing batch decays on the same data axis as a fixed one) or, with a step budget, by steps; times the batch
factor: ``scale`` the ``lr_scaling`` rule at the step's batch, ``hold`` 1, ``adascale`` AdaScale's gain ratio.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from largebatch.core.errors import ConfigError
from largebatch.optim.schedules import Schedule, scaled_lr
from largebatch.train.config import BatchScheduleConfig, ExperimentConfig
from largebatch.train.plan import BatchPlan, schedule_for


def gain_ratio(grad_sq: float, trace: float, batch: float, reference: float) -> float:
    """AdaScale's gain ratio r = (tr Σ/B₀ + |G|²) / (tr Σ/B + |G|²) (Johnson et al. 2020, eq. 7 with
    σ² = tr Σ/B₀ the variance of a reference-batch gradient), from smoothed estimates; negative estimates are
    read as 0 (r → B/B₀ when noise dominates, 1 when the gradient does) and r = 1 without information."""
    grad_sq, trace = max(grad_sq, 0.0), max(trace, 0.0)
    if not (math.isfinite(grad_sq) and math.isfinite(trace)) or grad_sq + trace == 0:
        return 1.0
    return (trace / reference + grad_sq) / (trace / batch + grad_sq)


@dataclass(frozen=True)
class StepsRule:
    """Milestones of a ``steps`` schedule: ``unit`` ('epochs', 'steps', 'samples'), sorted ``at``."""

    unit: str
    at: tuple[float, ...]

    def passed(self, epoch: int, steps_done: int, samples_done: int) -> int:
        done = {"epochs": epoch, "steps": steps_done, "samples": samples_done}[self.unit]
        return bisect.bisect_right(self.at, done)


class BatchSchedule:
    """Per-step accumulation of a run with a changing batch (see the module docstring)."""

    def __init__(self, config: BatchScheduleConfig, plan: BatchPlan, lr_shape: Schedule, *, budget_samples: int | None,
                 scaling: tuple[str, int], per_rank_samples: int) -> None:
        self.config, self.plan, self.lr_shape = config, plan, lr_shape
        self.unit = plan.micro_batch * plan.devices  # samples per accumulated micro-batch (all ranks)
        self.budget_samples = budget_samples
        self.rule, self.reference = scaling
        self.base_accumulate = plan.accumulate
        self.rule_steps = None
        if config.kind == "steps":
            unit = next(k for k in ("epochs", "steps", "samples") if getattr(config, k) is not None)
            self.rule_steps = StepsRule(unit, tuple(sorted(getattr(config, unit))))
        self.min_accumulate, self.max_accumulate = self._bounds(per_rank_samples)
        self.target = self.base_accumulate  # adaptive: the accumulation of the latest decision
        self.noise: tuple[float, float] | None = None  # (|G|², tr Σ) estimates, for adascale
        self.assigned: list[int] = []  # accumulation of steps 1, 2, ... in order
        self._cumulative: list[int] = [0]  # samples after 0, 1, 2, ... steps

    def _multiple(self, batch: int, key: str) -> int:
        if batch % self.unit:
            raise ConfigError(f"batch_schedule.{key} {batch} is not a multiple of micro_batch × devices = {self.unit}")
        return batch // self.unit

    def _bounds(self, per_rank_samples: int) -> tuple[int, int]:
        c, k0 = self.config, self.base_accumulate
        fits = per_rank_samples // self.plan.micro_batch  # a step must fit in one epoch of one rank
        if c.kind == "steps":
            factors = [c.factor**j for j in range(len(self.rule_steps.at) + 1)]  # type: ignore[union-attr]
            for f in factors:
                if abs(k0 * f - round(k0 * f)) > 1e-9:
                    raise ConfigError(f"batch_schedule.factor {c.factor}: batch {self.plan.batch_size} × {f:g} is not a "
                                      f"whole number of micro-batches of {self.unit} samples (set max_micro_batch "
                                      "to a divisor, or use an integer factor)")
            low, high = k0, round(k0 * factors[-1])
            if c.max_batch is not None:
                high = min(high, self._multiple(c.max_batch, "max_batch"))
        else:
            low = self._multiple(c.min_batch, "min_batch") if c.min_batch is not None else k0
            high = self._multiple(c.max_batch, "max_batch")  # type: ignore[arg-type]
        if max(high, k0) > fits:
            raise ConfigError(f"batch_schedule: a batch of {max(high, k0) * self.unit} samples does not fit in one "
                              f"epoch of {per_rank_samples * self.plan.devices} training samples; lower max_batch")
        return low, high

    # -- assignment, in step order ------------------------------------------------------------------------
    @property
    def steps_assigned(self) -> int:
        return len(self.assigned)

    def propose(self, epoch: int) -> int:
        """The accumulation of the next step (number ``steps_assigned + 1``) if it starts in ``epoch``: 0 once the
        sample budget is spent; the step that reaches the budget takes only the micro-batches it needs."""
        samples_done = self._cumulative[-1]
        if self.rule_steps is not None:
            passed = self.rule_steps.passed(epoch, len(self.assigned), samples_done)
            k = min(round(self.base_accumulate * self.config.factor**passed), self.max_accumulate)
        else:
            k = self.target
        if self.budget_samples is not None:
            k = min(k, -(-(self.budget_samples - samples_done) // self.unit))
        return max(k, 0)

    def record(self, accumulate: int) -> int:
        """Assign ``accumulate`` to the next step; returns that step's number."""
        self.assigned.append(accumulate)
        self._cumulative.append(self._cumulative[-1] + accumulate * self.unit)
        return len(self.assigned)

    def decide(self, b_hat: float, estimates: int) -> int:
        """Adaptive rule: the accumulation for B = clip(scale · ``b_hat``, min_batch, max_batch), at most
        ``max_growth`` times the current one (at least one micro-batch more) and never below it unless ``shrink``.
        Nothing changes while B̂ rests on fewer than ``min_estimates`` measurements (``estimates``) or is not
        finite and positive (|G|² not yet resolved). Sets and returns the target accumulation."""
        c = self.config
        if estimates >= c.min_estimates and math.isfinite(b_hat) and b_hat > 0:
            k = round(c.scale * b_hat / self.unit)
            k = min(k, max(math.floor(self.target * c.max_growth), self.target + 1))
            k = min(max(k, self.min_accumulate), self.max_accumulate)
            self.target = k if c.shrink else max(k, self.target)
        return self.target

    # -- reading -------------------------------------------------------------------------------------------
    def accumulate_of(self, step: int) -> int:
        """Accumulation of optimizer step ``step`` (1-based), assigned already."""
        return self.assigned[step - 1]

    def batch_of(self, step: int) -> int:
        return self.assigned[step - 1] * self.unit

    def samples_through(self, step: int) -> int:
        """Training samples seen by the end of step ``step`` (0 → 0)."""
        return self._cumulative[step]

    def budget_reached(self, step: int) -> bool:
        return self.budget_samples is not None and self._cumulative[step] >= self.budget_samples

    def lr_factor(self, step: int) -> float:
        """The lr of step ``step`` relative to the plan's lr (see the module docstring)."""
        done = step - 1
        progress = done if self.budget_samples is None else self._cumulative[done] / self.plan.batch_size
        batch = self.batch_of(step)
        if self.config.lr == "scale":
            ratio = scaled_lr(1.0, batch, self.reference, self.rule) / scaled_lr(1.0, self.plan.batch_size,
                                                                                self.reference, self.rule)
        elif self.config.lr == "adascale" and self.noise is not None:
            ratio = gain_ratio(*self.noise, batch, self.plan.batch_size)
        else:
            ratio = 1.0
        return self.lr_shape(progress) * ratio

    # -- checkpoints ---------------------------------------------------------------------------------------
    def truncate(self, steps_done: int) -> None:
        """Forget the steps after ``steps_done``: prepared by a data loader that Lightning dropped before they ran
        (it may create a loader, prefetch a batch and start again, e.g. when it restores a checkpoint)."""
        del self.assigned[steps_done:]
        del self._cumulative[steps_done + 1:]

    def state_dict(self, steps_done: int) -> dict[str, Any]:
        """The assignments of the ``steps_done`` steps that ran (not those the loader prepared ahead)."""
        return {"assigned": self.assigned[:steps_done], "target": self.target}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.assigned = list(state["assigned"])
        self._cumulative = [0, *accumulate(k * self.unit for k in self.assigned)]
        self.target = state["target"]


def budget_in_samples(config: ExperimentConfig, train_samples: int) -> int | None:
    """A run's budget as samples (epochs × training samples), or None for a budget in steps."""
    b = config.budget
    if b.samples is not None:
        return b.samples
    return None if b.epochs is None else max(1, round(b.epochs * train_samples))


def build_batch_schedule(config: ExperimentConfig, plan: BatchPlan) -> BatchSchedule | None:
    """The schedule of ``config`` (None for ``fixed``), checked against the plan (ConfigError when it cannot run)."""
    if config.batch_schedule.kind == "fixed":
        return None
    budget = budget_in_samples(config, plan.train_samples)
    total = plan.total_steps if budget is None else math.ceil(budget / plan.batch_size)
    lr_shape = schedule_for(config, plan)
    lr_shape = Schedule(total_steps=total, warmup_steps=min(lr_shape.warmup_steps, total), decay=lr_shape.decay,
                        power=lr_shape.power, warmup_start_factor=lr_shape.warmup_start_factor,
                        final_factor=lr_shape.final_factor)
    scaling = (config.lr_scaling.rule, config.lr_scaling.reference_batch_size)
    return BatchSchedule(config.batch_schedule, plan, lr_shape, budget_samples=budget, scaling=scaling,
                         per_rank_samples=plan.train_samples // plan.devices)


def max_steps(schedule: BatchSchedule, plan: BatchPlan) -> int:
    """An upper bound on the steps of a run (the trainer's ``max_steps``; the run stops at its budget earlier)."""
    if schedule.budget_samples is None:
        return plan.total_steps
    smallest = min(schedule.min_accumulate, schedule.base_accumulate) * schedule.unit
    return math.ceil(schedule.budget_samples / smallest)
