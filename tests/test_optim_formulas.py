"""LARS and LAMB against the papers' formulas computed by hand in float64, one parameter at a time."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
import torch

from largebatch.optim import LAMB, LARS

SHAPES = [(5, 3), (4,), (2, 3, 2), (3,)]


def make_params(zero_last: bool = True) -> list[torch.Tensor]:
    """Float64 leaves of assorted shapes; the last one zero-initialised like a bias."""
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=g, dtype=torch.float64) for s in SHAPES]
    if zero_last:
        params[-1].zero_()
    return [p.requires_grad_() for p in params]


def grads_at(step: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    return [torch.randn(s, generator=g, dtype=torch.float64) * (1 + i) for i, s in enumerate(SHAPES)]


def norm(x: torch.Tensor) -> float:
    return math.sqrt(float((x * x).sum()))


# --------------------------------------------------------------------------- LAMB, Algorithm 2


@dataclass
class LambRef:
    lr: float = 1e-2
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-6
    wd: float = 0.01
    bias_correction: bool = True
    weight_norm_bounds: tuple | None = None
    ratio_bounds: tuple | None = None
    decoupled: bool = False
    adapt: bool = True
    pre_norm: float | None = None
    m: dict = field(default_factory=dict)
    v: dict = field(default_factory=dict)

    def step(self, ws: list[torch.Tensor], gs: list[torch.Tensor], t: int) -> None:
        scale = 1.0
        if self.pre_norm is not None:
            global_norm = math.sqrt(sum(norm(g) ** 2 for g in gs))
            scale = 1.0 / max(1.0, global_norm / self.pre_norm)
        for i, (w, g) in enumerate(zip(ws, gs)):
            g = g * scale
            m = self.m.get(i, torch.zeros_like(w)) * self.b1 + (1 - self.b1) * g
            v = self.v.get(i, torch.zeros_like(w)) * self.b2 + (1 - self.b2) * g * g
            self.m[i], self.v[i] = m, v
            bc1, bc2 = (1 - self.b1**t, 1 - self.b2**t) if self.bias_correction else (1, 1)
            r = (m / bc1) / ((v / bc2).sqrt() + self.eps)
            u = r if self.decoupled else r + self.wd * w
            wn, un = norm(w), norm(u)
            phi = wn
            if self.weight_norm_bounds is not None:
                lo, hi = self.weight_norm_bounds
                phi = min(max(wn, lo if lo is not None else -math.inf), hi if hi is not None else math.inf)
            ratio = phi / un if wn > 0 and un > 0 else 1.0
            if self.ratio_bounds is not None:
                lo, hi = self.ratio_bounds
                ratio = min(max(ratio, lo if lo is not None else -math.inf), hi if hi is not None else math.inf)
            if not self.adapt:
                ratio = 1.0
            if self.decoupled:
                w.mul_(1 - self.lr * self.wd)
            w.sub_(self.lr * ratio * u)


LAMB_CASES = {
    "paper_defaults": ({}, {}),
    "no_weight_decay_still_adapts": ({"weight_decay": 0.0}, {"wd": 0.0}),
    "phi_clip_v1": ({"weight_norm_bounds": (0.0, 1.5)}, {"weight_norm_bounds": (0.0, 1.5)}),
    "ratio_bounds": ({"ratio_bounds": (0.9, 1.1)}, {"ratio_bounds": (0.9, 1.1)}),
    "lambc_trust_clip": ({"trust_clip": True}, {"ratio_bounds": (None, 1.0)}),
    "decoupled": ({"weight_decay_mode": "decoupled", "weight_decay": 0.1}, {"decoupled": True, "wd": 0.1}),
    "no_bias_correction": ({"bias_correction": False}, {"bias_correction": False}),
    "nvlamb_pre_normalization": ({"grad_pre_normalization": 1.0}, {"pre_norm": 1.0}),
}


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("case", sorted(LAMB_CASES))
def test_lamb_matches_algorithm_2(case: str, foreach: bool) -> None:
    ours_kwargs, ref_kwargs = LAMB_CASES[case]
    ours_params, ref_params = make_params(), [p.detach().clone() for p in make_params()]
    opt = LAMB(ours_params, lr=1e-2, foreach=foreach, **ours_kwargs)
    ref = LambRef(**ref_kwargs)
    for t in range(1, 6):
        for p, g in zip(ours_params, grads_at(t)):
            p.grad = g.clone()
        opt.step()
        ref.step(ref_params, grads_at(t), t)
        for p, r in zip(ours_params, ref_params):
            torch.testing.assert_close(p.detach(), r, rtol=1e-12, atol=1e-14)


def test_lamb_group_without_adaptation_is_adam_with_decay_in_update() -> None:
    params, ref_params = make_params(), [p.detach().clone() for p in make_params()]
    opt = LAMB([{"params": params, "adapt": False}], lr=1e-2)
    ref = LambRef(adapt=False)
    for t in range(1, 4):
        for p, g in zip(params, grads_at(t)):
            p.grad = g.clone()
        opt.step()
        ref.step(ref_params, grads_at(t), t)
    for p, r in zip(params, ref_params):
        torch.testing.assert_close(p.detach(), r, rtol=1e-12, atol=1e-14)
    assert torch.equal(opt.layer_stats().trust_ratio, torch.ones(len(params)))


# --------------------------------------------------------------------------- LARS, Algorithm 1


@dataclass
class LarsRef:
    momentum: float = 0.9
    dampening: float = 0.0
    wd: float = 5e-4
    eta: float = 0.001
    eps: float = 0.0
    nesterov: bool = False
    trust_clip: bool = False
    denominator: str = "paper"
    placement: str = "momentum"
    buf: dict = field(default_factory=dict)

    def step(self, ws: list[torch.Tensor], gs: list[torch.Tensor], lr: float, t: int) -> None:
        for i, (w, g) in enumerate(zip(ws, gs)):
            d = g + self.wd * w
            wn = norm(w)
            den = norm(g) + self.wd * wn if self.denominator == "paper" else norm(d)
            local = self.eta * wn / (den + self.eps) if wn > 0 and den > 0 else 1.0
            if self.trust_clip:
                local = min(local / lr, 1.0)
            if self.placement == "momentum":  # v = m v + γ λ d ; w -= v
                step_dir = lr * local * d
                v = self.buf.get(i, torch.zeros_like(w)) * self.momentum + (1 - self.dampening) * step_dir
                self.buf[i] = v
                w.sub_(step_dir + self.momentum * v if self.nesterov else v)
            else:  # torch.optim.SGD on λ d
                step_dir = local * d
                if t == 1:
                    v = step_dir.clone()
                else:
                    v = self.buf[i] * self.momentum + (1 - self.dampening) * step_dir
                self.buf[i] = v
                w.sub_(lr * (step_dir + self.momentum * v if self.nesterov else v))


LARS_CASES = {
    "paper": ({}, {}),
    "optax_denominator": ({"denominator": "update"}, {"denominator": "update"}),
    "torch_placement": ({"lr_placement": "step"}, {"placement": "step"}),
    "nesterov": ({"nesterov": True}, {"nesterov": True}),
    "nesterov_torch": ({"nesterov": True, "lr_placement": "step"}, {"nesterov": True, "placement": "step"}),
    "dampening": ({"dampening": 0.3}, {"dampening": 0.3}),
    "dampening_torch": ({"dampening": 0.3, "lr_placement": "step"}, {"dampening": 0.3, "placement": "step"}),
    "larc_clip": ({"trust_clip": True, "trust_coefficient": 0.02}, {"trust_clip": True, "eta": 0.02}),
    "eps": ({"eps": 1e-3}, {"eps": 1e-3}),
    "no_weight_decay_still_adapts": ({"weight_decay": 0.0}, {"wd": 0.0}),
}


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("case", sorted(LARS_CASES))
def test_lars_matches_algorithm_1(case: str, foreach: bool) -> None:
    ours_kwargs, ref_kwargs = LARS_CASES[case]
    kwargs = {"momentum": 0.9, "weight_decay": 5e-4, **ours_kwargs}
    params, ref_params = make_params(), [p.detach().clone() for p in make_params()]
    opt = LARS(params, lr=2.0, foreach=foreach, **kwargs)
    ref = LarsRef(**ref_kwargs)
    for t in range(1, 6):
        lr = 2.0 / t  # a changing rate tells the two lr placements apart
        for group in opt.param_groups:
            group["lr"] = lr
        for p, g in zip(params, grads_at(t)):
            p.grad = g.clone()
        opt.step()
        ref.step(ref_params, grads_at(t), lr, t)
        for p, r in zip(params, ref_params):
            torch.testing.assert_close(p.detach(), r, rtol=1e-12, atol=1e-14)


def test_lr_placements_differ_when_lr_changes() -> None:
    results = []
    for placement in ("momentum", "step"):
        params = make_params()
        opt = LARS(params, lr=1.0, lr_placement=placement)
        for t in range(1, 4):
            opt.param_groups[0]["lr"] = 1.0 / t
            for p, g in zip(params, grads_at(t)):
                p.grad = g
            opt.step()
        results.append(torch.cat([p.detach().flatten() for p in params]))
    assert not torch.allclose(results[0], results[1])


def test_lars_stats_are_the_algorithm_quantities() -> None:
    params = make_params()
    opt = LARS(params, lr=0.5, weight_decay=1e-3)
    grads = grads_at(1)
    before = [p.detach().clone() for p in params]
    for p, g in zip(params, grads):
        p.grad = g
    opt.step()
    stats = opt.layer_stats()
    for i, (w, g) in enumerate(zip(before, grads)):
        assert stats.weight_norm[i].item() == pytest.approx(norm(w), rel=1e-6)
        assert stats.grad_norm[i].item() == pytest.approx(norm(g), rel=1e-6)
        assert stats.update_norm[i].item() == pytest.approx(norm(g) + 1e-3 * norm(w), rel=1e-6)
    assert stats.trust_ratio[-1].item() == 1.0  # zero-initialised bias: ratio 1, so it learns
    torch.testing.assert_close(stats.lr, 0.5 * stats.trust_ratio)
    assert params[-1].detach().abs().sum() > 0
