"""LARS/LAMB behaviour: foreach = per-parameter, no host sync, resume, dtypes, AMP, accumulation, convergence."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from largebatch.optim import LAMB, LARS, param_groups

OPTIMIZERS = {
    "lamb": lambda groups, **kw: LAMB(groups, lr=3e-3, **kw),
    "lars": lambda groups, **kw: LARS(groups, lr=2.0, momentum=0.9, weight_decay=1e-4, **kw),
}


def small_model(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))
    nn.init.zeros_(model[3].bias)
    return model.to(dtype)


def batch(step: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    x = torch.randn(64, 8, generator=g).to(dtype)
    return x, (x[:, :3].float().sum(1) > 0).long() + (x[:, 3].float() > 1).long()


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: range) -> list[float]:
    losses = []
    for t in steps:
        x, y = batch(t, next(model.parameters()).dtype)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_foreach_and_per_parameter_paths_agree(name: str) -> None:
    models = [small_model(), small_model()]
    for model, kwargs in zip(models, ({"fused": False}, {"foreach": False})):
        train(model, OPTIMIZERS[name](param_groups(model, weight_decay=1e-4), **kwargs), range(10))
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_step_never_syncs_with_the_host(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = small_model()
    clip = {"trust_clip": True} if name == "lars" else {"lambc": True}  # LARC, LAMBC
    opt = OPTIMIZERS[name](param_groups(model, weight_decay=1e-4), **clip)
    x, y = batch(0)
    nn.functional.cross_entropy(model(x), y).backward()

    def forbidden(*_args, **_kwargs):
        raise AssertionError("host synchronisation inside step()")

    for attr in ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, attr, forbidden)
    opt.step()
    monkeypatch.undo()
    assert len(opt.layer_stats().names) == len(list(model.parameters()))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_remembered_buckets_follow_gradients_that_come_and_go(name: str) -> None:
    """The grouping a step reuses (``_buckets``' plan) is rebuilt when a parameter has no gradient for a step
    (its step count then lags, so it joins another bucket) and after ``load_state_dict``: the result equals an
    optimizer rebuilt from its state dict before every step, which never reuses a plan."""
    models = [small_model(), small_model()]
    kept = OPTIMIZERS[name](param_groups(models[0], weight_decay=1e-4))
    state = None
    for t in range(8):
        rebuilt = OPTIMIZERS[name](param_groups(models[1], weight_decay=1e-4))
        if state is not None:
            rebuilt.load_state_dict(state)
        for model, opt in zip(models, (kept, rebuilt)):
            x, y = batch(t)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            if t in (2, 3):
                model[3].weight.grad = None  # a frozen-for-a-while layer: its step count falls behind
            opt.step()
        state = copy.deepcopy(rebuilt.state_dict())
        if t == 5:
            kept.load_state_dict(copy.deepcopy(kept.state_dict()))
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)
    steps = {kept.state[p]["step"] for p in models[0].parameters()}
    assert steps == {6, 8}
    kept.state.clear()  # a reset of the state in place: the next step starts every parameter afresh
    train(models[0], kept, range(8, 9))
    assert {kept.state[p]["step"] for p in models[0].parameters()} == {1}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_grad_is_never_modified(name: str) -> None:
    model = small_model()
    kwargs = {"grad_pre_normalization": 1e-3} if name == "lamb" else {}
    opt = OPTIMIZERS[name](param_groups(model, weight_decay=1e-2), **kwargs)
    x, y = batch(0)
    nn.functional.cross_entropy(model(x), y).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    for p, g in zip(model.parameters(), grads):
        assert torch.equal(p.grad, g)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_dict_resume_is_bit_identical(name: str) -> None:
    model = small_model()
    opt = OPTIMIZERS[name](param_groups(model, weight_decay=1e-4))
    train(model, opt, range(3))
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    train(model, opt, range(3, 7))

    resumed = small_model()
    resumed.load_state_dict(saved_model)
    resumed_opt = OPTIMIZERS[name](param_groups(resumed, weight_decay=1e-4))
    resumed_opt.load_state_dict(saved_opt)
    train(resumed, resumed_opt, range(3, 7))
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_lamb_work_buffers_are_reused_and_stay_out_of_the_state_dict() -> None:
    model = small_model()
    opt = LAMB(param_groups(model, weight_decay=1e-4), grad_pre_normalization=1.0, fused=False)
    train(model, opt, range(2))
    storage = {key: buffer.data_ptr() for key, buffer in opt._work.items()}
    train(model, opt, range(2, 4))
    assert {key: buffer.data_ptr() for key, buffer in opt._work.items()} == storage
    assert len(storage) == len(list(model.parameters()))
    assert all(set(s) == {"step", "exp_avg", "exp_avg_sq"} for s in opt.state_dict()["state"].values())


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_bfloat16_parameters_train(name: str) -> None:
    model = small_model(torch.bfloat16)
    losses = train(model, OPTIMIZERS[name](param_groups(model, weight_decay=1e-4)), range(30))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) < sum(losses[:5])
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_gradient_accumulation_equals_the_full_batch(name: str) -> None:
    full, accumulated = small_model().double(), small_model().double()
    for m in (full, accumulated):
        m.eval()  # BatchNorm statistics would differ between half batches
    opts = [OPTIMIZERS[name](param_groups(m, weight_decay=1e-4)) for m in (full, accumulated)]
    x, y = batch(0, torch.float64)
    nn.functional.cross_entropy(full(x), y).backward()
    for half in (slice(0, 32), slice(32, 64)):
        (nn.functional.cross_entropy(accumulated(x[half]), y[half]) / 2).backward()
    for opt in opts:
        opt.step()
    for a, b in zip(full.parameters(), accumulated.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_grad_scaler_skips_inf_steps(name: str) -> None:
    model = small_model()
    opt = OPTIMIZERS[name](param_groups(model, weight_decay=1e-4))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    x, y = batch(0)
    scaler.scale(nn.functional.cross_entropy(model(x), y)).backward()
    next(model.parameters()).grad[0, 0] = float("inf")
    before = [p.detach().clone() for p in model.parameters()]
    scaler.step(opt)
    scaler.update()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not opt.state  # the skipped step created no state and counted no step
    opt.zero_grad()
    scaler.scale(nn.functional.cross_entropy(model(x), y)).backward()
    scaler.step(opt)
    scaler.update()
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(s["step"] == 1 for s in opt.state.values())


def test_zero_initialised_bias_learns_with_both_optimizers() -> None:
    for name in OPTIMIZERS:
        model = small_model()
        opt = OPTIMIZERS[name]([{"params": list(model.parameters()), "adapt": True}])
        train(model, opt, range(1))
        assert model[3].bias.abs().sum() > 0, name


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_converges_on_real_handwritten_digits(name: str) -> None:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    groups = param_groups(model, weight_decay=1e-4)
    opt = LAMB(groups, lr=0.02) if name == "lamb" else LARS(groups, lr=5.0, momentum=0.9, weight_decay=1e-4)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[:1400]), y[:1400]).backward()
        opt.step()
    accuracy = (model(x[1400:]).argmax(1) == y[1400:]).float().mean().item()
    assert accuracy > 0.85, accuracy


def test_invalid_hyperparameters_are_rejected_clearly() -> None:
    params = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="denominator must be 'paper' or 'update'"):
        LARS(params, denominator="both")
    with pytest.raises(ValueError, match="lr_placement"):
        LARS(params, lr_placement="inside")
    with pytest.raises(ValueError, match="betas"):
        LAMB(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="weight_decay_mode"):
        LAMB(params, weight_decay_mode="l2")
