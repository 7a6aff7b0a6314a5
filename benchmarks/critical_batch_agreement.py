"""Is the predicted critical batch right? The gradient noise scale B_simple measured during training against the
B_crit fitted to steps-to-target, on several workloads (McCandlish et al. 2018, arXiv:1812.06162).

Per workload, ``sweeps/critical_batch.yaml`` with the workload's experiment: batch sizes × LAMB at two base learning
rates (square-root rule from batch 128; the better one per batch size counts, as Shallue et al. 2019 tune per
batch size), warmup then a constant lr (no decay: S(B) must not depend on the budget), the noise-scale probe on.
``largebatch sweep`` runs it (or resumes it); the dashboard's analysis then gives:

* S(B), the fewest optimizer steps to the target (``largebatch.analysis.steps_to_target``), fitted by
  S(B) = S_min·(1 + B_crit/B) (eq. 2.11; ``scaling_regimes``: B_crit with an approximate 95% interval);
* the prediction, the median over batch sizes of the B_simple each best run logged last before it reached the
  target (§2.2, Fig. 7; ``noise_scale_at_target``), with its min and max;
* ratio = predicted / fitted (1 = exact; the paper reports agreement within a small factor, B_simple tending to
  underestimate B_noise).

Workloads (all generated or shipped, CPU-sized): ``mnist1d-cnn`` (the reference CNN, val/acc ≥ 0.6),
``mnist1d-mlp`` (a 256-256 MLP on the same data, val/acc ≥ 0.5) and ``text-mlm`` (the tiny BERT on CPython's
documentation, masked-token val/acc ≥ 0.25). The MNIST-1D ones take about 2 minutes each on 2 CPU cores, the
masked LM about 20.

    python benchmarks/critical_batch_agreement.py [--workloads mnist1d-cnn,mnist1d-mlp,text-mlm] [--runs-root DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from largebatch.analysis import (
    compare_prediction,
    load_results,
    noise_scale_at_target,
    scaling_regimes,
    steps_to_target,
)

ROOT = Path(__file__).parents[1]
SWEEP = ROOT / "sweeps" / "critical_batch.yaml"  # the settings every workload's sweep starts from
DROPPED = ("data.options.num_samples", "probes.sharpness")  # MNIST-1D's size (workloads set their own); λ_max: unused
MNIST1D_BATCHES = [(32, 16), (64, 20), (128, 24), (256, 32), (512, 48), (1024, 64)]  # (batch, epochs): 3200 train
WORKLOADS: dict[str, dict[str, Any]] = {
    "mnist1d-cnn": {"experiment": "mnist1d_cnn.yaml", "target": 0.6, "lrs": [0.01, 0.03], "batches": MNIST1D_BATCHES,
                    "overrides": ["data.options.num_samples=5000"]},
    "mnist1d-mlp": {"experiment": "mnist1d_cnn.yaml", "target": 0.5, "lrs": [0.01, 0.03], "batches": MNIST1D_BATCHES,
                    "overrides": ["data.options.num_samples=5000", "model.name=mlp",
                                  "model.options={hidden: [256, 256]}"]},
    "text-mlm": {"experiment": "text_mlm_tiny.yaml", "target": 0.25, "lrs": [0.005, 0.015],
                 "batches": [(32, 4), (64, 5), (128, 6), (256, 8), (512, 12), (1024, 16)], "overrides": []},
}


def sweep_file(name: str, spec: dict[str, Any], folder: Path) -> Path:
    """``sweeps/critical_batch.yaml`` for the workload (its experiment, overrides, batch sizes and LAMB lrs),
    written to ``folder``."""
    data = yaml.safe_load(SWEEP.read_text())
    kept = [o for o in data["overrides"] if not o.startswith(DROPPED)]
    data.update({
        "name": f"agreement-{name}",
        "experiment": str(ROOT / "experiments" / spec["experiment"]),
        "overrides": [*spec["overrides"], *kept],
        "grid": {
            "batch": [{"batch_size": b, "budget.epochs": e} for b, e in spec["batches"]],
            "optimizer": [{"optimizer.name": "lamb", "optimizer.lr": lr, "lr_scaling.rule": "sqrt"}
                          for lr in spec["lrs"]],
        },
    })
    path = folder / f"agreement-{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def agreement(name: str, spec: dict[str, Any], runs_root: Path) -> dict[str, Any]:
    """Run (or resume) the workload's sweep; its fitted and predicted B_crit."""
    path = sweep_file(name, spec, runs_root)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "largebatch", "sweep", str(path), "--runs-root", str(runs_root)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"sweep {path.name} failed:\n{done.stdout[-1500:]}\n{done.stderr[-2500:]}")
    results = load_results(runs_root / f"agreement-{name}")
    steps = steps_to_target(results.finished(), results.history, metric="val/acc", target=spec["target"],
                            by=("sweep",))
    fits, _ = scaling_regimes(steps)
    row = compare_prediction(fits, noise_scale_at_target(steps, results.history)).iloc[0]
    reached = steps[steps["reached"]]
    return {"workload": name, "target": spec["target"], "reached": f"{len(reached)}/{len(steps)}",
            "b_crit": row["b_crit"], "low": row["b_crit_low"], "high": row["b_crit_high"],
            "in_range": bool(row["knee_in_range"]), "predicted": row["predicted_b_crit"],
            "b_min": row["b_simple_min"], "b_max": row["b_simple_max"], "ratio": row["ratio"],
            "minutes": (time.perf_counter() - started) / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma list of {', '.join(WORKLOADS)}")
    parser.add_argument("--runs-root", type=Path, default=Path("runs/critical_batch_agreement"))
    args = parser.parse_args()
    names = args.workloads.split(",")
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"--workloads: unknown {', '.join(unknown)}; allowed: {', '.join(WORKLOADS)}")
    args.runs_root.mkdir(parents=True, exist_ok=True)
    print("| workload | target val/acc | batch sizes reaching it | fitted B_crit [95% interval] | "
          "predicted (median B_simple at target) [min, max] | predicted / fitted | minutes |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        r = agreement(name, WORKLOADS[name], args.runs_root)
        knee = "" if r["in_range"] else " (outside the batch sizes run)"
        print(f"| {r['workload']} | {r['target']} | {r['reached']} | {r['b_crit']:.0f} [{r['low']:.0f}, "
              f"{r['high']:.0f}]{knee} | {r['predicted']:.0f} [{r['b_min']:.0f}, {r['b_max']:.0f}] | "
              f"{r['ratio']:.2f} | {r['minutes']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
