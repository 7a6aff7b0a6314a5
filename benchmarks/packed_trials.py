"""Trials per hour of a batch-size sweep with several trials per GPU (``resources.pack``) against one per GPU.

``sweeps/batch_scaling.yaml`` scaled to fit (``--batch-sizes``, ``--optimizers`` bundles, ``--epochs``,
``--samples``) is run twice by ``largebatch sweep`` in fresh processes, each on a local Ray cluster of this
machine: ``resources: {cpu: C, gpu: auto}`` (one trial per GPU) and the same with ``pack: N`` (or ``true``: the
probe decides). Wall time is the whole command's (Ray start, probe and all), what a user waits for;
trials/hour = trials × 3600 / wall seconds. Issue 14's target: packed ≥ 3× unpacked for models that use < 10% of
the GPU. On a machine without a GPU both runs are CPU-bound alike (the script still runs end to end).

``--via processes`` measures the same without Ray (for machines where Ray is not installed): every trial of the
scaled sweep is a ``largebatch.train`` process of its own, one at a time against ``pack`` at a time on the GPU,
which is what Ray's fractional GPUs arrange (each trial a worker process, several sharing a device).

    python benchmarks/packed_trials.py [--pack 8] [--batch-sizes 256,1024,4096] [--optimizers 2] [--epochs 3]
    python benchmarks/packed_trials.py --via processes --pack 8
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[1]
SWEEP = ROOT / "sweeps" / "batch_scaling.yaml"


def scaled_sweep(work: Path, name: str, batch_sizes: list[int], optimizers: int, epochs: int, samples: int,
                 resources: dict[str, Any]) -> Path:
    """``batch_scaling.yaml`` cut to ``batch_sizes`` × the first ``optimizers`` bundles, written under ``work``."""
    data = yaml.safe_load(SWEEP.read_text())
    data["experiment"] = str((SWEEP.parent / data["experiment"]).resolve())
    data["name"] = name
    data["overrides"] = [o for o in data["overrides"] if not o.startswith("data.options.num_samples")]
    data["overrides"] += [f"data.options.num_samples={samples}", "tracking.wandb.mode=disabled"]  # W&B: not timed
    data["grid"] = {"batch_size": batch_sizes, "optimizer": data["grid"]["optimizer"][:optimizers]}
    data["budget"] = {"epochs": epochs}
    data["resources"] = resources
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def timed_sweep(path: Path, work: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "largebatch", "sweep", str(path), "--runs-root", str(work / "sweeps")],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"largebatch sweep {path.name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def run_trial(path: Path, index: int, runs_root: Path) -> None:
    """Train cell ``index`` of the sweep at ``path`` (the child process of ``--via processes``)."""
    from largebatch.sweep import load_sweep
    from largebatch.train.runner import train

    sweep = load_sweep(path)
    config = sweep.experiment_for(sweep.cells()[index], run_dir=runs_root / f"trial{index}")
    if train(config).status != "completed":
        raise SystemExit(f"trial {index} did not complete")


def timed_processes(path: Path, trials: int, at_once: int, work: Path) -> float:
    """Wall seconds to train every trial, ``at_once`` processes at a time (one CPU thread each, like Ray's)."""
    import os

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started, pending, running = time.perf_counter(), list(range(trials)), []
    while pending or running:
        while pending and len(running) < at_once:
            index = pending.pop(0)
            command = [sys.executable, __file__, "--trial", str(path), str(index), str(work / f"runs-{at_once}")]
            running.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        finished = running.pop(0)
        _, err = finished.communicate()
        if finished.returncode != 0:
            raise RuntimeError(f"a trial of {path.name} failed:\n{err.decode()[-3000:]}")
    return time.perf_counter() - started


def compare(pack: int | bool, batch_sizes: list[int], optimizers: int, epochs: int, samples: int,
            cpu: float, via: str = "ray") -> dict[str, float]:
    """Trials per hour unpacked and packed, and their ratio."""
    trials = len(batch_sizes) * optimizers
    results = {}
    with tempfile.TemporaryDirectory(prefix="lb-pack-") as temp:
        work = Path(temp)
        if via == "processes":
            if pack is True:
                raise ValueError("--via processes needs a stated --pack N")
            path = scaled_sweep(work, "processes", batch_sizes, optimizers, epochs, samples, {"cpu": cpu})
            for label, at_once in (("unpacked", 1), ("packed", int(pack))):
                results[label] = trials * 3600.0 / timed_processes(path, trials, at_once, work)
            return {**results, "trials": trials, "ratio": results["packed"] / results["unpacked"]}
        for label, resources in (("unpacked", {"cpu": cpu, "gpu": "auto"}),
                                 ("packed", {"cpu": cpu, "gpu": "auto", "pack": pack})):
            path = scaled_sweep(work, label, batch_sizes, optimizers, epochs, samples, resources)
            results[label] = trials * 3600.0 / timed_sweep(path, work)
    return {**results, "trials": trials, "ratio": results["packed"] / results["unpacked"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", default="8", help="trials per GPU, or 'true' (measured by the probe)")
    parser.add_argument("--batch-sizes", default="256,1024,4096")
    parser.add_argument("--optimizers", type=int, default=2, help="first N optimizer bundles of the sweep (max 4)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--cpu", type=float, default=1.0, help="CPUs per trial")
    parser.add_argument("--via", choices=("ray", "processes"), default="ray")
    parser.add_argument("--trial", nargs=3, metavar=("SWEEP", "INDEX", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trial:
        run_trial(Path(args.trial[0]), int(args.trial[1]), Path(args.trial[2]))
        return
    pack: int | bool = True if args.pack == "true" else int(args.pack)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    result = compare(pack, sizes, args.optimizers, args.epochs, args.samples, args.cpu, args.via)
    print(f"# batch_scaling scaled: {result['trials']:.0f} trials (batch {args.batch_sizes} x {args.optimizers} "
          f"optimizers, {args.epochs} epochs, {args.samples} samples), pack {args.pack}, via {args.via}")
    print("| unpacked trials/h | packed trials/h | packed / unpacked |")
    print("|---|---|---|")
    print(f"| {result['unpacked']:.0f} | {result['packed']:.0f} | {result['ratio']:.2f} |")


if __name__ == "__main__":
    main()
