"""Batch-size schedules: config errors, the per-step assignment, the data of each step, runs, logs and resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from test_train_runs import InterruptAt

from largebatch.core.errors import ConfigError
from largebatch.data import TensorBatches
from largebatch.sweep import load_sweep
from largebatch.train.batch_schedule import BatchSchedule, build_batch_schedule, gain_ratio
from largebatch.train.config import load_experiment
from largebatch.train.plan import plan_batches
from largebatch.train.runner import train
from largebatch.train.scheduled_data import ScheduledBatches

ROOT = Path(__file__).parents[1]
EXPERIMENT = ROOT / "experiments" / "mnist1d_cnn.yaml"
SMALL = ["data.options.num_samples=1000", "model.options.channels=8", "batch_size=32", "max_micro_batch=32",
         "tracking.wandb.mode=disabled", "logging.every_n_steps=5", "logging.telemetry_every_n_steps=5"]


def config(*overrides: str):
    return load_experiment(EXPERIMENT, [*SMALL, *overrides])


def schedule(*overrides: str, train_samples: int = 640, devices: int = 1) -> BatchSchedule:
    c = config(*overrides)
    built = build_batch_schedule(c, plan_batches(c, train_samples, devices))
    assert built is not None
    return built


@pytest.mark.parametrize(("value", "expected"), [
    ("steps", "kind 'steps' needs exactly one of epochs, steps, samples"),
    ("{kind: steps, epochs: [1], every_n_steps: 3}", "every_n_steps not a key of kind 'steps'; its keys: kind, factor"),
    ("{kind: adaptive}", "kind 'adaptive' needs max_batch"),
    ("linear", "key 'batch_schedule.kind': Input should be 'fixed', 'steps' or 'adaptive'"),
    ("{kind: steps, steps: [5], factor: 1}", "key 'batch_schedule.factor': Input should be greater than 1"),
    ("{kind: adaptive, min_batch: 64, max_batch: 32}", "min_batch 64 exceeds max_batch 32"),
])
def test_bad_schedules_are_one_clear_line(value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(f"batch_schedule={value}")
    assert expected in str(err.value) and str(EXPERIMENT) in str(err.value) and "\n" not in str(err.value)


def test_a_saved_resolved_config_validates_again() -> None:
    from largebatch.train.config import validate

    for kind in ("fixed", "{kind: steps, epochs: [1]}", "{kind: adaptive, max_batch: 256}"):
        saved = config(f"batch_schedule={kind}")
        assert validate(saved.resolved()) == saved


def test_schedules_that_cannot_run_on_the_plan_fail_before_training() -> None:
    with pytest.raises(ConfigError, match="not a whole number of micro-batches"):
        schedule("batch_schedule={kind: steps, steps: [5], factor: 1.5}")
    with pytest.raises(ConfigError, match="does not fit in one epoch"):
        schedule("batch_schedule={kind: adaptive, max_batch: 1024}")
    with pytest.raises(ConfigError, match="max_batch 80 is not a multiple of micro_batch × devices = 32"):
        schedule("batch_schedule={kind: adaptive, max_batch: 80}", devices=2)
    with pytest.raises(ConfigError, match="does not clip"):
        config("batch_schedule={kind: steps, steps: [5]}", "trainer.gradient_clip_val=1")
    assert build_batch_schedule(config(), plan_batches(config(), 640)) is None  # fixed: today's path


def assign(s: BatchSchedule, epochs: list[int]) -> list[int]:
    for epoch in epochs:
        s.record(s.propose(epoch))
    return s.assigned


def test_steps_milestones_in_epochs_steps_and_samples() -> None:
    by_epoch = schedule("batch_schedule={kind: steps, epochs: [1, 2], factor: 2}")
    assert assign(by_epoch, [0, 0, 1, 1, 2]) == [1, 1, 2, 2, 4]
    by_step = schedule("batch_schedule={kind: steps, steps: [2, 3], factor: 3, max_batch: 256}")
    assert assign(by_step, [0] * 5) == [1, 1, 3, 8, 8]  # capped at max_batch
    by_samples = schedule("batch_schedule={kind: steps, samples: [64], factor: 2}")
    assert assign(by_samples, [0] * 4) == [1, 1, 2, 2]
    assert by_samples.samples_through(4) == 32 + 32 + 64 + 64


def test_sample_budget_is_exact_to_the_micro_batch() -> None:
    s = schedule("batch_schedule={kind: steps, steps: [1], factor: 4}", "budget={samples: 300}")
    assert assign(s, [0] * 4) == [1, 4, 4, 1]  # 32 + 128 + 128 = 288: the last step needs 12 → 1 micro-batch
    assert s.budget_reached(4) and not s.budget_reached(3) and s.propose(0) == 0
    assert 0 <= s.samples_through(4) - 300 < 32
    epochs = schedule("batch_schedule={kind: steps, steps: [1], factor: 2}", "budget={epochs: 1}")
    assert epochs.budget_samples == 640


def test_adaptive_decisions_clip_round_and_do_not_shrink_unless_asked() -> None:
    s = schedule("batch_schedule={kind: adaptive, max_batch: 256, scale: 2, max_growth: 8}")
    assert s.decide(100.0, 20) == 6  # 2 · 100 / 32 = 6.25 → 6 micro-batches
    assert s.decide(1e6, 20) == 8  # max_batch 256
    assert s.decide(10.0, 20) == 8  # never shrinks
    assert s.decide(float("nan"), 20) == 8 and s.decide(-5.0, 20) == 8  # |G|² unresolved: no change
    shrinking = schedule("batch_schedule={kind: adaptive, min_batch: 64, max_batch: 256, shrink: true, max_growth: 8}")
    assert shrinking.decide(1e6, 20) == 8 and shrinking.decide(1.0, 20) == 2  # down to min_batch


def test_adaptive_waits_for_enough_estimates_and_grows_by_at_most_max_growth() -> None:
    """An early B̂ rests on a few noisy measurements; a batch that never shrinks would keep its overshoot."""
    s = schedule("batch_schedule={kind: adaptive, max_batch: 512, min_estimates: 5}")  # max_growth 2 by default
    assert s.decide(400.0, 4) == 1  # 4 measurements: too few, the batch stays at 32
    assert [s.decide(400.0, 5 + i) for i in range(4)] == [2, 4, 8, 12]  # ×2 per decision up to 400/32 → 12
    slow = schedule("batch_schedule={kind: adaptive, max_batch: 512, max_growth: 1.2}")
    assert [slow.decide(400.0, 20) for _ in range(3)] == [2, 3, 4]  # at least one micro-batch more each time


def test_lr_follows_the_rule_holds_or_takes_adascales_gain() -> None:
    rules = ["lr_scaling={rule: linear, reference_batch_size: 32}", "schedule={decay: constant}"]
    scaled = schedule("batch_schedule={kind: steps, steps: [1], factor: 4}", *rules)
    held = schedule("batch_schedule={kind: steps, steps: [1], factor: 4, lr: hold}", *rules)
    for s in (scaled, held):
        assign(s, [0, 0])
    assert (scaled.lr_factor(1), scaled.lr_factor(2)) == (1.0, 4.0)
    assert (held.lr_factor(1), held.lr_factor(2)) == (1.0, 1.0)
    ada = schedule("batch_schedule={kind: steps, steps: [1], factor: 4, lr: adascale}", *rules)
    assign(ada, [0, 0])
    assert ada.lr_factor(2) == 1.0  # no estimate yet
    ada.noise = (1.0, 64.0)  # B_simple = 64: r = (64/32 + 1)/(64/128 + 1) = 2
    assert ada.lr_factor(2) == pytest.approx(2.0)


def test_gain_ratio_limits() -> None:
    assert gain_ratio(1.0, 50.0, 32, 32) == 1.0
    assert gain_ratio(0.0, 50.0, 256, 32) == pytest.approx(8.0)  # noise dominates: linear scaling
    assert gain_ratio(1.0, 0.0, 256, 32) == 1.0  # no noise: larger batches buy nothing
    assert gain_ratio(-1.0, -1.0, 256, 32) == 1.0


def test_warmup_and_decay_progress_in_samples() -> None:
    s = schedule("batch_schedule={kind: steps, steps: [2], factor: 4}", "schedule={warmup_steps: 4, decay: constant}",
                 "lr_scaling.rule=none")
    assign(s, [0, 0, 0, 0])
    # samples before steps 1..4: 0, 32, 64, 192 → base-batch steps 0, 1, 2, 6 of a 4-step warmup
    assert [s.lr_factor(n) for n in (1, 2, 3, 4)] == [0.0, 0.25, 0.5, 1.0]


def test_each_step_gets_its_batch_and_an_epoch_ends_when_the_next_step_does_not_fit() -> None:
    s = schedule("batch_schedule={kind: steps, steps: [3], factor: 4}", "budget={epochs: 100}")
    rows = torch.arange(640)
    data = ScheduledBatches(TensorBatches((rows,), 32, seed=0), s, lambda: 0, lambda: 0)
    sizes = [len(b[0]) for b in data]
    assert sizes == [32, 32, 32] + [128] * 4  # 96 + 512 = 608; the next 128 would pass 640
    seen = torch.cat([b[0] for b in ScheduledBatches(TensorBatches((rows,), 32, seed=0), s, lambda: 1, lambda: 7)])
    assert len(seen) == 640 - 640 % 128 and len(seen.unique()) == len(seen)  # disjoint within an epoch
    assert s.steps_assigned == 7 + 5


def test_state_keeps_the_steps_that_ran() -> None:
    s = schedule("batch_schedule={kind: adaptive, max_batch: 256, max_growth: 8}")
    assign(s, [0, 0])
    s.decide(200.0, 20)
    assign(s, [0])
    restored = schedule("batch_schedule={kind: adaptive, max_batch: 256, max_growth: 8}")
    restored.load_state_dict(s.state_dict(steps_done=2))  # step 3 was prepared ahead but never ran
    assert restored.assigned == [1, 1] and restored.samples_through(2) == 64 and restored.propose(0) == 6


def per_step(run: Path, names: tuple[str, ...] = ("batch/size", "batch/accumulate", "batch/lr")) -> pd.DataFrame:
    from largebatch.records.store import current_rows

    metrics = current_rows(pd.read_csv(run / "metrics.csv"), "name")
    return metrics[metrics["name"].isin(names)].pivot_table(index="step", columns="name", values="value")


def test_steps_schedule_run_logs_every_step_and_mirrors_to_wandb(tmp_path: Path) -> None:
    result = train(config("budget={epochs: 3}", "batch_schedule={kind: steps, epochs: [1, 2], factor: 2}",
                          "tracking.wandb.mode=offline", f"tracking.runs_root={tmp_path}"))
    assert result.status == "completed" and result.summary["steps"] == 20 + 10 + 5
    table = per_step(result.run_dir, ("batch/size", "batch/accumulate", "batch/samples", "train/loss"))
    assert list(table.index) == list(range(1, 36))  # every optimizer step, train/loss on the same steps
    assert list(table["batch/size"]) == [32.0] * 20 + [64.0] * 10 + [128.0] * 5
    assert (table["batch/accumulate"] * 32 == table["batch/size"]).all()
    assert table["batch/samples"].iloc[-1] == 3 * 640 == table["batch/size"].sum()
    from largebatch.train.wandb_mirror import read_offline_history

    (mirror,) = (result.run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    history = read_offline_history(mirror)
    assert history["batch/size"][-1] == 128 and len(history["batch/lr"]) == 35
    from largebatch.analysis import load_results
    from largebatch.dashboard.build import build

    samples = load_results(result.run_dir).history.query("metric == 'val/acc'")["samples"]
    # from batch/samples, not step × batch_size; validation at each epoch's end (step N = N updates done)
    assert list(samples) == [32 * 20, 640 + 64 * 10, 1280 + 128 * 5]
    built = build([result.run_dir], [ROOT / "dashboards" / "schedules" / "batch_schedules.yaml"], tmp_path / "dash", images=False)
    plotted = pd.read_csv(tmp_path / "dash" / "data" / "batch_schedules-batch.csv")
    assert built.index.is_file() and set(plotted["metric"]) == {"batch/size", "batch/lr"} and len(plotted) == 2 * 35
    race = pd.read_csv(tmp_path / "dash" / "data" / "batch_schedules-race_to_target.csv")
    assert list(race[["series", "n_runs"]].itertuples(index=False, name=None)) == [("lamb", 1)]  # one series: its last key


ADAPTIVE = ["budget={epochs: 4}",
            "batch_schedule={kind: adaptive, every_n_steps: 4, max_batch: 160, shrink: true, min_estimates: 4}",
            "probes.noise_scale={ema: 0.5, probe_every_n_steps: 1}", "schedule={warmup_steps: 5}"]


def test_adaptive_run_resumed_from_a_checkpoint_repeats_the_uninterrupted_batches(tmp_path: Path) -> None:
    whole = train(config(*ADAPTIVE, f"tracking.runs_root={tmp_path / 'whole'}"))
    assert whole.status == "completed"
    expected = per_step(whole.run_dir)
    assert expected["batch/size"].nunique() > 2  # the batch did change, before and after the interruption
    interrupted = config(*ADAPTIVE, f"tracking.runs_root={tmp_path / 'cut'}")
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):
            train(interrupted, callbacks=[InterruptAt(25)])  # the checkpoint is at the end of epoch 1
    finally:
        signal.signal(signal.SIGINT, handler)
    (run,) = (tmp_path / "cut").iterdir()
    resumed = train(interrupted, run_dir=run, resume=True)
    assert resumed.status == "completed" and resumed.summary["steps"] == whole.summary["steps"]
    pd.testing.assert_frame_equal(per_step(run), expected)
    samples = per_step(run, ("batch/samples",))["batch/samples"]
    assert samples.iloc[-1] == 4 * 640  # the epoch budget in samples, exactly


def test_sweep_grid_axis_takes_schedules(tmp_path: Path) -> None:
    data = {"name": "t", "experiment": str(EXPERIMENT), "budget": {"epochs": 1},
            "grid": {"schedule": [{"batch_schedule": "fixed"},  # a bundle axis: a schedule is a mapping itself
                                  {"batch_schedule": {"kind": "steps", "epochs": [1], "factor": 2}}]}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    sweep = load_sweep(path)
    kinds = [sweep.experiment_for(cell, tmp_path / "runs" / "x").batch_schedule.kind for cell in sweep.cells()]
    assert kinds == ["fixed", "steps"]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_follows_the_schedule(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "largebatch", "train", str(EXPERIMENT), "--set", *SMALL, "max_micro_batch=16",
           "budget={epochs: 2}", "batch_schedule={kind: steps, epochs: [1], factor: 2}", "trainer.accelerator=cpu",
           "trainer.devices=2", "trainer.strategy=ddp", "--runs-root", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["plan"]["devices"] == 2
    table = per_step(run)
    # 640 samples: 20 steps of 32 (16 per rank), then 10 of 64 (2 micro-batches of 16 per rank)
    assert list(table["batch/size"]) == [32.0] * 20 + [64.0] * 10
    assert list(table["batch/accumulate"]) == [1.0] * 20 + [2.0] * 10
