"""A run that ends at chance accuracy says so, with the numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from largebatch.train.chance import at_chance_warning, chance_threshold
from largebatch.train.config import load_experiment
from largebatch.train.runner import train

EXPERIMENTS = Path(__file__).parents[1] / "experiments"


def test_threshold_is_a_tenth_of_the_way_from_chance_to_perfect() -> None:
    assert chance_threshold(10) == pytest.approx(0.19) and chance_threshold(2) == pytest.approx(0.55)


def test_warning_names_split_accuracy_chance_and_setting() -> None:
    warning = at_chance_warning({"val_acc": 0.2, "test_acc": 0.159}, 10, "lars at peak lr 0.08")
    assert warning == ("test accuracy 0.159 is at chance level (1/10 = 0.100; clearly above it from 0.190): the run "
                       "did not learn; check optimizer.lr and lr_scaling (lars at peak lr 0.08)")
    assert at_chance_warning({"val_acc": 0.15}, 10).startswith("val accuracy 0.150 is at chance level")
    assert at_chance_warning({"test_acc": 0.91}, 10) is None
    assert at_chance_warning({"test_acc": 0.1}, None) is None and at_chance_warning({}, 10) is None


def test_run_that_does_not_learn_returns_the_warning(tmp_path: Path) -> None:
    config = load_experiment(EXPERIMENTS / "mnist1d_cnn.yaml", [
        "data.options.num_samples=400", "model.options.channels=4", "budget={epochs: 1}", "optimizer.name=sgd",
        "optimizer.options={}", "optimizer.lr=1.0e-9", f"tracking.runs_root={tmp_path}", "tracking.wandb.mode=disabled"])
    result = train(config)
    assert result.status == "completed" and len(result.warnings) == 1
    assert result.warnings[0].startswith(f"test accuracy {result.summary['eval']['test_acc']:.3f} is at chance level")
    assert "(sgd at peak lr 1e-09, batch 128)" in result.warnings[0]
