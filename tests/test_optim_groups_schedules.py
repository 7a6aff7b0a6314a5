"""Parameter grouping rules and learning-rate schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from largebatch.optim import LAMB, NOTHING, Exclude, Schedule, build_scheduler, param_groups, scaled_lr


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 2)
        self.scale = nn.Parameter(torch.ones(1))
        self.frozen = nn.Parameter(torch.ones(3), requires_grad=False)


def by_name(groups: list[dict]) -> dict[str, tuple[float, bool]]:
    return {n: (g["weight_decay"], g["adapt"]) for g in groups for n in g["param_names"]}


def test_default_excludes_biases_norms_and_vectors_from_both() -> None:
    groups = by_name(param_groups(Net(), weight_decay=0.1))
    assert groups["conv.weight"] == (0.1, True)
    assert groups["head.weight"] == (0.1, True)
    for name in ("conv.bias", "bn.weight", "bn.bias", "norm.weight", "head.bias", "scale"):
        assert groups[name] == (0.0, False), name
    assert "frozen" not in groups


def test_exclusions_are_independent() -> None:
    groups = by_name(param_groups(Net(), weight_decay=0.1, exclude_from_adaptation=NOTHING))
    assert groups["conv.bias"] == (0.0, True)  # no weight decay, still adapted
    groups = by_name(param_groups(Net(), weight_decay=0.1, exclude_from_weight_decay=NOTHING))
    assert groups["bn.weight"] == (0.1, False)


def test_zero_weight_decay_keeps_adaptation() -> None:
    groups = by_name(param_groups(Net(), weight_decay=0.0))
    assert groups["conv.weight"] == (0.0, True)


def test_name_patterns_and_norm_layers_only() -> None:
    rule = Exclude(biases=False, norm_layers=True, one_dimensional=False, patterns=(r"^head\.",))
    groups = by_name(param_groups(Net(), weight_decay=0.1, exclude_from_weight_decay=rule))
    assert groups["head.weight"][0] == 0.0 and groups["head.bias"][0] == 0.0
    assert groups["conv.bias"][0] == 0.1 and groups["bn.weight"][0] == 0.0 and groups["scale"][0] == 0.1


def test_groups_feed_the_optimizer_and_name_its_stats() -> None:
    net = Net()
    opt = LAMB(param_groups(net, weight_decay=0.1, betas=(0.8, 0.99)), lr=1e-3)
    assert all(g["betas"] == (0.8, 0.99) for g in opt.param_groups)
    net.head(net.norm(torch.randn(3, 4))).sum().backward()
    net.conv(torch.randn(1, 1, 5, 5)).sum().backward()
    opt.step()
    stats = opt.layer_stats()
    assert set(stats.names) == {"conv.weight", "conv.bias", "norm.weight", "norm.bias", "head.weight", "head.bias"}


@pytest.mark.parametrize(
    ("rule", "expected"), [("none", 0.1), ("linear", 0.8), ("sqrt", 0.1 * math.sqrt(8))]
)
def test_lr_scaling_rules(rule: str, expected: float) -> None:
    assert scaled_lr(0.1, 2048, 256, rule) == pytest.approx(expected)


def test_unknown_scaling_rule_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="none, linear, sqrt"):
        scaled_lr(0.1, 512, 256, "cubic")


def test_warmup_then_polynomial_decay() -> None:
    s = Schedule(total_steps=110, warmup_steps=10, decay="polynomial", power=2.0)
    assert s(0) == 0.0
    assert s(5) == pytest.approx(0.5)
    assert s(10) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.25)  # (1 - 0.5)^2
    assert s(110) == pytest.approx(0.0)


def test_cosine_and_constant_and_final_factor() -> None:
    cosine = Schedule(total_steps=100, decay="cosine", final_factor=0.1)
    assert cosine(0) == pytest.approx(1.0)
    assert cosine(50) == pytest.approx(0.55)
    assert cosine(100) == pytest.approx(0.1)
    assert Schedule(total_steps=10, warmup_steps=2, decay="constant")(7) == 1.0
    assert Schedule(total_steps=10, warmup_steps=4, warmup_start_factor=0.2)(2) == pytest.approx(0.6)


def test_schedule_validation() -> None:
    with pytest.raises(ValueError, match="warmup_steps"):
        Schedule(total_steps=10, warmup_steps=11)
    with pytest.raises(ValueError, match="constant, polynomial, cosine"):
        Schedule(total_steps=10, decay="step")


def test_scheduler_drives_optimizer_lr() -> None:
    p = nn.Parameter(torch.zeros(2))
    opt = LAMB([p], lr=0.4)
    sched = build_scheduler(opt, Schedule(total_steps=4, warmup_steps=2, decay="polynomial", power=1.0))
    seen = []
    for _ in range(4):
        seen.append(opt.param_groups[0]["lr"])
        p.grad = torch.ones(2)
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.0, 0.2, 0.4, 0.2])
