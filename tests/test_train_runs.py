"""End-to-end training runs: every workload, tracking files, W&B offline mirror, divergence, resume, CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import pytest
import yaml

from largebatch.train.config import load_experiment
from largebatch.train.runner import train

EXPERIMENTS = Path(__file__).parents[1] / "experiments"
SMALL = {
    "mnist1d_cnn": ["data.options.num_samples=800", "model.options.channels=8"],
    "digits_cnn_bn": ["model.options.width=0.25"],
    "text_mlm_tiny": ["data.options.seq_len=32", "model.options.d_model=16", "model.options.layers=1"],
}


def small_config(name: str, tmp_path: Path, *extra: str, wandb: str = "disabled"):
    overrides = [*SMALL[name], "budget={epochs: 2}", f"tracking.runs_root={tmp_path}",
                 f"tracking.wandb.mode={wandb}", "logging.telemetry_every_n_steps=2", "logging.every_n_steps=2",
                 *extra]
    return load_experiment(EXPERIMENTS / f"{name}.yaml", overrides)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_two_epoch_run_per_workload(name: str, tmp_path: Path) -> None:
    result = train(small_config(name, tmp_path))
    assert result.status == "completed"
    run = result.run_dir
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["name"] == name and config["plan"]["total_steps"] == result.summary["steps"]
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["seed"] == 0 and "torch" in json.dumps(provenance)
    metrics = pd.read_csv(run / "metrics.csv")
    names = set(metrics["name"])
    assert {"train/loss", "val/loss", "val/acc", "gen_gap", "grad_norm/global", "trust_ratio/median"} <= names
    layers = pd.read_csv(run / "layers.csv")
    assert layers["layer"].nunique() == sum(1 for _ in result_model_params(run)) and (layers["trust_ratio"] > 0).all()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and 0 <= summary["eval"]["val_acc"] <= 1
    assert summary["eval"]["gen_gap"] == pytest.approx(summary["eval"]["train_acc"] - summary["eval"]["val_acc"])
    last = metrics[metrics["step"] == summary["steps"]].set_index("name")["value"]  # the final epoch-end gap
    for split in ("train", "val"):  # taken from it, not evaluated a second time (same model, same batches)
        assert summary["eval"][f"{split}_acc"] == last[f"gap/{split}_acc"]
    assert "test_acc" in summary["eval"]


def result_model_params(run: Path):
    from largebatch.train.config import validate
    from largebatch.train.runner import prepare

    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved.pop("plan")
    _, module, _ = prepare(validate(saved))
    return [n for n, p in module.model.named_parameters() if p.requires_grad]


def test_training_metrics_are_logged_where_lightning_writes_or_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The module hands the training loss to Lightning only on its logging cadence (written to metrics.csv, at the
    update's step), at each epoch's last batch and at the last step (read from ``callback_metrics``, e.g. by the
    sweep's epoch report): not at every step, which cost 0.6 ms a step."""
    from largebatch.records.store import current_rows
    from largebatch.train.module import LargeBatchModule

    handed: list[int] = []
    position = LargeBatchModule._log_position

    def spy(self: LargeBatchModule, step: int, **how: object) -> None:
        if how.get("on_step"):
            handed.append(step)
        position(self, step, **how)

    monkeypatch.setattr(LargeBatchModule, "_log_position", spy)
    config = small_config("mnist1d_cnn", tmp_path, "budget={steps: 23}", "batch_size=32", "max_micro_batch=32",
                          "logging.every_n_steps=7")  # 512 training samples: 16 steps an epoch
    result = train(config)
    assert handed == [7, 14, 16, 21, 23]
    metrics = current_rows(pd.read_csv(result.run_dir / "metrics.csv"), "name")
    assert sorted(metrics.loc[metrics["name"] == "train/loss", "step"]) == [7, 14, 21]


def test_learning_happens_on_digits(tmp_path: Path) -> None:
    result = train(small_config("digits_cnn_bn", tmp_path, "budget={epochs: 6}", "model.options.width=0.5"))
    assert result.summary["eval"]["val_acc"] > 0.8


def test_wandb_offline_mirror_holds_the_metrics(tmp_path: Path) -> None:
    result = train(small_config("mnist1d_cnn", tmp_path, wandb="offline"))
    files = list((result.run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    from largebatch.train.wandb_mirror import read_offline_history

    history = read_offline_history(files[0])
    assert "train/loss" in history and "trust_ratio/median" in history and len(history["train/loss"]) > 0


def test_divergence_is_a_result_not_a_crash(tmp_path: Path) -> None:
    result = train(small_config("mnist1d_cnn", tmp_path, "optimizer.name=sgd", "optimizer.lr=1.0e+6",
                                "optimizer.options={}", "schedule={}"))
    assert result.status == "diverged"
    assert result.summary["diverged_at"]["step"] >= 1
    assert json.loads((result.run_dir / "summary.json").read_text())["status"] == "diverged"


class InterruptAt(pl.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise KeyboardInterrupt


def test_interrupt_then_resume_from_checkpoint(tmp_path: Path) -> None:
    config = small_config("mnist1d_cnn", tmp_path, "budget={epochs: 3}")
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):
            train(config, callbacks=[InterruptAt(12)])
    finally:
        signal.signal(signal.SIGINT, handler)
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    assert (run / "checkpoints" / "last.ckpt").exists()
    logged_before = pd.read_csv(run / "metrics.csv")
    result = train(config, run_dir=run, resume=True)
    assert result.status == "completed" and result.summary["steps"] == config_total_steps(run)
    logged_after = pd.read_csv(run / "metrics.csv")
    assert len(logged_after) > len(logged_before)
    assert logged_after["step"].max() == result.summary["steps"]


def config_total_steps(run: Path) -> int:
    return yaml.safe_load((run / "config.yaml").read_text())["plan"]["total_steps"]


def test_cli_train_and_runs_list(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "largebatch", "train", str(EXPERIMENTS / "digits_cnn_nobn.yaml"), "--set",
           "budget={epochs: 1}", "model.options.width=0.25", "tracking.wandb.mode=disabled", "--runs-root", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "completed" in out.stdout
    listed = subprocess.run([sys.executable, "-m", "largebatch", "runs", "list", "--root", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "digits_cnn_nobn" in listed.stdout


def test_cli_bad_config_is_one_clear_error(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "largebatch", "train", str(EXPERIMENTS / "mnist1d_cnn.yaml"),
                          "--set", "optimizer.nam=lars"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "unknown key 'optimizer.nam'" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_shares_one_run(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "largebatch", "train", str(EXPERIMENTS / "digits_cnn_bn.yaml"), "--set",
           "budget={epochs: 1}", "model.options.width=0.25", "tracking.wandb.mode=disabled", "trainer.accelerator=cpu",
           "trainer.devices=2", "trainer.strategy=ddp", "max_micro_batch=16", "logging.every_n_steps=2",
           "probes.noise_scale={enabled: true, every_n_steps: 2}", "--runs-root", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    summary = json.loads((run / "summary.json").read_text())
    plan = summary["plan"]
    assert summary["status"] == "completed" and plan["devices"] == 2 and plan["accumulate"] > 1
    assert plan["micro_batch"] * plan["accumulate"] * 2 == plan["batch_size"]
    # the data-parallel estimator: the first micro-batch per device (not yet all-reduced) vs the global batch
    b_simple = pd.read_csv(run / "metrics.csv").query("name == 'noise_scale/b_simple'")["value"]
    assert len(b_simple) > 0 and b_simple.notna().all() and (b_simple.abs() < 1e6).all()
