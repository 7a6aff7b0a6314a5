"""One GPU check for issue 14, printed as one table: run it once on a GPU machine (≤ 5 minutes on one H200).

Rows: the fused optimizer ratios (largebatch LAMB / torch fused AdamW, largebatch LARS / torch SGD-momentum
foreach) at the small, ResNet-18 and BERT-base shapes of ``optimizer_step.py``, with the Triton kernels' first
step (JIT included); ``largebatch train`` against a plain PyTorch loop (``train_vs_plain_loop.py``); trials per
hour with several trials per GPU against one (``packed_trials.py --via processes``: Ray's wheel is larger than
what the device machine can carry, and the processes are what Ray's fractional GPUs would start); and the GPU
tests' pass count (``pytest -m gpu tests/test_gpu.py`` and ``tests/test_optim_triton.py``, which runs compiled
on a GPU). ``--dry-run`` runs every part at toy sizes on the CPU (the script end to end, the numbers meaningless).

    benchmarks/gpu_check.sh            # or: PYTHONPATH=platform python benchmarks/gpu_check.py [--dry-run]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(Path(__file__).parent))

import optimizer_step  # noqa: E402
import packed_trials  # noqa: E402
import train_vs_plain_loop  # noqa: E402

OPTIMIZERS = ("torch AdamW fused", "torch SGD momentum foreach", "largebatch LAMB fused", "largebatch LARS fused")
RATIOS = (("largebatch LAMB fused", "torch AdamW fused"), ("largebatch LARS fused", "torch SGD momentum foreach"))
TARGET = {"small": 2.0, "resnet18": 1.3, "bert": 1.3}


def optimizer_rows(device: torch.device, sets: list[str], rounds: int, repeats: int) -> list[tuple[str, str, str]]:
    impls = {name: make for name, make in optimizer_step.implementations().items() if name in OPTIMIZERS}
    first: dict[str, float] = {}
    args = SimpleNamespace(rounds=rounds, warmup=3, repeats=repeats)
    results = optimizer_step.measure(impls, sets, device, args, first)  # type: ignore[arg-type]
    rows = []
    for impl, ref in RATIOS:
        for s in sets:
            ratio = statistics.median(a / b for a, b in zip(results[impl][s], results[ref][s]))
            ms = statistics.median(results[impl][s])
            rows.append((f"{impl.removeprefix('largebatch ')} / {ref} ({s})", f"{ratio:.2f} ({ms:.2f} ms)",
                         f"<= {TARGET[s]:g}"))
        rows.append((f"{impl.removeprefix('largebatch ')} first step ({sets[0]}, JIT included)",
                     f"{first[impl] / 1e3:.1f} s", "-"))
    return rows


def pytest_counts(arguments: list[str]) -> str:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *arguments], cwd=ROOT,
                          capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    summary = lines[-1] if lines else done.stderr.strip()[-300:]
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary)}
    return ", ".join(f"{n} {kind}" for kind, n in counts.items()) or summary


def timed(label: str, part: Any, *args: Any) -> Any:
    started = time.perf_counter()
    try:
        return part(*args)
    finally:
        print(f"# {label}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU: checks the script, not the GPU")
    args = parser.parse_args()
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        parser.error("no CUDA device: run with --dry-run to check the script on the CPU")
    device = torch.device("cpu" if dry else "cuda")
    rows: list[tuple[str, str, str]] = []

    sets = ["small"] if dry else ["small", "resnet18", "bert"]
    rows += timed("optimizer steps", optimizer_rows, device, sets, 1 if dry else 3, 3 if dry else 20)

    plain = timed("train vs plain loop", train_vs_plain_loop.compare, *(
        (128, 20, 2000, 1, ["trainer.accelerator=cpu"]) if dry else (1024, 150, 30_000, 2, [])))
    rows.append(("largebatch train / plain loop step time", f"{plain['ratio']:.2f} ({plain['train_ms']:.2f} vs "
                 f"{plain['plain_ms']:.2f} ms)", "<= 1.1"))

    packed = timed("packed vs unpacked trials", packed_trials.compare, *(
        (2, [256], 2, 1, 2000, 1.0, "processes") if dry else (8, [256, 1024], 4, 2, 20_000, 1.0, "processes")))
    rows.append((f"trials/hour packed / unpacked ({packed['trials']:.0f} trials)",
                 f"{packed['ratio']:.2f} ({packed['packed']:.0f} vs {packed['unpacked']:.0f})", ">= 3"))

    gpu_tests = ["-m", "gpu", "tests/test_gpu.py"]
    triton_tests = ["tests/test_optim_triton.py", *(["-k", "not under_the_interpreter"] if dry else [])]
    rows.append(("pytest -m gpu tests/test_gpu.py", timed("gpu tests", pytest_counts, gpu_tests), "all pass"))
    rows.append(("pytest tests/test_optim_triton.py", timed("triton tests", pytest_counts, triton_tests), "all pass"))

    name = "CPU dry run (numbers meaningless)" if dry else torch.cuda.get_device_name(device)
    print(f"# gpu_check on {name}; torch {torch.__version__}")
    print("| check | measured | target |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
