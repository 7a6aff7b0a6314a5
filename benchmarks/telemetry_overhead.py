"""Cost of largebatch's telemetry on the default MNIST-1D experiment, and of a large batch fetch.

Variants, each the same seeded training for ``--steps`` optimizer steps with the run store as logger:
  none      no monitors (only step timing)
  noop      one callback that does nothing: what Lightning's hook dispatch of one registered callback costs
  ours      TrustRatioMonitor, GradNormMonitor, GeneralizationGap, DivergenceGuard, Throughput — every step,
            registered as one CallbackGroup, as ``largebatch train`` does
  ours10    the same at the default cadence (telemetry every 10 steps)
  wandb     ``wandb.watch(model, log="all", log_freq=1)`` through an offline WandbLogger, for comparison
Step time is the median (and the mean) wall time between optimizer steps (first 5 steps dropped); the mean also
counts the steps at which held telemetry is written, and epoch ends (validation; the generalization gap's
evaluation of the training subset). Every variant is run once per round, in a rotated order, ``--repeats``
rounds; ratios are taken within a round. On a shared 2-core machine the end-to-end ratios move by several percent
from round to round, so the time spent inside the callbacks' hooks is also measured directly: "telemetry" is the
time in every hook of the group less the generalization gap's, i.e. the per-step monitors (trust ratio, gradient
norm, divergence guard, throughput) wherever they run — held blocks are written at step ends, epoch ends and the
end of training alike — in µs per optimizer step and as a share of the median step without monitors; "gap
evaluation" is the generalization gap's once-per-epoch evaluation of a training subset the size of the
validation set, amortised per step. Lightning's
dispatch of the one registered group comes on top (the noop row).

    python benchmarks/telemetry_overhead.py [--steps 150] [--repeats 3] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

from largebatch.data import TensorBatches
from largebatch.train.callbacks import (
    CallbackGroup, DivergenceGuard, GeneralizationGap, GradNormMonitor, Throughput, TrustRatioMonitor,
)
from largebatch.records.store import RunStore
from largebatch.train.callbacks.group import HOOKS
from largebatch.train.config import load_experiment
from largebatch.train.logger import RunStoreLogger
from largebatch.train.runner import prepare

EXPERIMENT = Path(__file__).parents[1] / "experiments" / "mnist1d_cnn.yaml"


class StepTimes(pl.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self._last: float | None = None

    def on_train_batch_end(self, *args) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now

    def median_ms(self) -> float:
        return statistics.median(self.times[5:]) * 1e3

    def mean_ms(self) -> float:
        """Mean over all steps: includes the blocks in which held telemetry is written (and epoch ends)."""
        return statistics.fmean(self.times[5:]) * 1e3


def timed(callback: pl.Callback, clock: list[float], slot: int) -> pl.Callback:
    """``callback`` with the time spent in all its hooks added to ``clock[slot]`` (instance attributes shadow the
    class's hooks; Lightning and ``CallbackGroup`` look hooks up on the instance)."""
    for hook in HOOKS:
        method = getattr(callback, hook)

        def wrapper(*args, _method=method, **kwargs) -> None:
            start = time.perf_counter()
            _method(*args, **kwargs)
            clock[slot] += time.perf_counter() - start

        setattr(callback, hook, wrapper)
    return callback


def run_variant(variant: str, steps: int, batch_size: int, root: Path) -> tuple[float, ...]:
    """Median and mean step ms, and µs per optimizer step spent in the per-step monitors' hooks and in the
    generalization gap's."""
    config = load_experiment(EXPERIMENT, [f"batch_size={batch_size}", f"budget={{steps: {steps}}}",
                                          "data.options.num_samples=20000", "tracking.wandb.mode=disabled"])
    data, module, plan = prepare(config)
    store = RunStore.create(root, variant)
    loggers: list = [RunStoreLogger(store)]
    timer, clock = StepTimes(), [0.0, 0.0]
    callbacks: list[pl.Callback] = [timer]
    if variant == "noop":
        callbacks.append(timed(pl.Callback(), clock, 0))
    if variant.startswith("ours"):
        every = 1 if variant == "ours" else 10
        monitors = [TrustRatioMonitor(every_n_steps=every), GradNormMonitor(every_n_steps=every), DivergenceGuard(),
                    Throughput(every_n_steps=every)]
        group = CallbackGroup([*monitors, timed(GeneralizationGap(), clock, 1)])  # the gap's own time, inside...
        callbacks.append(timed(group, clock, 0))  # ...the whole group's (one clock per hook call, little overhead)
    if variant == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        wandb_logger = WandbLogger(project="bench", save_dir=str(store.path), offline=True)
        wandb_logger.watch(module.model, log="all", log_freq=1)
        loggers.append(wandb_logger)
    trainer = pl.Trainer(accelerator="auto", devices=1, max_steps=plan.total_steps, max_epochs=-1, logger=loggers,
                         callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, num_sanity_val_steps=0, log_every_n_steps=1)
    trainer.fit(module, datamodule=data)
    store.close()
    if variant == "wandb":
        import wandb

        wandb.finish()
    telemetry, gap = clock[0] - clock[1], clock[1]
    return timer.median_ms(), timer.mean_ms(), *(1e6 * seconds / trainer.global_step for seconds in (telemetry, gap))


def batch_fetch_ms(batch_size: int = 8192, samples: int = 60_000, repeats: int = 50) -> float:
    x, y = torch.randn(samples, 1, 40), torch.randint(0, 10, (samples,))
    batches = TensorBatches((x, y), batch_size, seed=0)
    times = []
    for _ in range(repeats):
        iterator = iter(batches)
        start = time.perf_counter()
        next(iterator)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--variants", default="none,noop,ours,ours10,wandb")
    args = parser.parse_args()
    variants = args.variants.split(",")
    results: dict[str, list[tuple[float, ...]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeats):
            for variant in variants[round_ % len(variants):] + variants[:round_ % len(variants)]:  # rotated order
                results[variant].append(run_variant(variant, args.steps, args.batch_size, Path(tmp)))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"# MNIST-1D CNN, batch {args.batch_size}, {args.steps} steps x {args.repeats} rounds; device {device}; "
          f"torch threads {torch.get_num_threads()}")
    print(f"# 'vs {variants[0]}': per-round ratio (same round, so shared machine load cancels), median [min, max]")
    print(f"| variant | median step ms | vs {variants[0]} | mean step ms | mean vs {variants[0]} "
          f"| telemetry µs/step | telemetry vs {variants[0]} median | gap evaluation µs/step |")
    print("|---|---|---|---|---|---|---|---|")
    for variant in variants:
        cells = []
        for k in (0, 1):  # median, mean
            times = [r[k] for r in results[variant]]
            ratios = [100 * (v[k] / b[k] - 1) for v, b in zip(results[variant], results[variants[0]])]
            cells += [f"{statistics.median(times):.2f}",
                      f"{statistics.median(ratios):+.1f}% [{min(ratios):+.1f}, {max(ratios):+.1f}]"]
        hooks, gap = [r[2] for r in results[variant]], [r[3] for r in results[variant]]
        shares = [100 * h / (1e3 * b[0]) for h, b in zip(hooks, results[variants[0]])]
        cells += [f"{statistics.median(hooks):.0f} [{min(hooks):.0f}, {max(hooks):.0f}]",
                  f"{statistics.median(shares):.2f}% [{min(shares):.2f}, {max(shares):.2f}]",
                  f"{statistics.median(gap):.0f}"]
        print(f"| {variant} | " + " | ".join(cells) + " |")
    if "ours" in results and variants[0] == "none":
        base = [b[0] * 1e3 for b in results["none"]]  # µs
        telemetry = statistics.median(100 * r[2] / b for r, b in zip(results["ours"], base))
        gap = statistics.median(100 * r[3] / b for r, b in zip(results["ours"], base))
        print(f"\nAll telemetry every step: {telemetry:.2f}% of the median step without monitors (target <= 3%); "
              f"the generalization gap's once-per-epoch evaluation adds {gap:.2f}% of training time.")
    print(f"\n8192-sample batch fetch from a 60000x1x40 tensor: {batch_fetch_ms():.3f} ms (median of 50)")


if __name__ == "__main__":
    main()
