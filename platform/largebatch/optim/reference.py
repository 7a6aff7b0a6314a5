"""LARS and LAMB exactly as the papers print them: one tensor at a time, no algebraic rewrites, float64-capable.

These are the oracle of every fast path (the multi-tensor and per-parameter paths of :class:`~largebatch.optim.LAMB`
and :class:`~largebatch.optim.LARS`, the fused CPU kernels, the Triton CUDA step): the tests run both on the same
gradients and compare. They are slow on purpose (one pass per line, Python-float norms); train with the real
optimizers.

Option names mean what they mean on the optimizers, and take the optimizers' defaults (read from their signatures):

* LARS (You et al. 2017, arXiv:1708.03888, Algorithm 1): ``denominator`` (``"paper"``: ‖g‖ + β‖w‖, ``"update"``:
  ‖g + βw‖), ``lr_placement`` (``"momentum"``: γ inside the buffer as printed, ``"step"``: torch.optim.SGD style),
  ``trust_clip`` (LARC: the local rate λ never above the global rate γ), ``eps``, ``dampening``, ``nesterov``.
* LAMB (You et al. 2019, arXiv:1904.00962, Algorithm 2): ``weight_decay_mode`` (``"adam_update"``: λx inside the
  ratio as printed, ``"decoupled"``: x ← (1 − ηλ)x outside), ``bias_correction``, ``weight_norm_bounds`` (φ),
  ``ratio_bounds``, ``lambc`` (LAMBC: ratio ≤ 1), ``grad_pre_normalization`` (NVLAMB).

``adapt=False`` is a parameter group without the trust ratio (ratio 1), as on the optimizers.
"""

from __future__ import annotations

import inspect
import math
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from largebatch.optim.lamb import LAMB
from largebatch.optim.lars import LARS
from largebatch.optim.trust_ratio import Bounds


def _norm(x: Tensor) -> float:
    return math.sqrt(float((x.double() * x.double()).sum()))


def _options(optimizer: type, given: dict[str, Any]) -> SimpleNamespace:
    """The optimizer's options with its own defaults (one meaning and one default per name), updated by ``given``."""
    skip = {"params", "foreach", "fused"}
    defaults = {name: p.default for name, p in inspect.signature(optimizer).parameters.items() if name not in skip}
    unknown = sorted(set(given) - set(defaults) - {"adapt"})
    if unknown:
        raise TypeError(f"Reference{optimizer.__name__}: unknown option {unknown[0]!r}; allowed: {sorted(defaults)}")
    return SimpleNamespace(**{**defaults, "adapt": True, **given})


def _clip(value: float, bounds: Bounds | None) -> float:
    if bounds is None:
        return value
    low, high = bounds
    return min(max(value, -math.inf if low is None else low), math.inf if high is None else high)


class ReferenceLAMB:
    """LAMB, Algorithm 2, over a list of tensors updated in place; state is kept per list position."""

    def __init__(self, **options: Any) -> None:
        """``options``: any of :class:`~largebatch.optim.LAMB`'s, with its defaults, and ``adapt``."""
        o = _options(LAMB, options)
        self.lr, self.betas, self.eps, self.weight_decay = o.lr, o.betas, o.eps, o.weight_decay
        self.decoupled = o.weight_decay_mode == "decoupled"
        self.bias_correction, self.adapt = o.bias_correction, o.adapt
        self.weight_norm_bounds, self.ratio_bounds, self.lambc = o.weight_norm_bounds, o.ratio_bounds, o.lambc
        self.grad_pre_normalization = o.grad_pre_normalization
        self.t = 0
        self.m: dict[int, Tensor] = {}
        self.v: dict[int, Tensor] = {}

    def step(self, params: list[Tensor], grads: list[Tensor], lr: float | None = None) -> list[float]:
        """One step of every tensor; returns the trust ratios."""
        self.t += 1
        scale = 1.0
        if self.grad_pre_normalization is not None:  # NVLAMB: g ← g / max(1, ‖g‖_global / c)
            scale = 1.0 / max(1.0, math.sqrt(sum(_norm(g) ** 2 for g in grads)) / self.grad_pre_normalization)
        lr = self.lr if lr is None else lr
        return [self._step_one(i, x, g * scale, lr) for i, (x, g) in enumerate(zip(params, grads))]

    def _step_one(self, i: int, x: Tensor, g: Tensor, lr: float) -> float:
        b1, b2, t = self.betas[0], self.betas[1], self.t
        m = self.m[i] = b1 * self.m.get(i, torch.zeros_like(x)) + (1 - b1) * g
        v = self.v[i] = b2 * self.v.get(i, torch.zeros_like(x)) + (1 - b2) * g * g
        m_hat, v_hat = (m / (1 - b1**t), v / (1 - b2**t)) if self.bias_correction else (m, v)
        r = m_hat / (v_hat.sqrt() + self.eps)
        u = r if self.decoupled else r + self.weight_decay * x
        x_norm, u_norm = _norm(x), _norm(u)
        ratio = _clip(x_norm, self.weight_norm_bounds) / u_norm if x_norm > 0 and u_norm > 0 else 1.0
        ratio = _clip(ratio, self.ratio_bounds)
        if self.lambc:  # LAMBC
            ratio = min(ratio, 1.0)
        if not self.adapt:
            ratio = 1.0
        if self.decoupled:
            x.mul_(1 - lr * self.weight_decay)
        x.sub_(lr * ratio * u)
        return ratio


class ReferenceLARS:
    """LARS with momentum, Algorithm 1, over a list of tensors updated in place; state is kept per list position."""

    def __init__(self, **options: Any) -> None:
        """``options``: any of :class:`~largebatch.optim.LARS`'s, with its defaults, and ``adapt``."""
        o = _options(LARS, options)
        self.lr, self.momentum, self.dampening, self.weight_decay = o.lr, o.momentum, o.dampening, o.weight_decay
        self.nesterov, self.eta, self.eps, self.trust_clip = o.nesterov, o.trust_coefficient, o.eps, o.trust_clip
        self.denominator, self.lr_placement, self.adapt = o.denominator, o.lr_placement, o.adapt
        self.t = 0
        self.v: dict[int, Tensor] = {}

    def step(self, params: list[Tensor], grads: list[Tensor], lr: float | None = None) -> list[float]:
        """One step of every tensor; returns the local rates λ."""
        self.t += 1
        return [self._step_one(i, w, g, self.lr if lr is None else lr) for i, (w, g) in enumerate(zip(params, grads))]

    def _step_one(self, i: int, w: Tensor, g: Tensor, lr: float) -> float:
        beta, mu = self.weight_decay, self.momentum
        d = g + beta * w
        w_norm = _norm(w)
        den = _norm(g) + beta * w_norm if self.denominator == "paper" else _norm(d)
        local = self.eta * w_norm / (den + self.eps) if w_norm > 0 and den > 0 else 1.0  # eq. 6, 1 for zero norms
        if self.trust_clip and lr > 0:  # LARC
            local = min(local / lr, 1.0)
        if not self.adapt:
            local = 1.0
        if self.lr_placement == "momentum":  # v ← μv + γλd; w ← w − v
            step = lr * local * d
            v = self.v[i] = mu * self.v.get(i, torch.zeros_like(w)) + (1 - self.dampening) * step
            w.sub_(step + mu * v if self.nesterov else v)
        else:  # torch.optim.SGD on λd: v ← λd on the first step, then μv + (1 − dampening)λd; w ← w − γv
            step = local * d
            v = self.v[i] = step.clone() if i not in self.v else mu * self.v[i] + (1 - self.dampening) * step
            w.sub_(lr * (step + mu * v if self.nesterov else v))
        return local

