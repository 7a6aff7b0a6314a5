"""Every precision the schema accepts trains through an epoch end (generalization gap) and the final evaluation."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import torch

from largebatch.core.errors import ConfigError
from largebatch.train.config import TrainerConfig, load_experiment
from largebatch.train.runner import train

EXPERIMENTS = Path(__file__).parents[1] / "experiments"
PRECISIONS = typing.get_args(TrainerConfig.model_fields["precision"].annotation)
GPU_ONLY = {"16-mixed": "fp16 autocast does not run on the CPU"}


def tiny(tmp_path: Path, precision: str, accelerator: str = "cpu"):
    return load_experiment(EXPERIMENTS / "mnist1d_cnn.yaml", [
        "data.options.num_samples=400", "model.options.channels=4", "batch_size=64", "budget={epochs: 2}",
        "schedule.warmup_epochs=0", f"trainer.precision={precision}", f"trainer.accelerator={accelerator}",
        f"tracking.runs_root={tmp_path}", "tracking.wandb.mode=disabled"])


@pytest.mark.parametrize("precision", [p for p in PRECISIONS if p not in GPU_ONLY])
def test_every_cpu_precision_trains_through_gap_and_final_evaluation(precision: str, tmp_path: Path) -> None:
    result = train(tiny(tmp_path, precision))
    assert result.status == "completed" and result.summary["epochs"] == 2
    final = result.summary["eval"]
    assert {"train_acc", "val_acc", "test_acc", "gen_gap"} <= set(final)
    assert all(0 <= final[f"{split}_acc"] <= 1 for split in ("train", "val", "test"))


@pytest.mark.parametrize("precision", sorted(GPU_ONLY))
def test_gpu_only_precision_is_refused_on_cpu_with_one_line(precision: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"trainer.precision: '{precision}' needs a CUDA GPU") as err:
        train(tiny(tmp_path, precision))
    assert "\n" not in str(err.value)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_precision_trains_on_gpu(precision: str, tmp_path: Path) -> None:
    assert torch.cuda.is_available()
    result = train(tiny(tmp_path, precision, accelerator="gpu"))
    assert result.status == "completed" and "test_acc" in result.summary["eval"]
