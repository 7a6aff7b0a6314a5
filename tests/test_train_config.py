"""Experiment files: shipped files validate, overrides, clear errors, batch plans, optimizer construction."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from largebatch.core.errors import ConfigError
from largebatch.optim import LAMB, LARS
from largebatch.train.config import load_experiment, validate
from largebatch.train.optimizers import build_optimizer
from largebatch.train.plan import plan_batches, split_batch

EXPERIMENTS = Path(__file__).parents[1] / "experiments"


def minimal(**extra) -> dict:
    return {"name": "t", "data": {"name": "digits"}, "model": {"name": "mlp"}, "batch_size": 64,
            "budget": {"epochs": 1}, **extra}


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_experiments_validate(path: Path) -> None:
    config = load_experiment(path)
    assert config.name == path.stem
    assert config.resolved()["tracking"]["wandb"]["mode"] == "offline"


def test_required_experiments_are_shipped() -> None:
    names = {p.stem for p in EXPERIMENTS.glob("*.yaml")}
    assert {"mnist1d_cnn", "digits_cnn_bn", "digits_cnn_nobn", "text_mlm_tiny", "cifar10_resnet"} <= names


def test_overrides_set_nested_and_top_level_keys() -> None:
    config = load_experiment(EXPERIMENTS / "mnist1d_cnn.yaml", ["optimizer.name=lars", "batch_size=4096",
                                                                 "schedule.decay=polynomial", "optimizer.options={}"])
    assert (config.optimizer.name, config.batch_size, config.schedule.decay) == ("lars", 4096, "polynomial")


def test_unknown_key_names_file_key_and_allowed_keys() -> None:
    with pytest.raises(ConfigError) as err:
        load_experiment(EXPERIMENTS / "mnist1d_cnn.yaml", ["optimizer.momentum=0.9"])
    message = str(err.value)
    assert "mnist1d_cnn.yaml" in message and "'optimizer.momentum'" in message
    assert "allowed keys here:" in message and "weight_decay" in message


def test_wrong_type_and_range_and_enum_errors() -> None:
    with pytest.raises(ConfigError, match="'batch_size'.*greater than 0"):
        validate(minimal(batch_size=-1), "x.yaml")
    with pytest.raises(ConfigError, match="'optimizer.name'.*'lars' or 'lamb'"):
        validate(minimal(optimizer={"name": "rmsprop"}), "x.yaml")
    with pytest.raises(ConfigError, match="'seed'"):
        validate(minimal(seed="abc"), "x.yaml")
    with pytest.raises(ConfigError, match="exactly one of epochs, steps, samples"):
        validate(minimal(budget={"epochs": 1, "steps": 5}), "x.yaml")
    with pytest.raises(ConfigError, match="missing required key 'name'"):
        validate({k: v for k, v in minimal().items() if k != "name"}, "x.yaml")


def test_missing_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_experiment(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_experiment(bad)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_experiment(EXPERIMENTS / "mnist1d_cnn.yaml", ["batch_size"])


@pytest.mark.parametrize(
    ("batch", "devices", "cap", "expected"),
    [(256, 1, None, (256, 1)), (256, 1, 100, (64, 4)), (4096, 2, 512, (512, 4)), (96, 1, 40, (32, 3))],
)
def test_batch_split(batch: int, devices: int, cap: int | None, expected: tuple[int, int]) -> None:
    micro, accumulate = split_batch(batch, devices, cap)
    assert (micro, accumulate) == expected
    assert micro * accumulate * devices == batch


def test_plan_steps_lr_and_warmup() -> None:
    config = validate(minimal(batch_size=512, budget={"samples": 10_000},
                              optimizer={"name": "lamb", "lr": 0.01},
                              lr_scaling={"rule": "sqrt", "reference_batch_size": 128},
                              schedule={"warmup_epochs": 1.5}))
    plan = plan_batches(config, train_samples=4096)
    assert plan.steps_per_epoch == 8 and plan.total_steps == 20 and plan.warmup_steps == 12
    assert plan.lr == pytest.approx(0.02)


def test_plan_rejects_batch_larger_than_data() -> None:
    with pytest.raises(ConfigError, match="larger than the 100 training samples"):
        plan_batches(validate(minimal(batch_size=512)), train_samples=100)


def test_build_optimizer_from_config() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    opt = build_optimizer(validate(minimal(optimizer={"name": "lars", "weight_decay": 1e-4,
                                                      "options": {"trust_coefficient": 0.02}})).optimizer, model, 0.5)
    assert isinstance(opt, LARS) and opt.param_groups[0]["trust_coefficient"] == 0.02
    assert {g["adapt"] for g in opt.param_groups} == {True, False}
    opt = build_optimizer(validate(minimal(optimizer={"name": "lamb", "options": {"betas": [0.8, 0.9]}})).optimizer,
                          model, 0.5)
    assert isinstance(opt, LAMB) and opt.param_groups[0]["betas"] == (0.8, 0.9)
    sgd = build_optimizer(validate(minimal(optimizer={"name": "sgd"})).optimizer, model, 0.1)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9
    assert "adapt" not in sgd.param_groups[0]


def test_unknown_optimizer_option_lists_allowed() -> None:
    config = validate(minimal(optimizer={"name": "lamb", "options": {"momentum": 0.9}}))
    with pytest.raises(ConfigError, match="unknown option.*momentum.*allowed:.*betas"):
        build_optimizer(config.optimizer, nn.Linear(2, 2), 0.1)
