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
from round to round, so the time spent inside the callbacks' hooks is also measured directly ("in hooks", µs
per optimizer step, and as a share of the median step without monitors); Lightning's dispatch of the one
registered group comes on top (the noop row).

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
from largebatch.train.callbacks.group import HOOKS
from largebatch.train.config import load_experiment
from largebatch.train.logger import RunStoreLogger
from largebatch.train.runner import prepare
from largebatch.train.store import RunStore

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


STEP_HOOKS = ("on_train_batch_start", "on_before_backward", "on_after_backward", "on_before_optimizer_step",
              "on_before_zero_grad", "on_train_batch_end")


def timed(callback: pl.Callback, clock: list[float]) -> pl.Callback:
    """``callback`` with the time spent in its per-batch hooks added to ``clock[0]``, in the others (epoch ends,
    validation, fit start and end) to ``clock[1]`` (instance attributes shadow the class's hooks, and Lightning
    looks hooks up on the instance)."""
    for hook in HOOKS:
        method, slot = getattr(callback, hook), 0 if hook in STEP_HOOKS else 1

        def wrapper(*args, _method=method, _slot=slot, **kwargs) -> None:
            start = time.perf_counter()
            _method(*args, **kwargs)
            clock[_slot] += time.perf_counter() - start

        setattr(callback, hook, wrapper)
    return callback


def run_variant(variant: str, steps: int, batch_size: int, root: Path) -> tuple[float, ...]:
    """Median and mean step ms, and µs per optimizer step spent in the timed callbacks' per-batch hooks and in
    their other hooks."""
    config = load_experiment(EXPERIMENT, [f"batch_size={batch_size}", f"budget={{steps: {steps}}}",
                                          "data.options.num_samples=20000", "tracking.wandb.mode=disabled"])
    data, module, plan = prepare(config)
    store = RunStore.create(root, variant)
    loggers: list = [RunStoreLogger(store)]
    timer, clock = StepTimes(), [0.0, 0.0]
    callbacks: list[pl.Callback] = [timer]
    if variant == "noop":
        callbacks.append(timed(pl.Callback(), clock))
    if variant.startswith("ours"):
        every = 1 if variant == "ours" else 10
        callbacks.append(timed(CallbackGroup([
            TrustRatioMonitor(every_n_steps=every), GradNormMonitor(every_n_steps=every), GeneralizationGap(),
            DivergenceGuard(), Throughput(every_n_steps=every)]), clock))
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
    return timer.median_ms(), timer.mean_ms(), *(1e6 * seconds / trainer.global_step for seconds in clock)


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
          f"| in step hooks µs/step | same vs {variants[0]} median | in epoch-end hooks µs/step |")
    print("|---|---|---|---|---|---|---|---|")
    for variant in variants:
        cells = []
        for k in (0, 1):  # median, mean
            times = [r[k] for r in results[variant]]
            ratios = [100 * (v[k] / b[k] - 1) for v, b in zip(results[variant], results[variants[0]])]
            cells += [f"{statistics.median(times):.2f}",
                      f"{statistics.median(ratios):+.1f}% [{min(ratios):+.1f}, {max(ratios):+.1f}]"]
        hooks, epoch_hooks = [r[2] for r in results[variant]], [r[3] for r in results[variant]]
        shares = [100 * h / (1e3 * b[0]) for h, b in zip(hooks, results[variants[0]])]
        cells += [f"{statistics.median(hooks):.0f} [{min(hooks):.0f}, {max(hooks):.0f}]",
                  f"{statistics.median(shares):.2f}% [{min(shares):.2f}, {max(shares):.2f}]",
                  f"{statistics.median(epoch_hooks):.0f}"]
        print(f"| {variant} | " + " | ".join(cells) + " |")
    print(f"\n8192-sample batch fetch from a 60000x1x40 tensor: {batch_fetch_ms():.3f} ms (median of 50)")


if __name__ == "__main__":
    main()
