"""The gradient noise scale (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training", arXiv:1812.06162).

The simple noise scale B_simple = tr(Σ) / |G|² (Σ: per-example gradient covariance, G: the true gradient)
predicts the critical batch size: below it, doubling the batch roughly halves the steps to a result; above it,
returns diminish (B_crit ≈ B_noise, of which B_simple is the Hessian-free estimate, §2.2).

Both quantities come from gradient norms at two batch sizes, since E|G_B|² = |G|² + tr(Σ)/B (App. A.1):

    |G|²  ≈ (B_big·|G_big|² − B_small·|G_small|²) / (B_big − B_small)
    tr(Σ) ≈ (|G_small|² − |G_big|²) / (1/B_small − 1/B_big)

Each estimate is unbiased but noisy, and their ratio is not unbiased: exponential moving averages of the two
are kept separately and divided afterwards, as the paper recommends.
"""

from __future__ import annotations

import torch
from torch import Tensor


def two_batch_estimates(small_sq: Tensor, big_sq: Tensor, b_small: float, b_big: float) -> tuple[Tensor, Tensor]:
    """Unbiased (|G|², tr Σ) from squared gradient norms at batch sizes ``b_small`` < ``b_big`` (element-wise)."""
    if not 0 < b_small < b_big:
        raise ValueError(f"need 0 < b_small < b_big, got {b_small} and {b_big}")
    grad_sq = (b_big * big_sq - b_small * small_sq) / (b_big - b_small)
    trace = (small_sq - big_sq) / (1.0 / b_small - 1.0 / b_big)
    return grad_sq, trace


class NoiseScaleEstimator:
    """Bias-corrected EMAs of |G|² and tr(Σ) (scalars or per-layer vectors) and their ratio B_simple."""

    def __init__(self, beta: float = 0.95) -> None:
        if not 0 <= beta < 1:
            raise ValueError(f"beta must lie in [0, 1), got {beta}")
        self.beta = beta
        self.count = 0
        self._grad_sq: Tensor | None = None
        self._trace: Tensor | None = None

    def update(self, small_sq: Tensor, big_sq: Tensor, b_small: float, b_big: float) -> None:
        grad_sq, trace = two_batch_estimates(small_sq.double(), big_sq.double(), b_small, b_big)
        if self._grad_sq is None or self._trace is None:
            self._grad_sq, self._trace = torch.zeros_like(grad_sq), torch.zeros_like(trace)
        self._grad_sq.lerp_(grad_sq, 1 - self.beta)
        self._trace.lerp_(trace, 1 - self.beta)
        self.count += 1

    @property
    def grad_sq(self) -> Tensor:
        """EMA of |G|² (bias-corrected like Adam's moments)."""
        if self._grad_sq is None:
            raise RuntimeError("no estimate yet: call update() first")
        return self._grad_sq / (1 - self.beta**self.count)

    @property
    def trace(self) -> Tensor:
        """EMA of tr(Σ) (bias-corrected)."""
        if self._trace is None:
            raise RuntimeError("no estimate yet: call update() first")
        return self._trace / (1 - self.beta**self.count)

    @property
    def b_simple(self) -> Tensor:
        """tr(Σ)/|G|² from the smoothed estimates."""
        return self.trace / self.grad_sq

    def state_dict(self) -> dict:
        return {"beta": self.beta, "count": self.count, "grad_sq": self._grad_sq, "trace": self._trace}

    def load_state_dict(self, state: dict) -> None:
        self.beta, self.count, self._grad_sq, self._trace = state["beta"], state["count"], state["grad_sq"], state["trace"]
