"""Progress lines for output that is not a terminal: ProgressLog for a training run, TrialLog's summary for sweeps."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from largebatch.sweep import SweepFolder, load_sweep
from largebatch.sweep.progress import TrialLog
from largebatch.train.callbacks import ProgressLog

ROOT = Path(__file__).parents[1]


class Plain(pl.LightningModule):
    """A LightningModule that knows nothing of this project."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(3, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_progress_log_writes_step_loss_and_rate_in_a_plain_lightning_project() -> None:
    lines: list[str] = []
    data = DataLoader(TensorDataset(torch.randn(64, 3), torch.randn(64, 1)), batch_size=8)
    trainer = pl.Trainer(accelerator="cpu", max_steps=6, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[ProgressLog(every_s=1e-9, samples_per_step=8, write=lines.append)])
    trainer.fit(Plain(), data)
    assert len(lines) == 7  # one per step (period ~0) and one at the end
    assert re.fullmatch(r"step 1/6 \(17%\)  epoch 0  loss [\d.e-]+  [\d,]+ samples/s  elapsed 0:00:0\d", lines[0])
    assert lines[-1].startswith("step 6/6 (100%)  epoch ")


def test_progress_log_is_quiet_between_periods() -> None:
    lines: list[str] = []
    data = DataLoader(TensorDataset(torch.randn(64, 3), torch.randn(64, 1)), batch_size=8)
    trainer = pl.Trainer(accelerator="cpu", max_steps=6, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[ProgressLog(every_s=3600, write=lines.append)])
    trainer.fit(Plain(), data)
    assert len(lines) == 1 and "samples/s" not in lines[0]  # only the end-of-training line


@pytest.mark.slow
def test_cli_train_with_piped_stdout_prints_progress_before_the_end(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "largebatch", "train", str(ROOT / "experiments" / "mnist1d_cnn.yaml"), "--set",
           "data.options.num_samples=600", "model.options.channels=4", "budget={epochs: 2}", "optimizer.name=sgd",
           "optimizer.options={}", "optimizer.lr=0.05",
           "logging.progress_every_s=0.001", "tracking.wandb.mode=disabled", "--runs-root", str(tmp_path)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    progress = [i for i, line in enumerate(lines) if re.match(r"step \d+/6 \(\d+%\)  epoch \d  ", line)]
    done = next(i for i, line in enumerate(lines) if "completed in" in line)
    assert len(progress) >= 2 and max(progress) < done
    assert any("samples/s" in lines[i] and "loss" in lines[i] for i in progress)


def test_sweep_trial_log_prints_a_summary_line_when_not_live(tmp_path: Path, capsys) -> None:
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump({"name": "t", "experiment": str(ROOT / "experiments" / "mnist1d_cnn.yaml"),
                                          "budget": {"epochs": 1}, "grid": {"batch_size": [64, 128, 256]}}))
    sweep = load_sweep(sweep_file)
    folder = SweepFolder.of(tmp_path / "runs", "t")
    folder.write_sweep(sweep)
    log = TrialLog(sweep, folder, live=False, log_every_s=0.0, expected=3)
    log.setup()
    trials = [SimpleNamespace(trial_id=f"t{i}", config={"batch_size": b, "run_id": f"t{i}"}, num_failures=0,
                              last_result={})
              for i, b in enumerate((64, 128, 256))]
    log.on_trial_start(0, trials, trials[0])
    log.on_trial_start(0, trials, trials[1])
    log.on_trial_result(0, trials, trials[0], {"epochs": 1, sweep.config.metric: 0.5})
    trials[0].last_result = {"status": "completed"}
    log.on_trial_complete(0, trials, trials[0])
    log.on_trial_result(0, trials, trials[1], {"epochs": 1, sweep.config.metric: 0.75})
    trials[1].last_result = {"status": "diverged"}
    log.on_trial_complete(0, trials, trials[1])
    log.on_trial_start(0, trials, trials[2])
    log.on_trial_error(0, trials, trials[2])
    log.on_experiment_end(trials)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "sweep t: 0/3 finished, 1 running, 0 failed"
    assert lines[-1] == ("sweep t: 2/3 finished (1 completed, 1 diverged), 0 running, 1 failed; "
                         f"best {sweep.config.metric} 0.75 (trial t1: batch_size=128)")
    assert "\x1b[" not in "".join(lines)  # no terminal redraws in a log


def test_sweep_trial_log_waits_for_its_period(tmp_path: Path, capsys) -> None:
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump({"name": "t", "experiment": str(ROOT / "experiments" / "mnist1d_cnn.yaml"),
                                          "budget": {"epochs": 1}}))
    sweep, folder = load_sweep(sweep_file), SweepFolder.of(tmp_path / "runs", "t")
    folder.write_sweep(sweep)
    log = TrialLog(sweep, folder, live=False, log_every_s=3600)
    log.setup()
    trial = SimpleNamespace(trial_id="a", config={"run_id": "a"}, num_failures=0, last_result={})
    log.on_trial_start(0, [trial], trial)
    assert capsys.readouterr().out == ""
    log.on_experiment_end([trial])
    assert capsys.readouterr().out.startswith("sweep t: 0 finished, 1 running")
