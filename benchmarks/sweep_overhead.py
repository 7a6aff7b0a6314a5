"""What running trials through ``largebatch sweep`` (Ray Tune) costs over training them one after another.

  sequential     the sweep's trial configs (read back from its run directories) trained one after another by
                 ``largebatch.train.runner.train`` in one fresh process, torch on 1 thread (imports included)
  sweep, serial  ``largebatch sweep`` with ``max_concurrent: 1`` in a fresh process: imports, a local Ray
                 cluster started and stopped, one trial at a time in Ray workers, Optuna, trial index
  sweep          ``largebatch sweep`` as shipped: as many trials at once as there are CPUs (1 CPU each)

Each time is the whole command's wall time, what a user waits for. ``sweep, serial / sequential`` is the
overhead of the sweep machinery (target ≤ 1.25); ``sweep / sequential`` adds what running trials side by side
gains. The sequential baseline uses one torch thread, like each trial: with torch's default (one thread per
core) a loaded 2-core machine made some runs 40× slower through OpenMP oversubscription.

    python benchmarks/sweep_overhead.py [--sweep sweeps/quickstart.yaml] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]

SEQUENTIAL = """
import sys
import torch
from largebatch.core.yaml_io import read_yaml
from largebatch.records.runs import find_runs
from largebatch.train.config import validate
from largebatch.train.runner import train

torch.set_num_threads(1)
for run in find_runs(sys.argv[1]):
    data = read_yaml(run / "config.yaml")
    data.pop("plan")
    data["tracking"]["runs_root"] = sys.argv[2]
    train(validate(data, str(run)))
"""


def timed(command: list[str]) -> float:
    """Wall seconds of ``command`` (its output discarded); raises if it fails."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - started


def serial_copy(sweep: Path, work: Path) -> Path:
    """The sweep file with ``max_concurrent: 1`` (its experiment path made absolute), written under ``work``."""
    data = yaml.safe_load(sweep.read_text())
    if isinstance(data["experiment"], str):
        data["experiment"] = str((sweep.parent / data["experiment"]).resolve())
    path = work / "serial.yaml"
    path.write_text(yaml.safe_dump({**data, "max_concurrent": 1}, sort_keys=False))
    return path


def sweep_command(path: Path, name: str, work: Path) -> list[str]:
    return [sys.executable, "-m", "largebatch", "sweep", str(path), "--name", name, "--runs-root", str(work / "sweeps")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", type=Path, default=ROOT / "sweeps" / "quickstart.yaml")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="write results here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sweep-overhead-") as temp:
        work = args.keep or Path(temp)
        work.mkdir(parents=True, exist_ok=True)
        parallel = timed(sweep_command(args.sweep, "parallel", work))
        serial = timed(sweep_command(serial_copy(args.sweep, work), "serial", work))
        runs = work / "sweeps" / "parallel" / "runs"
        trials = len(list(runs.iterdir()))
        sequential = timed([sys.executable, "-c", SEQUENTIAL, str(runs), str(work / "sequential")])
    print(f"{args.sweep.name}: {trials} trials")
    print(f"{'mode':<15}{'wall s':>8}{'s/trial':>9}{'/ sequential':>14}")
    for mode, seconds in (("sequential", sequential), ("sweep, serial", serial), ("sweep", parallel)):
        print(f"{mode:<15}{seconds:>8.1f}{seconds / trials:>9.2f}{seconds / sequential:>14.2f}")
    overhead = serial / sequential
    verdict = "met" if overhead <= 1.25 else "missed"
    print(f"overhead (sweep, serial / sequential): {overhead:.2f}; target <= 1.25 {verdict}")


if __name__ == "__main__":
    main()
