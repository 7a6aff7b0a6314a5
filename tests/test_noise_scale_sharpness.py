"""Gradient noise scale and sharpness: estimators against problems with known answers, and the callbacks."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from largebatch.train.callbacks import NoiseScaleMonitor, SharpnessProbe
from largebatch.train.noise_scale import NoiseScaleEstimator, two_batch_estimates
from largebatch.train.sharpness import top_hessian_eigenvalue

EXPERIMENTS = Path(__file__).parents[1] / "experiments"


def regression(n: int = 4096, d: int = 8, noise: float = 0.5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w_star = torch.randn(d, generator=g, dtype=torch.float64)
    y = x @ w_star + noise * torch.randn(n, generator=g, dtype=torch.float64)
    w = w_star + 0.3 * torch.randn(d, generator=g, dtype=torch.float64)  # a point away from the optimum
    return x, y, w


def exact_b_simple(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> float:
    """tr(Σ)/|G|² from per-example gradients of ½(x·w − y)²: g_i = (x_i·w − y_i)·x_i."""
    per_example = (x @ w - y)[:, None] * x
    mean = per_example.mean(0)
    trace = ((per_example - mean) ** 2).sum(1).mean()
    return float(trace / mean.pow(2).sum())


def test_two_batch_estimates_are_exact_in_expectation() -> None:
    grad_sq, trace = 2.0, 30.0
    small, big = grad_sq + trace / 8, grad_sq + trace / 64
    est = two_batch_estimates(torch.tensor(small), torch.tensor(big), 8, 64)
    assert est[0].item() == pytest.approx(grad_sq) and est[1].item() == pytest.approx(trace)
    with pytest.raises(ValueError):
        two_batch_estimates(torch.tensor(1.0), torch.tensor(1.0), 64, 8)


def test_estimator_recovers_known_noise_scale_within_10_percent() -> None:
    x, y, w = regression()
    truth = exact_b_simple(x, y, w)
    per_example = (x @ w - y)[:, None] * x
    estimator = NoiseScaleEstimator(beta=0.999)
    g = torch.Generator().manual_seed(1)
    for _ in range(4000):
        small = per_example[torch.randint(0, len(x), (8,), generator=g)].mean(0)
        big = per_example[torch.randint(0, len(x), (128,), generator=g)].mean(0)
        estimator.update(small.pow(2).sum(), big.pow(2).sum(), 8, 128)
    assert estimator.b_simple.item() == pytest.approx(truth, rel=0.10)


class Regression(pl.LightningModule):
    """Linear regression whose weights never move (lr 0), so the true noise scale stays fixed."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.model = nn.Linear(len(w), 1, bias=False).double()
        with torch.no_grad():
            self.model.weight.copy_(w[None])

    def batch_losses(self, batch):
        x, y = batch
        loss_sum = 0.5 * (self.model(x).squeeze(1) - y).pow(2).sum()
        return loss_sum, torch.zeros(()), torch.tensor(float(len(y)))

    def training_step(self, batch, batch_idx):
        loss_sum, _, count = self.batch_losses(batch)
        return loss_sum / count

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


class Resampled(pl.LightningDataModule):
    def __init__(self, x, y, micro: int, accumulate: int, steps: int) -> None:
        super().__init__()
        self.x, self.y, self.micro = x, y, micro  # no batch sizes given: the monitor counts them from the batches
        self.n = steps * accumulate

    def train_dataloader(self):
        g = torch.Generator().manual_seed(2)
        rows = [torch.randint(0, len(self.x), (self.micro,), generator=g) for _ in range(self.n)]
        return Batches([(self.x[r], self.y[r]) for r in rows])


class Batches:
    """A plain iterable of batches (Lightning would read a bare list as several dataloaders)."""

    def __init__(self, batches: list) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


@pytest.mark.parametrize(("micro", "accumulate"), [(16, 8), (128, 1)], ids=["accumulation", "probe"])
def test_monitor_in_a_trainer_matches_the_exact_value(micro: int, accumulate: int) -> None:
    x, y, w = regression()
    monitor = NoiseScaleMonitor(every_n_steps=50, probe_every_n_steps=1, ema=0.995)
    trainer = pl.Trainer(accelerator="cpu", max_steps=1500, accumulate_grad_batches=accumulate, logger=False,
                         callbacks=[monitor], enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False)
    trainer.fit(Regression(w), datamodule=Resampled(x, y, micro, accumulate, 1500))
    assert monitor.history[-1]["noise_scale/b_simple"] == pytest.approx(exact_b_simple(x, y, w), rel=0.10)
    assert ("noise_scale/probe_ms" in monitor.history[-1]) == (accumulate == 1)


def test_power_iteration_on_a_quadratic_with_known_eigenvalues() -> None:
    eigenvalues = torch.tensor([5.0, 2.0, -1.0, 0.5], dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    a = q @ torch.diag(eigenvalues) @ q.T
    x = torch.randn(4, dtype=torch.float64, requires_grad=True)
    result = top_hessian_eigenvalue(lambda: 0.5 * x @ a @ x, [x], tol=1e-8, max_iterations=500)
    assert result.converged and result.value == pytest.approx(5.0, rel=1e-4)


def test_power_iteration_matches_explicit_hessian_of_a_tiny_network() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randint(0, 2, (16,))
    params = list(net.parameters())
    shapes = [p.shape for p in params]

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        chunks, i = [], 0
        for s in shapes:
            chunks.append(flat[i:i + s.numel()].view(s))
            i += s.numel()
        h = torch.tanh(x @ chunks[0].T + chunks[1])
        return nn.functional.cross_entropy(h @ chunks[2].T + chunks[3], y)

    flat = torch.cat([p.detach().flatten() for p in params])
    hessian = torch.autograd.functional.hessian(loss_of, flat)
    eigs = torch.linalg.eigvalsh(hessian)
    expected = eigs[eigs.abs().argmax()].item()
    result = top_hessian_eigenvalue(lambda: nn.functional.cross_entropy(net(x), y), params, tol=1e-9,
                                    max_iterations=1000)
    assert result.value == pytest.approx(expected, rel=1e-3)


def test_two_epoch_run_with_both_probes(tmp_path: Path) -> None:
    from largebatch.train.config import load_experiment
    from largebatch.train.runner import train

    config = load_experiment(EXPERIMENTS / "mnist1d_cnn.yaml", [
        "data.options.num_samples=1000", "model.options.channels=8", "budget={epochs: 2}", "batch_size=64",
        "max_micro_batch=16", f"tracking.runs_root={tmp_path}", "tracking.wandb.mode=disabled"])
    noise, sharp = NoiseScaleMonitor(every_n_steps=5), SharpnessProbe(batch_size=256)
    result = train(config, callbacks=[noise, sharp])
    assert result.status == "completed"
    assert noise.history and all(r["noise_scale/b_simple"] == r["noise_scale/b_simple"] for r in noise.history)
    assert sharp.history[-1]["sharpness/lambda_max"] > 0
    final = result.summary["final"]
    assert "noise_scale/b_simple" in final and "sharpness/lambda_max" in final


def test_sharpness_is_not_probed_after_divergence(tmp_path: Path) -> None:
    from largebatch.train.config import load_experiment
    from largebatch.train.runner import train

    config = load_experiment(EXPERIMENTS / "mnist1d_cnn.yaml", [
        "data.options.num_samples=1000", "model.options.channels=8", "budget={epochs: 2}", "batch_size=64",
        "optimizer.name=sgd", "optimizer.options={}", "optimizer.lr=1.0e+4", "lr_scaling.rule=none", f"tracking.runs_root={tmp_path}",
        "tracking.wandb.mode=disabled", "probes.sharpness.enabled=true"])
    result = train(config)
    assert result.status == "diverged"
    assert "sharpness/lambda_max" not in result.summary["final"]
