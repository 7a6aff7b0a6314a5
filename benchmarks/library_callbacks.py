"""Our Throughput and DivergenceGuard against what Lightning ships (ThroughputMonitor, EarlyStopping with
check_finite / divergence_threshold): time inside their hooks, and when each stops a diverging run.

Hook time: the same seeded MNIST-1D training for ``--steps`` steps with one of the callbacks, the time inside
its hooks in µs per optimizer step (median over ``--repeats`` rounds) and as a share of the median step.
Stop step: a run whose lr makes the loss NaN/inf within a few steps; the optimizer step at which each callback
stopped it (the run's budget is 4 epochs).

    python benchmarks/library_callbacks.py [--steps 150] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping, ThroughputMonitor

from largebatch.train.callbacks import DivergenceGuard, Throughput
from largebatch.train.config import load_experiment
from largebatch.train.runner import prepare

sys.path.insert(0, str(Path(__file__).parent))
from telemetry_overhead import EXPERIMENT, StepTimes, timed  # noqa: E402

CALLBACKS = {
    "Throughput (ours, every 10 steps)": lambda b: Throughput(every_n_steps=10, samples_per_step=b),
    "ThroughputMonitor (Lightning)": lambda b: ThroughputMonitor(batch_size_fn=lambda batch: len(batch[0])),
    "DivergenceGuard (ours, check every 10 steps)": lambda b: DivergenceGuard(factor=10.0, check_every_n_steps=10),
    "EarlyStopping(check_finite, divergence_threshold)": lambda b: EarlyStopping(
        monitor="train/loss", check_finite=True, divergence_threshold=23.0, patience=10**9, mode="min",
        check_on_train_epoch_end=True),
}


def fit(name: str, overrides: list[str]) -> tuple[pl.Trainer, StepTimes, float]:
    config = load_experiment(EXPERIMENT, ["tracking.wandb.mode=disabled", *overrides])
    data, module, plan = prepare(config)
    timer, clock = StepTimes(), [0.0]
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=plan.total_steps, max_epochs=-1, logger=False,
                         callbacks=[timer, timed(CALLBACKS[name](plan.batch_size), clock, 0)],
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         num_sanity_val_steps=0, log_every_n_steps=10)
    trainer.fit(module, datamodule=data)
    return trainer, timer, clock[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    hooks: dict[str, list[tuple[float, float]]] = {name: [] for name in CALLBACKS}
    for _ in range(args.repeats):
        for name in CALLBACKS:
            trainer, timer, seconds = fit(name, [f"budget={{steps: {args.steps}}}", "data.options.num_samples=20000"])
            hooks[name].append((1e6 * seconds / trainer.global_step, timer.median_ms()))
    print(f"# MNIST-1D CNN, batch 128, {args.steps} steps x {args.repeats} rounds, CPU")
    print("| callback | µs per step in its hooks | share of the median step | stops a NaN run at step |")
    print("|---|---|---|---|")
    for name in CALLBACKS:
        us = statistics.median(h for h, _ in hooks[name])
        share = statistics.median(100 * h / (1e3 * ms) for h, ms in hooks[name])
        stop = "-"
        if "Throughput" not in name:  # SGD at lr 1e4: the loss is inf/NaN after a few steps
            trainer, _, _ = fit(name, ["optimizer.name=sgd", "optimizer.options={}", "optimizer.lr=1e4",
                                       "budget={epochs: 4}", "schedule.warmup_epochs=0"])
            stop = f"{trainer.global_step} of {trainer.max_steps}"
        print(f"| {name} | {us:.1f} | {share:.2f}% | {stop} |")


if __name__ == "__main__":
    main()
