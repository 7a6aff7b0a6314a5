"""Adaptive batch vs ``steps`` schedule vs the best fixed batch: optimizer steps and samples to a target metric.

Workloads (``--workload``): ``mnist1d``, MNIST-1D (``--samples`` generated, 64% train) with its reference CNN
(``--channels``); ``text-mlm``, the tiny BERT of ``experiments/text_mlm_tiny.yaml`` on CPython's documentation
(masked-token accuracy). LAMB in both. Variants, each for ``--seeds`` seeds and ``--epochs`` epochs of data:
  fixed B, lr   every batch size of ``--batches`` with every lr of ``--lrs`` (lr_scaling none: the lr is tuned per
                batch size over that grid); the best lr per batch size is the one reaching the target in fewest
                steps (median over seeds), and the *best fixed batch* the batch size with fewest such steps
  steps         the smallest batch and its best lr, lr held constant, the batch ×4 after 25%, 50% and 75% of the
                epochs, up to ``--max-batch`` (Smith et al. 2017, in place of lr decay)
  adaptive      the smallest batch and its best lr, every ``--every`` steps the batch set to clip(``--scale`` · B̂,
                smallest, ``--max-batch``) from the noise scale B̂ (McCandlish et al. 2018), once B̂ rests on
                ``--min-estimates`` measurements (one per ``--probe-every`` steps while the batch is one
                micro-batch, one per step once it accumulates), at most ``--max-growth``-fold per decision
                (``--shrink``: it may also fall), lr by the sqrt rule from the smallest batch or AdaScale's gain
                (``--adaptive-lr``), so no per-batch-size tuning
All variants use a 1-epoch warmup and a constant lr after it (a decay would tie the result to the budget).
Steps (samples) to target: the first epoch-end validation at which val/acc >= ``--target``, so resolution is one
epoch; a run that never gets there counts as not reached. Printed: a markdown table with median [min, max] over
seeds of steps and samples to target, how many seeds reached it, the median batch of the last step and the median
final test accuracy. The runs stay under ``--runs-root`` when given (for ``largebatch dashboard DIR --config
dashboards/schedules/batch_schedules.yaml``), else in a temporary folder.

    python benchmarks/batch_schedules.py [--samples 4000] [--epochs 12] [--seeds 2] [--target 0.6] [--runs-root DIR]
    # as measured in docs/training.md (adaptive at 4·B̂: B_simple sits 2.3-3.5× below the fitted B_crit):
    python benchmarks/batch_schedules.py --seeds 3 --channels 25 --samples 5000 --epochs 30 --target 0.8 \
        --lrs 0.01 0.03 0.1 --scale 4 --max-growth 4 --min-estimates 10 --probe-every 1
    python benchmarks/batch_schedules.py --workload text-mlm --epochs 6 --seeds 2 --target 0.26 --lrs 0.005 0.015 \
        --scale 4 --max-growth 4 --min-estimates 10 --probe-every 1
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from largebatch.analysis import first_reaching, load_results
from largebatch.train.config import load_experiment
from largebatch.train.runner import train

EXPERIMENTS = Path(__file__).parents[1] / "experiments"
WORKLOADS = {"mnist1d": "mnist1d_cnn.yaml", "text-mlm": "text_mlm_tiny.yaml"}


def workload_overrides(args: argparse.Namespace) -> list[str]:
    """The workload's own settings (MNIST-1D: how many samples are generated, the CNN's width)."""
    if args.workload == "mnist1d":
        return [f"data.options.num_samples={args.samples}", f"model.options.channels={args.channels}"]
    return []


def describe(args: argparse.Namespace) -> str:
    if args.workload == "mnist1d":
        return f"MNIST-1D ({args.samples} samples), CNN {args.channels} channels"
    return "masked LM on CPython's documentation (tiny BERT, masked-token accuracy)"


def run(args: argparse.Namespace, root: Path, seed: int, batch: int, lr: float, *extra: str) -> dict[str, float]:
    """One training run; its steps and samples at the first validation reaching the target (NaN if none)."""
    overrides = [*workload_overrides(args), f"batch_size={batch}", f"max_micro_batch={args.micro_batch}", f"optimizer.lr={lr}",
                 "lr_scaling={rule: none, reference_batch_size: %d}" % batch, f"budget={{epochs: {args.epochs}}}",
                 "schedule={warmup_epochs: 1, decay: constant}", f"seed={seed}", "tracking.wandb.mode=disabled",
                 f"tracking.runs_root={root}", "logging.every_n_steps=10", *extra]
    result = train(load_experiment(EXPERIMENTS / WORKLOADS[args.workload], overrides))
    print(f"run {' '.join(extra) or 'fixed'} batch {batch} lr {lr} seed {seed}: {result.status}", file=sys.stderr)
    return {**reached(result.run_dir, args.target, batch), "status": result.status,
            "test_acc": result.summary.get("eval", {}).get("test_acc", float("nan"))}


def reached(run_dir: Path, target: float, batch: int) -> dict[str, float]:
    """A run's steps and samples at its first validation with val/acc >= ``target`` (NaN if none), read by the
    analysis layer (:func:`largebatch.analysis.first_reaching`), and the batch of its last step."""
    history = load_results(run_dir).history
    first = first_reaching(history, "val/acc", target)
    sizes = history[history["metric"] == "batch/size"].sort_values("step")["value"]  # logged where it changes
    hit = len(first) > 0
    return {"steps": float(first["step"].iloc[0]) if hit else float("nan"),
            "samples": float(first["samples"].iloc[0]) if hit else float("nan"),
            "last_batch": float(sizes.iloc[-1]) if len(sizes) else float(batch)}


def schedule_variants(args: argparse.Namespace, small: int) -> dict[str, list[str]]:
    """The two schedules' overrides, both starting at batch ``small``."""
    quarters = ", ".join(str(round(args.epochs * q)) for q in (0.25, 0.5, 0.75))
    adaptive = (f"batch_schedule={{kind: adaptive, every_n_steps: {args.every}, max_batch: {args.max_batch}, "
                f"lr: {args.adaptive_lr}, scale: {args.scale}, min_estimates: {args.min_estimates}, "
                f"max_growth: {args.max_growth}, shrink: {str(args.shrink).lower()}}}")
    lr_name = "sqrt lr" if args.adaptive_lr == "scale" else "AdaScale lr"
    return {
        "steps ×4 (lr held)": [f"batch_schedule={{kind: steps, epochs: [{quarters}], factor: 4, lr: hold, "
                               f"max_batch: {args.max_batch}}}"],
        f"adaptive {args.scale:g}·B̂ ({lr_name})": [
            adaptive, "lr_scaling={rule: sqrt, reference_batch_size: %d}" % small,
            f"probes.noise_scale={{every_n_steps: 10, probe_every_n_steps: {args.probe_every}, ema: 0.95}}"],
    }


def spread(values: list[float]) -> str:
    reached = [v for v in values if v == v]
    if not reached:
        return "not reached"
    return f"{statistics.median(reached):.0f} [{min(reached):.0f}, {max(reached):.0f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="mnist1d")
    parser.add_argument("--samples", type=int, default=4000, help="MNIST-1D samples generated")
    parser.add_argument("--channels", type=int, default=8, help="the MNIST-1D CNN's width")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.6)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.003, 0.01, 0.03, 0.1])
    parser.add_argument("--micro-batch", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=512)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--scale", type=float, default=1.0, help="adaptive: batch = scale · B̂")
    parser.add_argument("--min-estimates", type=int, default=20)
    parser.add_argument("--max-growth", type=float, default=2.0)
    parser.add_argument("--probe-every", type=int, default=5,
                        help="adaptive: steps between noise probes while the batch is one micro-batch")
    parser.add_argument("--shrink", action="store_true", help="adaptive: the batch may also fall with B̂")
    parser.add_argument("--adaptive-lr", choices=["scale", "adascale"], default="scale")
    parser.add_argument("--runs-root", type=Path, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = []
    with contextlib.ExitStack() as stack:
        root = args.runs_root or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lb-batch-schedules-")))
        for batch in args.batches:
            for lr in args.lrs:
                for seed in range(args.seeds):
                    rows.append({"variant": f"fixed {batch}", "batch": batch, "lr": lr, "seed": seed,
                                 **run(args, root, seed, batch, lr)})
        fixed = pd.DataFrame(rows)
        # fewest steps to target (median over seeds); ties and misses broken by final test accuracy
        per_lr = fixed.groupby(["batch", "lr"]).agg(steps=("steps", "median"), test_acc=("test_acc", "median"))
        ranked = per_lr.reset_index().sort_values(["batch", "steps", "test_acc"], ascending=[True, True, False])
        best_lr = ranked.drop_duplicates("batch").set_index("batch")["lr"]
        small = min(args.batches)
        for name, extra in schedule_variants(args, small).items():
            for seed in range(args.seeds):
                rows.append({"variant": name, "batch": small, "lr": float(best_lr[small]), "seed": seed,
                             **run(args, root, seed, small, float(best_lr[small]), *extra)})
    table = pd.DataFrame(rows)
    tuned = table[table["variant"].str.startswith("fixed")]
    tuned = tuned[tuned["lr"] == tuned["batch"].map(best_lr)]
    medians = tuned.groupby("batch")["steps"].median()
    best_batch = medians.idxmin() if medians.notna().any() else None  # None: no fixed batch reached the target
    shown = pd.concat([tuned, table[~table["variant"].str.startswith("fixed")]])
    print(f"{describe(args)}, LAMB, {args.epochs} epochs, "
          f"{args.seeds} seeds, target val/acc >= {args.target}; lr tuned per fixed batch over {args.lrs}")
    print("| variant | start batch | lr | steps to target | samples to target | reached | last batch | test acc |")
    print("|---|---|---|---|---|---|---|---|")
    for variant, group in shown.groupby("variant", sort=False):
        mark = " (best fixed)" if variant == f"fixed {best_batch}" else ""
        print(f"| {variant}{mark} | {group['batch'].iloc[0]} | {group['lr'].iloc[0]:g} | {spread(list(group['steps']))} "
              f"| {spread(list(group['samples']))} | {int(group['steps'].notna().sum())}/{len(group)} "
              f"| {statistics.median(group['last_batch']):.0f} | {statistics.median(group['test_acc']):.3f} |")
    print(f"({len(table)} runs in {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
