"""Cost of the gradient-noise-scale monitor and of the sharpness probe on the default MNIST-1D experiment.

Variants, each the same seeded training of ``--steps`` optimizer steps at ``--batch-size`` (run store logger):
  accum        micro-batches of ``--micro-batch`` (gradient accumulation), no monitor
  accum+ns     the same with NoiseScaleMonitor: B_simple from the first micro-batch vs the accumulated gradient
               (two norm reductions per step, no extra gradient)
  plain        one batch per step, no monitor
  plain+ns     the same with NoiseScaleMonitor in its extra-gradient mode: a gradient of a quarter of the batch
               every ``--probe-every`` steps (cost also reported per probe)
Step time is the *mean* wall time between optimizer steps (first 5 dropped; the mean, not the median, so that a
probe every N steps counts), the median over ``--repeats`` interleaved repeats. On a shared machine differences
between runs drift with the load, so the monitor's own time (summed inside its hooks, extra-gradient probes
included) is also given per step and as a share of the same run's step time. The ``plain`` runs also end with
a SharpnessProbe (top Hessian eigenvalue, ``--sharpness-batch`` samples, tolerance 1e-3), timed per probe.

    python benchmarks/noise_scale_overhead.py [--steps 150] [--repeats 3] [--batch-size 256] [--micro-batch 64]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from telemetry_overhead import EXPERIMENT, StepTimes

from largebatch.records.store import RunStore
from largebatch.train.callbacks import NoiseScaleMonitor, SharpnessProbe
from largebatch.train.config import load_experiment
from largebatch.train.logger import RunStoreLogger
from largebatch.train.runner import prepare

VARIANTS = ("accum", "accum+ns", "plain", "plain+ns")


class OptimizerStepTimes(StepTimes):
    """Wall time between optimizer steps (micro-batches that only accumulate are not steps)."""

    def __init__(self) -> None:
        super().__init__()
        self._step = 0

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step != self._step:
            self._step = trainer.global_step
            super().on_train_batch_end()

    def mean_ms(self) -> float:
        return statistics.mean(self.times[5:]) * 1e3


class TimedNoiseScaleMonitor(NoiseScaleMonitor):
    """NoiseScaleMonitor that also sums the wall time spent in its own hooks (``seconds``): a within-run cost,
    robust to other load on the machine, unlike differences between runs."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seconds = 0.0

    def _timed(self, hook: Any, *args: Any) -> None:
        started = time.perf_counter()
        hook(*args)
        self.seconds += time.perf_counter() - started

    def on_train_batch_start(self, *args: Any) -> None:
        self._timed(super().on_train_batch_start, *args)

    def on_after_backward(self, *args: Any) -> None:
        self._timed(super().on_after_backward, *args)

    def on_before_optimizer_step(self, *args: Any) -> None:
        self._timed(super().on_before_optimizer_step, *args)

    def on_train_batch_end(self, *args: Any) -> None:
        self._timed(super().on_train_batch_end, *args)


def run_variant(variant: str, args: argparse.Namespace, root: Path) -> dict[str, float]:
    micro = args.micro_batch if variant.startswith("accum") else args.batch_size
    config = load_experiment(EXPERIMENT, [f"batch_size={args.batch_size}", f"max_micro_batch={micro}",
                                          f"budget={{steps: {args.steps}}}", "data.options.num_samples=20000",
                                          "tracking.wandb.mode=disabled"])
    data, module, plan = prepare(config)
    store = RunStore.create(root, variant.replace("+", "_"))
    timer = OptimizerStepTimes()
    callbacks: list[pl.Callback] = [timer]
    monitor = TimedNoiseScaleMonitor(every_n_steps=10, probe_every_n_steps=args.probe_every)
    sharpness = SharpnessProbe(batch_size=args.sharpness_batch, tol=1e-3)
    if variant.endswith("+ns"):
        callbacks.append(monitor)
    if variant == "plain":
        callbacks.append(sharpness)
    trainer = pl.Trainer(accelerator="auto", devices=1, max_steps=plan.total_steps, max_epochs=-1,
                         accumulate_grad_batches=plan.accumulate, logger=[RunStoreLogger(store)], callbacks=callbacks,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         num_sanity_val_steps=0, log_every_n_steps=10)
    trainer.fit(module, datamodule=data)
    store.close()
    result = {"step_ms": timer.mean_ms(), "monitor_ms": 1e3 * monitor.seconds / max(1, trainer.global_step)}
    if monitor.estimator.count and monitor.probe_seconds:
        result["probe_ms"] = 1e3 * monitor.probe_seconds / monitor.estimator.count
    if sharpness.history:
        last = sharpness.history[-1]
        result |= {"sharpness_s": last["sharpness/seconds"], "sharpness_iterations": last["sharpness/iterations"]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--micro-batch", type=int, default=64)
    parser.add_argument("--probe-every", type=int, default=10)
    parser.add_argument("--sharpness-batch", type=int, default=512)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for variant in VARIANTS:
                results[variant].append(run_variant(variant, args, Path(tmp)))

    def median(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in results[variant])

    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"# MNIST-1D CNN, batch {args.batch_size}, {args.steps} steps x {args.repeats} repeats; device {device}; "
          f"torch threads {torch.get_num_threads()}")
    print("| variant | mean step ms | vs same batching without the monitor | monitor's own ms/step | % of step |")
    print("|---|---|---|---|---|")
    for variant in VARIANTS:
        base = median(variant.removesuffix("+ns"), "step_ms")
        ms, own = median(variant, "step_ms"), median(variant, "monitor_ms")
        print(f"| {variant} | {ms:.2f} | {100 * (ms / base - 1):+.1f}% | {own:.3f} | {100 * own / ms:.1f}% |")
    probe = median("plain+ns", "probe_ms")
    print(f"\nextra-gradient probe ({args.batch_size // 4} samples): {probe:.2f} ms each, every {args.probe_every} "
          f"steps = {100 * probe / args.probe_every / median('plain', 'step_ms'):.1f}% of the plain step time")
    print(f"SharpnessProbe ({args.sharpness_batch} samples, tol 1e-3): {median('plain', 'sharpness_s'):.2f} s per "
          f"probe, {median('plain', 'sharpness_iterations'):.0f} power iterations (one Hessian-vector product each)")


if __name__ == "__main__":
    main()
