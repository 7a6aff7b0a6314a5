"""Sweep files without Ray: shipped sweeps, trial expansion, clear errors, resources, search spaces."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from largebatch.core.errors import ConfigError
from largebatch.sweep import SweepFolder, load_sweep
from largebatch.sweep.config import ResourcesConfig
from largebatch.sweep.resources import plan_resources
from largebatch.sweep.search import OptunaSpace
from largebatch.sweep.status import setting_keys

ROOT = Path(__file__).parents[1]
EXPERIMENT = str(ROOT / "experiments" / "mnist1d_cnn.yaml")


def write_sweep(tmp_path: Path, **keys) -> Path:
    data = {"name": "t", "experiment": EXPERIMENT, "budget": {"epochs": 1}, **keys}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize(("name", "cells"), [("quickstart", 80), ("batch_scaling", 40), ("lr_sensitivity", 56),
                                             ("critical_batch", 28)])
def test_shipped_sweeps_load_with_every_trial_checked(name: str, cells: int) -> None:
    sweep = load_sweep(ROOT / "sweeps" / f"{name}.yaml")
    assert sweep.name == name and len(sweep.cells()) == cells


def test_bundles_set_keys_together_and_trials_are_tracked_in_the_sweep(tmp_path: Path) -> None:
    bundles = [{"optimizer.name": "lars", "lr_scaling.rule": "linear"},
               {"optimizer.name": "lamb", "lr_scaling.rule": "sqrt"}]
    sweep = load_sweep(write_sweep(tmp_path, grid={"batch_size": [64, 256], "optimizer": bundles},
                                   sample={"optimizer.lr": {"distribution": "loguniform", "low": 0.01, "high": 1}},
                                   overrides=["optimizer.options={}"]))
    cells = sweep.cells()
    assert len(cells) == 4
    assert cells[0] == {"batch_size": 64, "optimizer": "{optimizer.name: lars, lr_scaling.rule: linear}"}
    config = sweep.experiment_for({**cells[3], "optimizer.lr": 0.5}, tmp_path / "runs" / "abc")
    chosen = (config.batch_size, config.optimizer.name, config.lr_scaling.rule, config.optimizer.lr)
    assert chosen == (256, "lamb", "sqrt", 0.5)
    assert config.tracking.runs_root == str(tmp_path / "runs") and config.tracking.wandb.group == "t"
    assert config.budget.epochs == 1 and config.optimizer.options == {}
    assert setting_keys(sweep) == ["batch_size", "optimizer.name", "lr_scaling.rule", "optimizer.lr"]


def test_stored_sweep_is_self_contained(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, grid={"seed": [0, 1]}), name="renamed")
    folder = SweepFolder.of(tmp_path / "runs", sweep.name)
    folder.write_sweep(sweep)
    stored = folder.read_sweep()
    assert stored.name == "renamed" and stored.experiment["name"] == "mnist1d_cnn"
    assert stored.resolved() == sweep.resolved() and stored.cells() == sweep.cells()


@pytest.mark.parametrize(("keys", "expected"), [
    ({"grdi": {}}, ["unknown key 'grdi'", "allowed keys here:", "grid", "sample"]),
    ({"grid": {"optimizer.nme": ["sgd"]}},
     ["grid[optimizer.nme] = sgd", "unknown key 'optimizer.nme'", "allowed keys here:"]),
    ({"sample": {"optimizer.lr": {"distribution": "normal", "low": 0, "high": 1}}},
     ["key 'sample[optimizer.lr]'", "must be one of loguniform, uniform, int, choice", "'normal'"]),
    ({"sample": {"optimizer.lr": {"distribution": "loguniform", "low": 0.1, "high": 1, "q": 2}}},
     ["unknown key 'sample[optimizer.lr].q'", "allowed keys here: distribution, high, low"]),
    ({"sample": {"optimizer.lr": {"distribution": "uniform", "low": 1, "high": 0.1}}},
     ["key 'sample[optimizer.lr]'", "low must be below high"]),
    ({"sample": {"optimizer.lr": {"distribution": "loguniform", "low": 0, "high": 1}}},
     ["key 'sample[optimizer.lr].low'", "greater than 0"]),
    ({"sample": {"optimizer.lr": {"distribution": "uniform", "low": -1, "high": 1}}},
     ["sample[optimizer.lr] = -1", "key 'optimizer.lr'", "greater than 0"]),
    ({"grid": {"batch_size": [32]}, "sample": {"batch_size": {"distribution": "int", "low": 8, "high": 64}}},
     ["key 'sample[batch_size]' is also set by the grid"]),
    ({"grid": {"x": [{"batch_size": 32}, 64]}}, ["key 'grid[x]'", "bundle"]),
    ({"resources": {"gpu": "many"}}, ["key 'resources.gpu'", "'auto' or a number"]),
    ({"metric": "val/accuracy"}, ["key 'metric'", "'val/acc'"]),
    ({"budget": {"steps": 10}, "scheduler": {"name": "asha"}}, ["key 'scheduler.max_t' is needed"]),
    ({"storage": "sqlite:///x.db", "search": {"algorithm": "random"}}, ["key 'storage'", "optuna only"]),
])
def test_invalid_sweeps_name_file_key_and_allowed_values(tmp_path: Path, keys: dict, expected: list[str]) -> None:
    path = write_sweep(tmp_path, **keys)
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    message = str(caught.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_gpu_auto_follows_the_cluster_and_impossible_requests_fail_early() -> None:
    cpu_only = {"CPU": 4.0}
    assert plan_resources(ResourcesConfig(), 1, cpu_only, "s").gpu == 0
    assert plan_resources(ResourcesConfig(), 1, {"CPU": 8.0, "GPU": 2.0}, "s").gpu == 1
    assert plan_resources(ResourcesConfig(cpu=1), 2, cpu_only, "s").fit == 2
    assert plan_resources(ResourcesConfig(cpu=0.5, gpu=0.5), 1, {"CPU": 8.0, "GPU": 2.0}, "s").fit == 4
    with pytest.raises(ConfigError, match="resources.gpu.*never start"):
        plan_resources(ResourcesConfig(gpu=1), 1, cpu_only, "s")
    with pytest.raises(ConfigError, match="resources.cpu.*3 workers"):
        plan_resources(ResourcesConfig(cpu=2), 3, cpu_only, "s")


def test_optuna_space_keeps_enqueued_grid_cells_and_samples_the_rest(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(
        tmp_path, grid={"batch_size": [32, 128], "optimizer.options": [{"optimizer.options": {"momentum": 0.5}}]},
        sample={"optimizer.lr": {"distribution": "loguniform", "low": 0.001, "high": 1},
                "seed": {"distribution": "int", "low": 0, "high": 3},
                "optimizer.name": {"distribution": "choice", "values": ["sgd", "adamw"]}},
    ))
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    for cell in sweep.cells() * 2:
        study.enqueue_trial(cell)
    space = OptunaSpace(sweep)
    seen = []
    for _ in range(4):
        trial = study.ask()
        space(trial)
        seen.append(trial.params["batch_size"])
        config = sweep.experiment_for(trial.params)
        assert 0.001 <= config.optimizer.lr <= 1 and 0 <= config.seed <= 3
        assert config.optimizer.options == {"momentum": 0.5}
        study.tell(trial, config.optimizer.lr)
    assert seen == [32, 128, 32, 128]
