"""GPU paths (skipped without CUDA): same numbers as on CPU, no host sync, AMP training runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from largebatch.optim import LAMB, LARS, param_groups

pytestmark = pytest.mark.gpu
EXPERIMENTS = Path(__file__).parents[1] / "experiments"


def model_on(device: str) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 64), nn.LayerNorm(64), nn.GELU(), nn.Linear(64, 4)).to(device)


def run(model: nn.Module, make, steps: int = 5) -> None:
    opt = make(param_groups(model, weight_decay=1e-3))
    device = next(model.parameters()).device
    for t in range(steps):
        g = torch.Generator().manual_seed(t)
        x, y = torch.randn(32, 16, generator=g).to(device), torch.randint(0, 4, (32,), generator=g).to(device)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("make", [lambda g: LAMB(g, lr=1e-2), lambda g: LARS(g, lr=1.0, weight_decay=1e-3)],
                         ids=["lamb", "lars"])
def test_cuda_matches_cpu(make) -> None:
    cpu, gpu = model_on("cpu"), model_on("cuda")
    run(cpu, make)
    run(gpu, make)
    for a, b in zip(cpu.parameters(), gpu.parameters()):
        torch.testing.assert_close(a, b.cpu(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make", [lambda g: LAMB(g, lr=1e-2, grad_pre_normalization=1.0, lambc=True),
                                  lambda g: LARS(g, lr=1.0, trust_clip=True)], ids=["lamb", "lars"])
def test_cuda_step_has_no_host_sync(make) -> None:
    model = model_on("cuda")
    opt = make(param_groups(model, weight_decay=1e-3))
    nn.functional.cross_entropy(model(torch.randn(8, 16, device="cuda")), torch.zeros(8, dtype=torch.long,
                                                                                     device="cuda")).backward()
    opt.step()  # warm up allocations and lazy state
    torch.cuda.set_sync_debug_mode("error")
    try:
        opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_amp_training_run_on_gpu(precision: str, tmp_path: Path) -> None:
    from largebatch.train.config import load_experiment
    from largebatch.train.runner import train

    config = load_experiment(EXPERIMENTS / "mnist1d_cnn.yaml", [
        "data.options.num_samples=2000", "budget={epochs: 10}", f"trainer.precision={precision}",
        f"tracking.runs_root={tmp_path}", "tracking.wandb.mode=disabled"])
    result = train(config)
    assert result.status == "completed"
    losses = pd.read_csv(result.run_dir / "metrics.csv").query("name == 'train/loss'")["value"]
    assert losses.iloc[-3:].mean() < losses.iloc[:3].mean()  # it learns (fp32 on CPU: val acc ~0.29 here)
    assert result.summary["eval"]["val_acc"] > 0.15


def test_cuda_buckets_take_the_triton_kernels() -> None:
    pytest.importorskip("triton")
    model = model_on("cuda")
    opts = []
    run(model, lambda groups: opts.append(LAMB(groups, lr=1e-2)) or opts[0], steps=1)
    assert opts[0]._triton_kernels and opts[0]._triton_kernels._buckets


@pytest.mark.parametrize("make", [lambda g: LAMB(g, lr=1e-2, bias_correction=False),
                                  lambda g: LARS(g, lr=1.0, weight_decay=1e-3)], ids=["lamb", "lars"])
def test_cuda_step_replays_from_a_cuda_graph(make) -> None:
    """Captured once after warm-up, replayed: the same parameters as stepping eagerly (constant lr, no
    step-dependent scalars: a graph replays the captured step's scalars)."""
    pytest.importorskip("triton")
    models = [model_on("cuda"), model_on("cuda")]
    opts = [make(param_groups(m, weight_decay=1e-3)) for m in models]
    g = torch.Generator(device="cuda").manual_seed(0)
    for model in models:
        for p in model.parameters():
            p.grad = torch.randn(p.shape, device="cuda", generator=g) * 1e-2
        g.manual_seed(0)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for opt in opts:
            for _ in range(2):  # warm-up: state, address tables, JIT
                opt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opts[0].step()
    for _ in range(3):
        graph.replay()
    for _ in range(3):  # capture records without running: both models take 2 + 3 steps
        opts[1].step()
    torch.cuda.synchronize()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_pack_probe_measures_a_trial_on_the_gpu(tmp_path: Path) -> None:
    from largebatch.sweep import load_sweep
    from largebatch.sweep.packing import largest_trial, measure_peak_memory, trials_per_gpu

    path = tmp_path / "sweep.yaml"
    path.write_text(f"name: t\nexperiment: {EXPERIMENTS / 'mnist1d_cnn.yaml'}\ngrid: {{batch_size: [64, 1024]}}\n"
                    "budget: {epochs: 1}\n")
    peak, total = measure_peak_memory(largest_trial(load_sweep(path)))
    assert 0 < peak < total
    assert trials_per_gpu(peak, total) > 1  # a 1-D CNN on MNIST-1D is far below a GPU's memory
