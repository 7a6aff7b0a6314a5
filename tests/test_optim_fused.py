"""The fused CPU kernels of LARS/LAMB: same numbers as the eager paths and the papers, routing, fallback, resume."""

from __future__ import annotations

import copy
import functools
import time
import warnings
from types import ModuleType
from typing import Any

import pytest
import torch
from test_optim_formulas import LAMB_CASES, LARS_BASE, LARS_CASES

from largebatch.optim import LAMB, LARS, _fused_cpu
from largebatch.optim.reference import ReferenceLAMB, ReferenceLARS

# float32 shapes: tiny ones sharing a work window, one spanning several windows, a zero-initialised bias
SHAPES = [(5, 3), (4,), (2, 3, 2), (300, 250), (7, 1), (3,)]
BIG = [(700, 500), (64,), (300, 300)]  # over the kernels' serial threshold: runs on several threads


@pytest.fixture(scope="session")
def kernels() -> ModuleType:
    """The compiled kernels, built (or loaded from torch's extension cache) once per test session."""
    started = time.perf_counter()
    module = _fused_cpu.kernels()
    if module is None:
        pytest.skip("the fused CPU kernels cannot be built here (no C++ compiler?)")
    print(f"\nfused CPU kernels ready in {time.perf_counter() - started:.1f} s")
    return module


def make_params(shapes: list[tuple[int, ...]] = SHAPES, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    params[-1].zero_()
    return [p.to(dtype).requires_grad_() for p in params]


def grads_at(step: int, shapes: list[tuple[int, ...]] = SHAPES) -> list[torch.Tensor]:
    """Gradients independent of the weights, so rounding differences cannot feed back through a model."""
    g = torch.Generator().manual_seed(100 + step)
    return [torch.randn(s, generator=g, dtype=torch.float64) * (1 + i) for i, s in enumerate(shapes)]


def run(opt: torch.optim.Optimizer, params: list[torch.Tensor], steps: range, lr_decay: bool = False) -> None:
    for t in steps:
        if lr_decay:  # a changing rate tells the two LARS lr placements apart
            for group in opt.param_groups:
                group["lr"] = 2.0 / t
        for p, g in zip(params, grads_at(t, [tuple(p.shape) for p in params])):
            p.grad = g.to(p.dtype).to(p.device)
        opt.step()


def assert_matches(fused: list[torch.Tensor], eager: list[torch.Tensor], reference: list[torch.Tensor]) -> None:
    """Fused agrees with eager float32 and with the float64 reference to float32 rounding."""
    for f, e, r in zip(fused, eager, reference):
        torch.testing.assert_close(f.detach(), e.detach(), rtol=2e-5, atol=2e-6)
        torch.testing.assert_close(f.detach().double(), r, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("case", sorted(LAMB_CASES))
def test_lamb_fused_matches_eager_and_algorithm_2(case: str, kernels: ModuleType) -> None:
    fused, eager = make_params(), make_params()
    reference = [p.detach().double() for p in make_params()]
    opts = [LAMB(ps, lr=1e-2, fused=f, **LAMB_CASES[case]) for ps, f in ((fused, True), (eager, False))]
    ref = ReferenceLAMB(lr=1e-2, **LAMB_CASES[case])
    for t in range(1, 6):
        for opt, params in zip(opts, (fused, eager)):
            run(opt, params, range(t, t + 1))
        ref.step(reference, grads_at(t))
        assert_matches(fused, eager, reference)
    stats, eager_stats = opts[0].layer_stats(), opts[1].layer_stats()
    for field in ("weight_norm", "update_norm", "trust_ratio", "lr"):
        torch.testing.assert_close(getattr(stats, field), getattr(eager_stats, field), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("case", sorted(LARS_CASES))
def test_lars_fused_matches_eager_and_algorithm_1(case: str, kernels: ModuleType) -> None:
    kwargs = {**LARS_BASE, **LARS_CASES[case]}
    fused, eager = make_params(), make_params()
    reference = [p.detach().double() for p in make_params()]
    opts = [LARS(ps, lr=2.0, fused=f, **kwargs) for ps, f in ((fused, True), (eager, False))]
    ref = ReferenceLARS(lr=2.0, **kwargs)
    for t in range(1, 6):
        for opt, params in zip(opts, (fused, eager)):
            run(opt, params, range(t, t + 1), lr_decay=True)
        ref.step(reference, grads_at(t), 2.0 / t)
        assert_matches(fused, eager, reference)
    stats, eager_stats = opts[0].layer_stats(), opts[1].layer_stats()
    for field in ("weight_norm", "grad_norm", "update_norm", "trust_ratio", "lr"):
        torch.testing.assert_close(getattr(stats, field), getattr(eager_stats, field), rtol=1e-5, atol=1e-7)


GROUP_CASES: dict[str, tuple[type, dict[str, Any], dict[str, Any]]] = {
    "lamb_adapt_off_group": (LAMB, {"adapt": False}, {}),
    "lamb_decoupled_adapt_off": (LAMB, {"adapt": False, "weight_decay": 0.1}, {"weight_decay_mode": "decoupled"}),
    "lars_adapt_off_group": (LARS, {"adapt": False}, {"momentum": 0.9, "weight_decay": 5e-4}),
    "lars_without_momentum": (LARS, {}, {"momentum": 0.0, "weight_decay": 5e-4}),
    "lars_nesterov_update_denominator": (
        LARS, {"weight_decay": 0.0}, {"momentum": 0.9, "weight_decay": 5e-4, "nesterov": True, "denominator": "update"}
    ),
}


@pytest.mark.parametrize("case", sorted(GROUP_CASES))
def test_fused_matches_eager_with_per_group_settings(case: str, kernels: ModuleType) -> None:
    cls, second_group, kwargs = GROUP_CASES[case]
    results = []
    for fused in (True, False):
        params = make_params()
        opt = cls([{"params": params[:3]}, {"params": params[3:], **second_group}], lr=0.5, fused=fused, **kwargs)
        run(opt, params, range(1, 6))
        results.append((params, opt.layer_stats()))
    (fused_params, fused_stats), (eager_params, eager_stats) = results
    for f, e in zip(fused_params, eager_params):
        torch.testing.assert_close(f.detach(), e.detach(), rtol=2e-5, atol=2e-6)
    torch.testing.assert_close(fused_stats.trust_ratio, eager_stats.trust_ratio, rtol=1e-5, atol=1e-7)
    if "adapt" in second_group:
        assert torch.equal(fused_stats.trust_ratio[3:], torch.ones(len(params) - 3))


def block_shapes(kernels: ModuleType) -> list[tuple[int, ...]]:
    """A bucket that the LAMB kernel splits into several cache blocks.

    Blocks: [A, bias] (just within the budget), [B] (A, bias and B would not fit), [C] alone (larger than the budget
    and than the u' all threads keep, so pass 2 recomputes part of it), then the small ones; the last is zero.
    """
    budget = kernels.LAMB_BLOCK_BYTES // 12  # elements of x, m and v
    a, b, c = budget - 1000, budget // 2, kernels.LAMB_KEPT_ELEMENTS + 5 * 2**15 + 123
    assert c > budget and a + 1000 + b > budget
    return [(a // 100, 100), (1000,), (b // 50, 50), (c,), (7, 3), (5,), (64,)]


BLOCK_CASES: dict[str, dict[str, Any]] = {
    "paper": {},
    "phi_and_ratio_clamps": {"weight_norm_bounds": (0.0, 10.0), "ratio_bounds": (0.05, 2.0)},
    "trust_clip": {"lambc": True},
    "decoupled": {"weight_decay_mode": "decoupled", "weight_decay": 0.1},
    "nvlamb_pre_normalization": {"grad_pre_normalization": 1.0},
}


@pytest.mark.parametrize("case", sorted(BLOCK_CASES))
def test_lamb_fused_matches_eager_across_cache_blocks(case: str, kernels: ModuleType) -> None:
    """Several blocks, one tensor over the block budget, adapt=False and no-decay groups, zero norms."""
    shapes = block_shapes(kernels)
    small = [(6, 2), (50,)]  # in the no-decay group: (50,) gets a zero gradient, so ‖u‖ = 0 there
    results = []
    for fused in (True, False):
        params = make_params(shapes + small + [(200, 100), (9,)])
        adapted, no_decay, plain = params[: len(shapes)], params[len(shapes) : -2], params[-2:]
        with torch.no_grad():
            adapted[-1].zero_()  # ‖x‖ = 0 at step 1
        groups = [{"params": adapted}, {"params": no_decay, "weight_decay": 0.0}, {"params": plain, "adapt": False}]
        opt = LAMB(groups, lr=1e-2, fused=fused, **BLOCK_CASES[case])
        steps = []
        for t in range(1, 4):
            for p, g in zip(params, grads_at(t, [tuple(p.shape) for p in params])):
                p.grad = g.float()
            no_decay[-1].grad.zero_()  # with m = v = 0 and no decay, ‖u‖ = 0
            before = [p.detach().double() for p in params]
            opt.step()
            steps.append((opt.layer_stats(), before, [p.grad.double() for p in params]))
        results.append((params, steps))
    (fused_params, fused_steps), (eager_params, eager_steps) = results
    for f, e in zip(fused_params, eager_params):
        torch.testing.assert_close(f.detach(), e.detach(), rtol=2e-5, atol=2e-6)
    for (stats, before, grads), (eager_stats, _, _) in zip(fused_steps, eager_steps):
        # the kernel sums in double; the eager float32 norm of the 2.2M-element tensor is ~3e-5 off
        for field in ("weight_norm", "update_norm", "trust_ratio", "lr"):
            torch.testing.assert_close(getattr(stats, field), getattr(eager_stats, field), rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(stats.weight_norm, torch.stack([x.norm() for x in before]).float(), rtol=1e-6,
                                   atol=0.0)
        torch.testing.assert_close(stats.grad_norm, torch.stack([g.norm() for g in grads]).float(), rtol=1e-6,
                                   atol=0.0)
        assert torch.equal(stats.lr, 1e-2 * stats.trust_ratio)
    first, last = fused_steps[0][0], fused_steps[-1][0]
    n_adapted, n_no_decay = len(shapes), len(small)
    assert first.weight_norm[n_adapted - 1] == 0.0 and first.trust_ratio[n_adapted - 1] == 1.0
    for stats in (first, last):
        assert stats.update_norm[n_adapted + n_no_decay - 1] == 0.0
        assert stats.trust_ratio[n_adapted + n_no_decay - 1] == 1.0
        assert torch.equal(stats.trust_ratio[-2:], torch.ones(2))  # adapt=False
    if case == "phi_and_ratio_clamps":
        assert (last.trust_ratio[[0, 2, 3]] == 0.05).all()  # the matrices: φ = 10, ‖u‖ in the hundreds
    if case == "trust_clip":
        assert last.trust_ratio.max() == 1.0


def test_lamb_fused_blocks_do_not_depend_on_the_thread_count(kernels: ModuleType) -> None:
    """Which windows keep u' for pass 2 (the rest recompute it) depends on the thread count; the bits do not."""
    results = []
    threads = torch.get_num_threads()
    for n in (1, 2, 3):
        torch.set_num_threads(n)
        try:
            params = make_params(block_shapes(kernels))
            opt = LAMB(params, lr=0.1, weight_decay=1e-3, fused=True)
            run(opt, params, range(1, 4))
        finally:
            torch.set_num_threads(threads)
        results.append((params, opt.layer_stats()))
    (first, first_stats), *others = results
    for params, stats in others:
        assert all(torch.equal(a, b) for a, b in zip(first, params))
        assert torch.equal(stats.trust_ratio, first_stats.trust_ratio)


@pytest.mark.parametrize("cls", [LAMB, LARS])
def test_fused_results_do_not_depend_on_the_thread_count(cls: type, kernels: ModuleType) -> None:
    results = []
    threads = torch.get_num_threads()
    for n in (1, 2):
        torch.set_num_threads(n)
        try:
            params = make_params(BIG)
            run(cls(params, lr=0.1, weight_decay=1e-3, fused=True), params, range(1, 4))
        finally:
            torch.set_num_threads(threads)
        results.append(params)
    assert all(torch.equal(a, b) for a, b in zip(*results))


def test_lamb_fused_stats_carry_the_gradient_norm(kernels: ModuleType) -> None:
    params = make_params()
    grads = grads_at(1)
    opt = LAMB(params, lr=1e-2, grad_pre_normalization=1.0, fused=True)
    run(opt, params, range(1, 2))
    expected = torch.stack([g.float().double().norm() for g in grads]).float()  # ‖p.grad‖, before NVLAMB's scale
    torch.testing.assert_close(opt.layer_stats().grad_norm, expected, rtol=1e-6, atol=0.0)
    eager = LAMB(make_params(), lr=1e-2, fused=False)
    run(eager, eager.param_groups[0]["params"], range(1, 2))
    assert eager.layer_stats().grad_norm is None


@pytest.mark.parametrize("cls", [LAMB, LARS])
def test_state_dict_moves_between_fused_and_eager(cls: type, kernels: ModuleType) -> None:
    params = make_params()
    opt = cls(params, lr=0.1, weight_decay=1e-3, fused=True)
    run(opt, params, range(1, 4))
    saved_params, saved_state = [p.detach().clone() for p in params], copy.deepcopy(opt.state_dict())
    run(opt, params, range(4, 7))

    eager_params = make_params()
    eager = cls(eager_params, lr=0.1, weight_decay=1e-3, fused=False)
    run(eager, eager_params, range(1, 2))
    assert {k: set(s) for k, s in eager.state_dict()["state"].items()} == {
        k: set(s) for k, s in saved_state["state"].items()
    }

    for fused in (True, False):
        resumed = [p.clone().requires_grad_() for p in saved_params]
        opt2 = cls(resumed, lr=0.1, weight_decay=1e-3, fused=fused)
        opt2.load_state_dict(copy.deepcopy(saved_state))  # loading shares the tensors, which the steps change
        run(opt2, resumed, range(4, 7))
        for a, b in zip(params, resumed):
            if fused:
                assert torch.equal(a, b)
            else:
                torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-6)


class Spy:
    """Wraps the kernels module and records which parameter lists each pass received."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.calls: list[tuple[str, list[torch.dtype], bool]] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.module, name)

        def call(params: list[torch.Tensor], *args: Any) -> Any:
            result = target(params, *args)
            self.calls.append((name, [p.dtype for p in params], result is not None))
            return result

        return call


@pytest.mark.parametrize("cls", [LAMB, LARS])
def test_only_float32_contiguous_cpu_lists_reach_the_kernels(
    cls: type, kernels: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(kernels)
    monkeypatch.setattr(_fused_cpu, "kernels", lambda: spy)
    plain = make_params()
    others = [torch.randn(4, 6, dtype=torch.bfloat16).requires_grad_(), torch.randn(3, 2, dtype=torch.float64)]
    strided = torch.randn(6, 4).t().requires_grad_()  # float32 but not contiguous: its group stays eager
    meta = torch.empty(5, 5, device="meta", requires_grad=True)
    groups = [{"params": plain}, {"params": others}, {"params": [strided]}, {"params": [meta]}]
    opt = cls(groups, lr=0.1, weight_decay=1e-3, fused=True)
    reference_params = [p.detach().clone().requires_grad_() for p in plain + others + [strided]]
    reference = cls(reference_params, lr=0.1, weight_decay=1e-3, fused=False)
    run(opt, plain + others + [strided, meta], range(1, 3))
    run(reference, reference_params, range(1, 3))

    first_pass = [call for call in spy.calls if call[0] in ("lamb_step", "lars_norms")]
    assert [(dtypes, accepted) for _, dtypes, accepted in first_pass] == [
        ([torch.float32] * len(plain), True), ([torch.float32], False)
    ] * 2
    for ours, theirs in zip(plain + others + [strided], reference_params):
        torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=2e-5, atol=2e-6)
    assert opt.state[meta]["step"] == 2  # stepped on the eager path (a meta tensor has no data to fuse)


def test_a_failed_build_warns_once_and_steps_on_the_eager_path(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No compiler: a fresh extension directory and a compiler that does not exist."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr(_fused_cpu, "kernels", functools.cache(_fused_cpu.kernels.__wrapped__))
    results = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for cls in (LAMB, LARS, LAMB):
            params = make_params()
            run(cls(params, lr=0.1, fused=True), params, range(1, 3))
            results.append(params)
    messages = [str(w.message) for w in caught if "fused CPU kernels" in str(w.message)]
    assert len(messages) == 1, messages
    assert "multi-tensor path" in messages[0]
    eager = make_params()
    run(LAMB(eager, lr=0.1, fused=False), eager, range(1, 3))
    assert all(torch.equal(a, b) for a, b in zip(results[0], eager))


@pytest.mark.parametrize("cls", [LAMB, LARS])
def test_fused_step_never_syncs_with_the_host(cls: type, kernels: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    params = make_params()
    kwargs = {"grad_pre_normalization": 1.0, "lambc": True} if cls is LAMB else {"trust_clip": True}
    opt = cls(params, lr=0.1, fused=True, **kwargs)
    for p, g in zip(params, grads_at(1)):
        p.grad = g.float()

    def forbidden(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("host synchronisation inside step()")

    for attr in ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, attr, forbidden)
    opt.step()
    monkeypatch.undo()
    assert opt.layer_stats().grad_norm is not None


def test_fused_needs_the_multi_tensor_path() -> None:
    with pytest.raises(ValueError, match="fused=True and foreach=False"):
        LAMB([torch.zeros(2, requires_grad=True)], fused=True, foreach=False)
    assert not LARS([torch.zeros(2, requires_grad=True)], foreach=False).fused


@pytest.mark.gpu
@pytest.mark.parametrize("cls", [LAMB, LARS])
def test_cuda_parameters_take_the_eager_path_next_to_fused_cpu_ones(cls: type, kernels: ModuleType) -> None:
    results = []
    for fused in (True, False):
        cpu, cuda = make_params(), [p.detach().cuda().requires_grad_() for p in make_params()]
        opt = cls([{"params": cpu}, {"params": cuda}], lr=0.1, weight_decay=1e-3, fused=fused)
        run(opt, cpu + cuda, range(1, 4))
        results.append(cpu + [p.cpu() for p in cuda])
    for a, b in zip(*results):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=2e-5, atol=2e-6)


def test_cpu_parameters_never_reach_the_triton_kernels() -> None:
    params = make_params()
    opt = LAMB(params, lr=1e-2)
    run(opt, params, range(1, 2))
    assert opt._triton_kernels is None


def test_without_triton_the_gpu_path_warns_once_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bucket on a Triton device when Triton cannot be imported: one warning, the other paths' numbers."""
    import sys

    import largebatch.optim
    from largebatch.optim import base

    monkeypatch.setattr(base, "TRITON_DEVICES", frozenset({"cpu"}))
    monkeypatch.setitem(sys.modules, "largebatch.optim._fused_triton", None)  # import fails
    monkeypatch.delattr(largebatch.optim, "_fused_triton", raising=False)
    base._triton_module.cache_clear()
    try:
        fused, eager = make_params(), make_params()
        with pytest.warns(RuntimeWarning, match="Triton is not importable"):
            opt = LARS(fused, lr=1.0, weight_decay=1e-3)
            run(opt, fused, range(1, 3))
        run(LARS(eager, lr=1.0, weight_decay=1e-3, fused=False), eager, range(1, 3))
        assert opt._triton_kernels is False
        for f, e in zip(fused, eager):
            torch.testing.assert_close(f, e, rtol=2e-5, atol=2e-6)
    finally:
        base._triton_module.cache_clear()
