"""Learning-rate scaling with batch size, warmup and decay, composed into one ``LambdaLR`` factor.

* Scaling from a reference batch B₀ (``lr = base_lr · s(B/B₀)``):
  ``linear`` s(k) = k (Goyal et al. 2017, arXiv:1706.02677 §2.1), ``sqrt`` s(k) = √k (Hoffer et al. 2017;
  the LAMB paper, arXiv:1904.00962 §4), ``none`` s = 1.
* Gradual warmup (Goyal et al. §2.2): linear from ``warmup_start_factor`` to 1 over the warmup steps.
* Decay after warmup over the remaining steps, with progress p ∈ [0, 1]:
  ``polynomial`` (1 − p)^power (power 2 in the LARS paper, arXiv:1708.03888 §5), ``cosine``
  ½(1 + cos πp) (Loshchilov & Hutter 2017), ``constant`` 1. All decay towards ``final_factor``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

ScalingRule = Literal["none", "linear", "sqrt"]
Decay = Literal["constant", "polynomial", "cosine"]
SCALING_RULES: tuple[str, ...] = ("none", "linear", "sqrt")
DECAYS: tuple[str, ...] = ("constant", "polynomial", "cosine")


def scaled_lr(base_lr: float, batch_size: int, reference_batch_size: int, rule: ScalingRule) -> float:
    """``base_lr`` (tuned at ``reference_batch_size``) scaled to ``batch_size`` by ``rule``."""
    if batch_size <= 0 or reference_batch_size <= 0:
        raise ValueError(f"batch sizes must be positive, got {batch_size} and {reference_batch_size}")
    k = batch_size / reference_batch_size
    if rule == "linear":
        return base_lr * k
    if rule == "sqrt":
        return base_lr * math.sqrt(k)
    if rule == "none":
        return base_lr
    raise ValueError(f"unknown lr scaling rule {rule!r}; allowed: {', '.join(SCALING_RULES)}")


@dataclass(frozen=True)
class Schedule:
    """Multiplicative lr factor per optimizer step: warmup, then decay to ``final_factor``."""

    total_steps: int
    warmup_steps: int = 0
    decay: Decay = "constant"
    power: float = 2.0
    warmup_start_factor: float = 0.0
    final_factor: float = 0.0

    def __post_init__(self) -> None:
        if self.total_steps <= 0:
            raise ValueError(f"total_steps must be > 0, got {self.total_steps}")
        if not 0 <= self.warmup_steps <= self.total_steps:
            raise ValueError(f"warmup_steps must lie in [0, total_steps={self.total_steps}], got {self.warmup_steps}")
        if self.decay not in DECAYS:
            raise ValueError(f"unknown decay {self.decay!r}; allowed: {', '.join(DECAYS)}")
        if self.power <= 0:
            raise ValueError(f"power must be > 0, got {self.power}")

    def __call__(self, step: int) -> float:
        """Factor applied to the peak lr at optimizer step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.warmup_start_factor + (1 - self.warmup_start_factor) * step / self.warmup_steps
        decay_steps = self.total_steps - self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / decay_steps) if decay_steps > 0 else 1.0
        if self.decay == "polynomial":
            shape = (1.0 - progress) ** self.power
        elif self.decay == "cosine":
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            return 1.0
        return self.final_factor + (1.0 - self.final_factor) * shape


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: Schedule) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step scheduler for Lightning's ``configure_optimizers`` (``{"interval": "step"}``)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def warmup_steps_from_epochs(epochs: float, steps_per_epoch: int) -> int:
    """Warmup given in epochs (as Goyal et al. and the LAMB paper state it) converted to optimizer steps."""
    return int(round(epochs * steps_per_epoch))
