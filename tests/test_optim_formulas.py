"""LARS and LAMB against the package's float64 references (the papers' algorithms as printed), and the references
against steps worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from largebatch.optim import LAMB, LARS
from largebatch.optim.reference import ReferenceLAMB, ReferenceLARS

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


# --------------------------------------------------------------------------- the references themselves


def test_reference_lamb_first_step_by_hand() -> None:
    """Step 1 with bias correction: m̂ = g, v̂ = g², so r = g/(|g| + ε) and x ← x − η·‖x‖/‖r + λx‖·(r + λx)."""
    x, g = torch.tensor([3.0, -4.0], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64)
    lr, eps, wd = 0.1, 1e-6, 0.01
    u = g / (g.abs() + eps) + wd * x
    expected = x - lr * 5.0 / norm(u) * u
    ReferenceLAMB(lr=lr, eps=eps, weight_decay=wd).step([x], [g])
    torch.testing.assert_close(x, expected, rtol=1e-15, atol=0)


def test_reference_lars_first_step_by_hand() -> None:
    """Algorithm 1, step 1: v = γ·η‖w‖/(‖g‖ + β‖w‖)·(g + βw), w ← w − v."""
    w, g = torch.tensor([3.0, -4.0], dtype=torch.float64), torch.tensor([0.6, 0.8], dtype=torch.float64)
    gamma, eta, beta = 2.0, 0.001, 0.1
    expected = w - gamma * eta * 5.0 / (1.0 + beta * 5.0) * (g + beta * w)
    ReferenceLARS(lr=gamma, trust_coefficient=eta, weight_decay=beta).step([w], [g])
    torch.testing.assert_close(w, expected, rtol=1e-15, atol=0)


def test_references_return_one_for_zero_norms() -> None:
    """A zero-initialised bias gets ratio 1 and learns (cybertronai's zero guard bug)."""
    assert ReferenceLAMB().step([torch.zeros(3, dtype=torch.float64)], [torch.ones(3, dtype=torch.float64)]) == [1.0]
    assert ReferenceLARS().step([torch.zeros(3, dtype=torch.float64)], [torch.ones(3, dtype=torch.float64)]) == [1.0]


# --------------------------------------------------------------------------- LAMB, Algorithm 2

# Options given to both LAMB and ReferenceLAMB (one meaning per name).
LAMB_CASES: dict[str, dict] = {
    "paper_defaults": {},
    "no_weight_decay_still_adapts": {"weight_decay": 0.0},
    "phi_clip_v1": {"weight_norm_bounds": (0.0, 1.5)},
    "ratio_bounds": {"ratio_bounds": (0.9, 1.1)},
    "lambc_trust_clip": {"lambc": True},
    "decoupled": {"weight_decay_mode": "decoupled", "weight_decay": 0.1},
    "no_bias_correction": {"bias_correction": False},
    "nvlamb_pre_normalization": {"grad_pre_normalization": 1.0},
}


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("case", sorted(LAMB_CASES))
def test_lamb_matches_algorithm_2(case: str, foreach: bool) -> None:
    ours_params, ref_params = make_params(), [p.detach().clone() for p in make_params()]
    opt = LAMB(ours_params, lr=1e-2, foreach=foreach, **LAMB_CASES[case])
    ref = ReferenceLAMB(lr=1e-2, **LAMB_CASES[case])
    for t in range(1, 6):
        for p, g in zip(ours_params, grads_at(t)):
            p.grad = g.clone()
        opt.step()
        ref.step(ref_params, grads_at(t))
        for p, r in zip(ours_params, ref_params):
            torch.testing.assert_close(p.detach(), r, rtol=1e-12, atol=1e-14)


def test_lamb_group_without_adaptation_is_adam_with_decay_in_update() -> None:
    params, ref_params = make_params(), [p.detach().clone() for p in make_params()]
    opt = LAMB([{"params": params, "adapt": False}], lr=1e-2)
    ref = ReferenceLAMB(lr=1e-2, adapt=False)
    for t in range(1, 4):
        for p, g in zip(params, grads_at(t)):
            p.grad = g.clone()
        opt.step()
        ref.step(ref_params, grads_at(t))
    for p, r in zip(params, ref_params):
        torch.testing.assert_close(p.detach(), r, rtol=1e-12, atol=1e-14)
    assert torch.equal(opt.layer_stats().trust_ratio, torch.ones(len(params)))


# --------------------------------------------------------------------------- LARS, Algorithm 1


# Options given to both LARS and ReferenceLARS (one meaning per name), on top of momentum 0.9, weight decay 5e-4.
LARS_CASES: dict[str, dict] = {
    "paper": {},
    "optax_denominator": {"denominator": "update"},
    "torch_placement": {"lr_placement": "step"},
    "nesterov": {"nesterov": True},
    "nesterov_torch": {"nesterov": True, "lr_placement": "step"},
    "dampening": {"dampening": 0.3},
    "dampening_torch": {"dampening": 0.3, "lr_placement": "step"},
    "larc_clip": {"trust_clip": True, "trust_coefficient": 0.02},
    "eps": {"eps": 1e-3},
    "no_weight_decay_still_adapts": {"weight_decay": 0.0},
}
LARS_BASE = {"momentum": 0.9, "weight_decay": 5e-4}


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("case", sorted(LARS_CASES))
def test_lars_matches_algorithm_1(case: str, foreach: bool) -> None:
    kwargs = {**LARS_BASE, **LARS_CASES[case]}
    params, ref_params = make_params(), [p.detach().clone() for p in make_params()]
    opt = LARS(params, lr=2.0, foreach=foreach, **kwargs)
    ref = ReferenceLARS(lr=2.0, **kwargs)
    for t in range(1, 6):
        lr = 2.0 / t  # a changing rate tells the two lr placements apart
        for group in opt.param_groups:
            group["lr"] = lr
        for p, g in zip(params, grads_at(t)):
            p.grad = g.clone()
        opt.step()
        ref.step(ref_params, grads_at(t), lr)
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


def test_references_take_the_optimizers_options_and_defaults() -> None:
    assert ReferenceLARS().eta == 0.001 and ReferenceLAMB().eps == 1e-6  # LARS's and LAMB's own defaults
    with pytest.raises(TypeError, match="unknown option 'trust_coef'"):
        ReferenceLARS(trust_coef=0.01)
