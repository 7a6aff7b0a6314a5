"""Small trials sharing a GPU (``resources.pack``): the file key, the plan, the probe's arithmetic, and Ray's
fractional-GPU scheduling on a cluster that only claims a GPU (no CUDA needed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from largebatch.sweep import load_sweep
from largebatch.sweep.config import ResourcesConfig
from largebatch.sweep.packing import (
    CONTEXT_BYTES, MAX_TRIALS_PER_GPU, largest_trial, measure_peak_memory, trials_per_gpu,
)
from largebatch.core.errors import ConfigError
from largebatch.sweep.resources import plan_resources

ROOT = Path(__file__).parents[1]
EXPERIMENT = str(ROOT / "experiments" / "mnist1d_cnn.yaml")
ONE_GPU = {"CPU": 16.0, "GPU": 1.0}
GIB = 2**30


def write_sweep(tmp_path: Path, **keys) -> Path:
    data = {"name": "t", "experiment": EXPERIMENT, "budget": {"epochs": 1}, **keys}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("value", [0, -2, "many", 1.5])
def test_pack_key_names_the_allowed_values(tmp_path: Path, value: object) -> None:
    path = write_sweep(tmp_path, resources={"pack": value})
    with pytest.raises(ConfigError, match=r"resources\.pack.*true.*whole number >= 1"):
        load_sweep(path)


def test_stated_pack_gives_each_trial_a_share_of_a_gpu() -> None:
    plan = plan_resources(ResourcesConfig(pack=4), 1, ONE_GPU, "s")
    assert (plan.gpu, plan.per_gpu, plan.fit) == (0.25, 4, 4)
    assert plan.tune_request() == {"cpu": 1.0, "gpu": 0.25}
    assert "4 trials per GPU" in plan.describe(ONE_GPU)
    three = plan_resources(ResourcesConfig(pack=3), 1, {"CPU": 16.0, "GPU": 2.0}, "s")
    assert three.gpu == 0.3333 and three.fit == 6  # Ray's 4 decimals, rounded down so that 3 fit per GPU
    assert plan_resources(ResourcesConfig(cpu=2, pack=8), 1, {"CPU": 6.0, "GPU": 1.0}, "s").fit == 3  # CPU-bound


def test_pack_does_nothing_without_gpus_and_rejects_what_it_cannot_mean() -> None:
    assert plan_resources(ResourcesConfig(pack=True), 1, {"CPU": 4.0}, "s").gpu == 0  # no probe needed either
    with pytest.raises(ConfigError, match="resources.pack.*not both"):
        plan_resources(ResourcesConfig(gpu=0.5, pack=2), 1, ONE_GPU, "s")
    with pytest.raises(ConfigError, match="resources.pack.*devices_per_trial is 2"):
        plan_resources(ResourcesConfig(pack=2), 2, {"CPU": 16.0, "GPU": 2.0}, "s")
    with pytest.raises(ConfigError, match="resources.pack.*pack: N"):
        plan_resources(ResourcesConfig(pack=True), 1, ONE_GPU, "s")


def test_measured_pack_uses_the_probe() -> None:
    plan = plan_resources(ResourcesConfig(pack=True), 1, ONE_GPU, "s", probe=lambda: 5)
    assert (plan.per_gpu, plan.gpu, plan.fit) == (5, 0.2, 5)


def test_trials_per_gpu_from_memory() -> None:
    assert trials_per_gpu(100 * 2**20, 80 * GIB) == MAX_TRIALS_PER_GPU  # a tiny model: capped
    assert trials_per_gpu(8 * GIB, 80 * GIB) == 6  # 0.9·80 / (8·1.25 + 0.59) = 6.8
    assert trials_per_gpu(70 * GIB, 80 * GIB) == 1  # never fewer than one
    assert trials_per_gpu(0, 10 * CONTEXT_BYTES) == 9  # the CUDA context alone counts


def test_the_probe_measures_the_largest_micro_batch_of_the_grid(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, grid={"batch_size": [64, 1024, 256], "seed": [0, 1]}))
    assert largest_trial(sweep).batch_size == 1024
    capped = load_sweep(write_sweep(tmp_path, grid={"batch_size": [64, 1024]}, overrides=["max_micro_batch=128"]))
    assert largest_trial(capped).max_micro_batch == 128


def test_the_probe_needs_a_gpu_and_says_what_to_write_instead(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: test_gpu measures with it")
    sweep = load_sweep(write_sweep(tmp_path, grid={"batch_size": [64]}))
    with pytest.raises(ConfigError, match=r"no CUDA device.*pack: N"):
        measure_peak_memory(largest_trial(sweep))


@pytest.mark.slow
def test_ray_runs_packed_trials_side_by_side_on_a_claimed_gpu(start_ray: Callable[..., Any]) -> None:
    """A cluster that claims one GPU (none is there): 4 trials of a quarter GPU run at once, none fails."""
    import ray

    def _trial_window(seconds: float) -> tuple[float, float, bool, str]:
        """A trial stand-in: when it ran, and which device the trainer would pick (CUDA only if really there)."""
        import torch

        from largebatch.train.config import load_experiment
        from largebatch.train.runner import device_count

        start = time.time()
        time.sleep(seconds)
        config = load_experiment(Path(experiment), [])
        return start, time.time(), torch.cuda.is_available(), f"{device_count(config)}"

    experiment = EXPERIMENT  # captured by value: Ray ships the nested function to its workers
    plan = plan_resources(ResourcesConfig(cpu=0.5, pack=4), 1, {"CPU": 2.0, "GPU": 1.0}, "s")
    assert plan.fit == 4
    with start_ray(num_cpus=2, num_gpus=1):
        request = plan.tune_request()
        task = ray.remote(num_cpus=request["cpu"], num_gpus=request["gpu"])(_trial_window)
        windows = ray.get([task.remote(3.0) for _ in range(4)])
    latest_start, earliest_end = max(w[0] for w in windows), min(w[1] for w in windows)
    assert latest_start < earliest_end  # all four overlapped
    assert all(not cuda and devices == "1" for _, _, cuda, devices in windows)  # the trainer falls back to CPU
