"""Optimizer checkpoints of older versions load: a state dict stored by an earlier commit, groups missing options,
and whole pickled optimizers (``torch.optim.Optimizer.__getstate__`` keeps only defaults, state and groups)."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
import torch
from test_optim_formulas import grads_at, make_params

from largebatch.optim import LAMB, LARS
from largebatch.optim.reference import ReferenceLAMB, ReferenceLARS

# Written by largebatch at commit 8e05fdb: LAMB and LARS (options below, foreach=False) after steps 1 and 2 on
# test_optim_formulas' make_params()/grads_at(t), as {"lamb"|"lars": {"params": [...], "optimizer": state_dict}}.
STORED = Path(__file__).parent / "data" / "optim_state_8e05fdb.pt"
OPTIONS = {
    "lamb": (LAMB, ReferenceLAMB, {"lr": 1e-2, "weight_decay": 0.01, "weight_norm_bounds": (0.0, 10.0)}),
    "lars": (LARS, ReferenceLARS, {"lr": 2.0, "momentum": 0.9, "weight_decay": 5e-4, "lr_placement": "step"}),
}


def stored(name: str) -> dict:
    return torch.load(STORED, weights_only=True)[name]


def resume(cls: type, options: dict, checkpoint: dict) -> tuple[torch.optim.Optimizer, list[torch.Tensor]]:
    params = [p.clone().requires_grad_() for p in checkpoint["params"]]
    opt = cls(params, **options)
    opt.load_state_dict(checkpoint["optimizer"])
    return opt, params


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_stored_checkpoint_resumes_on_the_reference_trajectory(name: str) -> None:
    cls, reference_cls, options = OPTIONS[name]
    opt, params = resume(cls, options, stored(name))
    for t in (3, 4):
        for p, g in zip(params, grads_at(t)):
            p.grad = g
        opt.step()
    reference, expected = reference_cls(**options), [p.detach().clone() for p in make_params()]
    for t in (1, 2, 3, 4):
        reference.step(expected, grads_at(t))
    for p, e in zip(params, expected):
        torch.testing.assert_close(p.detach(), e, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_groups_missing_options_get_the_defaults(name: str) -> None:
    cls, _, options = OPTIONS[name]
    checkpoint = copy.deepcopy(stored(name))
    for group in checkpoint["optimizer"]["param_groups"]:
        for key in cls.option_defaults:
            del group[key]
    opt, params = resume(cls, options, checkpoint)
    assert all(opt.param_groups[0][key] == value for key, value in cls.option_defaults.items())
    for p, g in zip(params, grads_at(3)):
        p.grad = g
    opt.step()
    assert all(torch.isfinite(p).all() for p in params)


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_pickled_optimizer_steps_like_the_original(name: str) -> None:
    cls, _, options = OPTIONS[name]
    original, params = resume(cls, options, stored(name))
    restored = pickle.loads(pickle.dumps(original))
    restored_params = restored.param_groups[0]["params"]
    for opt, ps in ((original, params), (restored, restored_params)):
        for p, g in zip(ps, grads_at(3)):
            p.grad = g
        opt.step()
    for a, b in zip(params, restored_params):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=0)
