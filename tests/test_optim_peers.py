"""Cross-checks against peer implementations with matching settings (test-only dependencies).

timm needs torchvision at package import, so :mod:`largebatch.optim.peers` loads its optimizer files alone.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from largebatch.optim import LAMB, LARS, param_groups
from largebatch.optim.peers import timm_optimizer


def timm_class(module: str, cls: str) -> type:
    try:
        return timm_optimizer(module, cls)
    except ImportError as err:
        pytest.skip(str(err))


def model_and_copy() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14, 5)).double()
    clone = nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14, 5)).double()
    clone.load_state_dict(model.state_dict())
    return model, clone


def run(model: nn.Module, opt: torch.optim.Optimizer, steps: int = 6) -> None:
    for t in range(steps):
        g = torch.Generator().manual_seed(t)
        x, y = torch.randn(32, 1, 16, generator=g, dtype=torch.float64), torch.randint(0, 5, (32,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def assert_same(a: nn.Module, b: nn.Module) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12, msg=name)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ({}, {"max_grad_norm": None}),
        ({"grad_pre_normalization": 1.0}, {"max_grad_norm": 1.0}),  # timm's default is NVLAMB
        ({"lambc": True, "grad_pre_normalization": 1.0}, {"trust_clip": True}),  # timm's LAMB trust_clip is LAMBC
    ],
)
def test_lamb_equals_timm(ours: dict, theirs: dict) -> None:
    timm_lamb = timm_class("lamb", "Lamb")
    a, b = model_and_copy()
    run(a, LAMB(a.parameters(), lr=1e-2, weight_decay=0.01, **ours))
    run(b, timm_lamb(b.parameters(), lr=1e-2, weight_decay=0.01, always_adapt=True, **theirs))
    assert_same(a, b)


@pytest.mark.parametrize("trust_clip", [False, True])
def test_lars_equals_timm(trust_clip: bool) -> None:
    timm_lars = timm_class("lars", "Lars")
    a, b = model_and_copy()
    common = dict(lr=0.5, momentum=0.9, weight_decay=1e-4, trust_clip=trust_clip)
    run(a, LARS(a.parameters(), eps=1e-8, lr_placement="step", **common))
    run(b, timm_lars(b.parameters(), trust_coeff=0.001, eps=1e-8, always_adapt=True, **common))
    assert_same(a, b)


def test_timm_skips_adaptation_without_weight_decay_and_we_do_not() -> None:
    """The documented difference: timm's default ties adaptation to weight decay."""
    timm_lars = timm_class("lars", "Lars")
    a, b = model_and_copy()
    run(a, LARS(param_groups(a, weight_decay=0.0), lr=0.5, lr_placement="step", eps=1e-8), steps=2)
    run(b, timm_lars(b.parameters(), lr=0.5, momentum=0.9), steps=2)
    diffs = [(p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters())]
    assert max(diffs) > 1e-3


def test_lamb_equals_torch_optimizer_with_its_conventions() -> None:
    """torch-optimizer: no bias correction and φ(‖w‖) = min(‖w‖, 10), applied to the weight norm."""
    torch_optimizer = pytest.importorskip("torch_optimizer")
    a, b = model_and_copy()
    with torch.no_grad():  # weight norms above 10, so the clamp matters
        for m in (a, b):
            m[3].weight.mul_(40)
    ours = LAMB(a.parameters(), lr=1e-2, weight_decay=0.01, bias_correction=False, weight_norm_bounds=(0.0, 10.0))
    run(a, ours)
    run(b, torch_optimizer.Lamb(b.parameters(), lr=1e-2, weight_decay=0.01, eps=1e-6))
    assert_same(a, b)
    assert ours.layer_stats().weight_norm.max() > 10
