"""The fused Triton LAMB/LARS kernels: the float64 references' numbers, the multi-tensor path's state and statistics.

With CUDA the tests run compiled on the GPU. Without, they run on CPU tensors under Triton's interpreter, which
must be on (``TRITON_INTERPRET=1``) before Triton is first imported; in a whole test session Lightning imports
Triton earlier, so ``test_kernels_under_the_interpreter`` reruns this file in a fresh process with the variable
set, and the kernel tests skip in the parent. Everything skips where Triton is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from test_optim_formulas import LAMB_CASES, LARS_BASE, LARS_CASES

triton = pytest.importorskip("triton", reason="Triton is not installed (pip install triton; CUDA torch ships it)")

from largebatch.optim import LAMB, LARS, base  # noqa: E402  (after the skip: importing the kernels needs Triton)
from largebatch.optim import _fused_triton  # noqa: E402
from largebatch.optim.reference import ReferenceLAMB, ReferenceLARS  # noqa: E402

INTERPRETED = bool(triton.knobs.runtime.interpret)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
kernels_run_here = pytest.mark.skipif(
    not (torch.cuda.is_available() or INTERPRETED),
    reason="no CUDA: runs under Triton's interpreter in test_kernels_under_the_interpreter's subprocess",
)
# Under the interpreter (~0.1 s a launch) the cases that reach every kernel variant; on a GPU all of them.
INTERPRETER_CASES = {"paper_defaults", "decoupled", "nvlamb_pre_normalization", "lambc_trust_clip",
                     "paper", "optax_denominator", "nesterov_torch", "dampening"}
STEPS = range(1, 4) if INTERPRETED else range(1, 6)


def cases(table: dict[str, Any]) -> list[str]:
    return sorted(c for c in table if not INTERPRETED or c in INTERPRETER_CASES)


# tiny and multi-block tensors (blocks of 64 elements under the interpreter), a zero-initialised bias last
SHAPES = [(5, 3), (4,), (2, 3, 2), (40, 30), (7, 1), (130,), (3,)]


@pytest.fixture(autouse=True)
def triton_for_the_test_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """Route buckets on the test's device to the Triton kernels, in small blocks under the interpreter."""
    monkeypatch.setattr(base, "TRITON_DEVICES", frozenset({"cuda", DEVICE}))
    if INTERPRETED:
        monkeypatch.setattr(_fused_triton, "BLOCK", 64)
        monkeypatch.setattr(_fused_triton, "REDUCE_BLOCK", 4)  # several reduction iterations for (40, 30)


def make_params(dtype: torch.dtype = torch.float32, shapes: list[tuple[int, ...]] = SHAPES) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    params[-1].zero_()
    return [p.to(DEVICE, dtype).requires_grad_() for p in params]


def grads_at(step: int, shapes: list[tuple[int, ...]] = SHAPES) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    return [torch.randn(s, generator=g, dtype=torch.float64) * (1 + i) for i, s in enumerate(shapes)]


def step(opt: torch.optim.Optimizer, params: list[torch.Tensor], t: int, lr: float | None = None) -> None:
    """Fresh ``.grad`` tensors every step (new addresses, as after ``zero_grad(set_to_none=True)``)."""
    if lr is not None:
        for group in opt.param_groups:
            group["lr"] = lr
    for p, g in zip(params, grads_at(t, [tuple(p.shape) for p in params])):
        p.grad = g.to(DEVICE, p.dtype)
    opt.step()


def assert_close_all(ours: list[torch.Tensor], theirs: list[torch.Tensor], rtol: float, atol: float) -> None:
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.detach().double().cpu(), b.detach().double().cpu(), rtol=rtol, atol=atol)


def assert_same_stats(opt: torch.optim.Optimizer, eager: torch.optim.Optimizer, fields: tuple[str, ...]) -> None:
    stats, eager_stats = opt.layer_stats(), eager.layer_stats()
    for field in fields:
        torch.testing.assert_close(getattr(stats, field).cpu(), getattr(eager_stats, field).cpu(), rtol=1e-5,
                                   atol=1e-7)


@kernels_run_here
@pytest.mark.parametrize("case", cases(LAMB_CASES))
def test_lamb_triton_matches_algorithm_2_and_eager(case: str) -> None:
    fused, eager = make_params(), make_params()
    reference = [p.detach().double().cpu() for p in make_params()]
    opt, eager_opt = (LAMB(ps, lr=1e-2, fused=f, **LAMB_CASES[case]) for ps, f in ((fused, True), (eager, False)))
    ref = ReferenceLAMB(lr=1e-2, **LAMB_CASES[case])
    for t in STEPS:
        step(opt, fused, t)
        step(eager_opt, eager, t)
        ref.step(reference, grads_at(t))
        assert_close_all(fused, eager, rtol=2e-5, atol=2e-6)
        assert_close_all(fused, reference, rtol=2e-5, atol=2e-6)
        assert_same_stats(opt, eager_opt, ("weight_norm", "update_norm", "trust_ratio", "lr"))
        grad_norms = torch.stack([p.grad.double().norm() for p in fused]).float()
        torch.testing.assert_close(opt.layer_stats().grad_norm, grad_norms, rtol=1e-5, atol=0.0)
    assert opt._triton_kernels is not None and opt._triton_kernels._buckets  # the Triton path ran


@kernels_run_here
@pytest.mark.parametrize("case", cases(LARS_CASES))
def test_lars_triton_matches_algorithm_1_and_eager(case: str) -> None:
    kwargs = {**LARS_BASE, **LARS_CASES[case]}
    fused, eager = make_params(), make_params()
    reference = [p.detach().double().cpu() for p in make_params()]
    opt, eager_opt = (LARS(ps, lr=2.0, fused=f, **kwargs) for ps, f in ((fused, True), (eager, False)))
    ref = ReferenceLARS(lr=2.0, **kwargs)
    for t in STEPS:
        step(opt, fused, t, lr=2.0 / t)
        step(eager_opt, eager, t, lr=2.0 / t)
        ref.step(reference, grads_at(t), 2.0 / t)
        assert_close_all(fused, eager, rtol=2e-5, atol=2e-6)
        assert_close_all(fused, reference, rtol=2e-5, atol=2e-6)
        assert_same_stats(opt, eager_opt, ("weight_norm", "grad_norm", "update_norm", "trust_ratio", "lr"))
    assert opt._triton_kernels._buckets


GROUP_CASES: dict[str, tuple[type, dict[str, Any], dict[str, Any]]] = {
    "lamb_adapt_off_group": (LAMB, {"adapt": False}, {}),
    "lamb_decoupled_adapt_off": (LAMB, {"adapt": False, "weight_decay": 0.1}, {"weight_decay_mode": "decoupled"}),
    "lars_adapt_off_group": (LARS, {"adapt": False}, LARS_BASE),
    "lars_without_momentum": (LARS, {}, {"momentum": 0.0, "weight_decay": 5e-4}),
}


@kernels_run_here
@pytest.mark.parametrize("case", sorted(GROUP_CASES))
def test_triton_matches_eager_with_per_group_settings(case: str) -> None:
    cls, second_group, kwargs = GROUP_CASES[case]
    runs = []
    for fused in (True, False):
        params = make_params()
        opt = cls([{"params": params[:3]}, {"params": params[3:], **second_group}], lr=0.5, fused=fused, **kwargs)
        for t in STEPS:
            step(opt, params, t)
        runs.append((params, opt))
    (fused_params, opt), (eager_params, eager_opt) = runs
    assert_close_all(fused_params, eager_params, rtol=2e-5, atol=2e-6)
    assert_same_stats(opt, eager_opt, ("trust_ratio", "lr"))


@kernels_run_here
@pytest.mark.parametrize("cls, kwargs", [(LAMB, {"lr": 1e-2}), (LARS, {"lr": 1.0, **LARS_BASE})], ids=["lamb", "lars"])
def test_triton_state_dict_is_the_eager_one_and_resumes_there(cls: type, kwargs: dict[str, Any]) -> None:
    """Same keys, dtypes and values as the multi-tensor path; a Triton checkpoint continues on that path."""
    fused, eager = make_params(), make_params()
    opt, eager_opt = cls(fused, fused=True, **kwargs), cls(eager, fused=False, **kwargs)
    for t in (1, 2):
        step(opt, fused, t)
        step(eager_opt, eager, t)
    state, eager_state = opt.state_dict(), eager_opt.state_dict()
    assert state["param_groups"] == eager_state["param_groups"]
    for index, entry in state["state"].items():
        assert entry.keys() == eager_state["state"][index].keys()
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                assert value.dtype == eager_state["state"][index][key].dtype
                torch.testing.assert_close(value, eager_state["state"][index][key], rtol=2e-5, atol=2e-6)
    resumed = cls(fused, fused=False, **kwargs)
    resumed.load_state_dict(state)
    step(resumed, fused, 3)
    step(eager_opt, eager, 3)
    assert_close_all(fused, eager, rtol=2e-5, atol=2e-6)


@kernels_run_here
@pytest.mark.parametrize("cls, kwargs", [(LAMB, {"lr": 1e-2}), (LARS, {"lr": 1.0, **LARS_BASE})], ids=["lamb", "lars"])
def test_triton_bf16_params_keep_float32_norms(cls: type, kwargs: dict[str, Any]) -> None:
    """bf16 parameters, moments and buffers; float32 norms; within bf16 rounding of the float32 step."""
    half, full = make_params(torch.bfloat16), make_params()
    opt, full_opt = cls(half, fused=True, **kwargs), cls(full, fused=False, **kwargs)
    for t in (1, 2, 3):
        step(opt, half, t)
        step(full_opt, full, t)
    assert_close_all(half, full, rtol=2e-2, atol=2e-2)
    stats = opt.layer_stats()
    assert stats.weight_norm.dtype == torch.float32 and stats.trust_ratio.dtype == torch.float32
    torch.testing.assert_close(stats.weight_norm, full_opt.layer_stats().weight_norm, rtol=2e-2, atol=1e-3)
    assert all(v.dtype == torch.bfloat16 for s in opt.state.values() for v in s.values() if torch.is_tensor(v))
    assert opt._triton_kernels._buckets


@kernels_run_here
def test_triton_declines_non_contiguous_params_to_the_eager_path() -> None:
    full = [torch.randn(6, 8, device=DEVICE) for _ in range(2)]
    fused = [full[0].t().detach().requires_grad_(), full[1].clone().requires_grad_()]
    eager = [p.detach().clone().requires_grad_() for p in fused]
    opt, eager_opt = LAMB(fused, lr=1e-2, fused=True), LAMB(eager, lr=1e-2, fused=False)
    for t in (1, 2):
        step(opt, fused, t)
        step(eager_opt, eager, t)
    assert_close_all(fused, eager, rtol=1e-6, atol=1e-7)


@kernels_run_here
def test_triton_declines_a_non_contiguous_gradient_to_the_eager_path() -> None:
    """Checked whenever a gradient's address changes: a transposed ``.grad`` takes the multi-tensor path."""
    fused = [torch.randn(6, 8, device=DEVICE).requires_grad_() for _ in range(2)]
    eager = [p.detach().clone().requires_grad_() for p in fused]
    opt, eager_opt = LAMB(fused, lr=1e-2, fused=True), LAMB(eager, lr=1e-2, fused=False)
    for t in (1, 2):
        grads = grads_at(t, [(8, 6), (6, 8)])
        for params, o in ((fused, opt), (eager, eager_opt)):
            params[0].grad = grads[0].to(DEVICE, torch.float32).t()  # non-contiguous from step 1 on
            params[1].grad = grads[1].to(DEVICE, torch.float32)
            o.step()
    assert_close_all(fused, eager, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_kernels_under_the_interpreter() -> None:
    """This file again, in a fresh process with ``TRITON_INTERPRET=1``: the kernels on CPU tensors."""
    if torch.cuda.is_available() or INTERPRETED:
        pytest.skip("the kernel tests run in this process")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__)),
               "-k", "not under_the_interpreter"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parent)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    assert done.returncode == 0 and "skipped" not in summary, done.stdout[-4000:] + done.stderr[-2000:]
