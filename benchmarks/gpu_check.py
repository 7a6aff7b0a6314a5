"""One GPU check for issue 14, printed as one table: run it once on a GPU machine (≤ 5 minutes on one H200).

Rows: the fused optimizer ratios (largebatch LAMB / torch fused AdamW, largebatch LARS / torch SGD-momentum
foreach) at the small, ResNet-18 and BERT-base shapes of ``optimizer_step.py``, with the Triton kernels' first
step (JIT included); ``largebatch train`` against a plain PyTorch loop (``train_vs_plain_loop.py``) for a
launch-bound model (the MNIST-1D CNN) and one that keeps the GPU busy (a BERT-style masked-LM encoder, d 256, 4
layers, sequences of 128 characters of CPython's own library sources, bf16-mixed); trials per
hour with several trials per GPU against one (``packed_trials.py --via processes``: Ray's wheel is larger than
what the device machine can carry, and the processes are what Ray's fractional GPUs would start); and the GPU
tests' pass count (``pytest -m gpu tests/test_gpu.py`` and ``tests/test_optim_triton.py``, which runs compiled
on a GPU). ``--dry-run`` runs every part at toy sizes on the CPU (the script end to end, the numbers meaningless).

Rows print as they are measured (a run cut short keeps what it has); a part that fails becomes an ``ERROR`` row,
its traceback on stderr, and the others still run. ``--logs DIR`` keeps the pytest output there.

    benchmarks/gpu_check.sh            # or: PYTHONPATH=platform python benchmarks/gpu_check.py [--dry-run]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import sysconfig
import time
import traceback
from collections.abc import Callable
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
PARTS = ("optimizers", "triton-tests", "gpu-tests", "train-mnist1d", "train-mlm", "packed")


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


def pytest_counts(arguments: list[str], log: Path | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *arguments],
                          cwd=ROOT, capture_output=True, text=True)
    if log is not None:
        log.write_text(done.stdout + "\n" + done.stderr)
    lines = done.stdout.strip().splitlines()
    summary = lines[-1] if lines else done.stderr.strip()[-300:]
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary)}
    return ", ".join(f"{n} {kind}" for kind, n in counts.items()) or summary


def stdlib_corpus(path: Path, megabytes: float) -> Path:
    """A text file of ``megabytes`` of CPython's library sources (there wherever Python is): the masked-LM row's
    corpus, large enough for whole epochs of many batches of 1024 sequences."""
    left, parts = int(megabytes * 2**20), []
    for file in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if left <= 0:
            break
        text = file.read_text(encoding="utf-8", errors="ignore")[:left]
        parts.append(text)
        left -= len(text)
    path.write_text("".join(parts), encoding="utf-8")
    return path


def train_vs_plain_row(label: str, result: dict[str, float]) -> tuple[str, str, str]:
    return (f"largebatch train / plain loop step time, {label}",
            f"{result['ratio']:.2f} ({result['train_ms']:.2f} vs {result['plain_ms']:.2f} ms)", "<= 1.1")


class Table:
    """Rows printed as they come (flushed) and once more, whole, at the end."""

    def __init__(self, title: str) -> None:
        self.title, self.rows = title, []

    def add(self, label: str, part: Callable[..., list[tuple[str, str, str]]], *args: Any) -> None:
        started = time.perf_counter()
        try:
            rows = part(*args)
        except Exception as error:  # one failing part must not cost the others' rows
            traceback.print_exc()
            rows = [(label, f"ERROR: {type(error).__name__}: {str(error)[:200]}".replace("|", "/").replace("\n", " "),
                     "-")]
        print(f"# {label}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        for row in rows:
            print("| " + " | ".join(row) + " |", flush=True)
        self.rows += rows

    def print(self) -> None:
        print(f"\n{self.title}\n| check | measured | target |\n|---|---|---|")
        for row in self.rows:
            print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU: checks the script, not the GPU")
    parser.add_argument("--logs", type=Path, help="a folder for the pytest output")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)} (default: all)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        parser.error(f"--parts: unknown {', '.join(sorted(parts - set(PARTS)))}; allowed: {', '.join(PARTS)}")
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        parser.error("no CUDA device: run with --dry-run to check the script on the CPU")
    device = torch.device("cpu" if dry else "cuda")
    name = "CPU dry run (numbers meaningless)" if dry else torch.cuda.get_device_name(device)
    table = Table(f"# gpu_check on {name}; torch {torch.__version__}")
    print(table.title, flush=True)
    logs = args.logs
    if logs is not None:
        logs.mkdir(parents=True, exist_ok=True)

    sets = ["small"] if dry else ["small", "resnet18", "bert"]
    cpu = ["trainer.accelerator=cpu"] if dry else []

    def optimizers() -> list[tuple[str, str, str]]:
        return optimizer_rows(device, sets, 1 if dry else 3, 3 if dry else 20)

    def triton_tests() -> list[tuple[str, str, str]]:
        selection = ["tests/test_optim_triton.py", *(["-k", "not under_the_interpreter"] if dry else [])]
        return [("pytest tests/test_optim_triton.py", pytest_counts(selection, logs and logs / "pytest_triton.log"),
                 "all pass")]

    def gpu_tests() -> list[tuple[str, str, str]]:
        selection = ["-m", "gpu", "tests/test_gpu.py"]
        return [("pytest -m gpu tests/test_gpu.py", pytest_counts(selection, logs and logs / "pytest_gpu.log"),
                 "all pass")]

    def train_mnist1d() -> list[tuple[str, str, str]]:
        batch = 128 if dry else 1024
        samples = 2000 if dry else 30_000
        result = train_vs_plain_loop.compare(batch, 20 if dry else 150, 1 if dry else 2,
                                             [f"data.options.num_samples={samples}", *cpu])
        return [train_vs_plain_row(f"MNIST-1D CNN (launch-bound), batch {batch}", result)]

    def train_mlm() -> list[tuple[str, str, str]]:
        corpus = stdlib_corpus(Path("/tmp/lb-gpu-check-corpus.txt"), 0.3 if dry else 8)
        size = (["model.options.d_model=32", "model.options.layers=1", *cpu] if dry else
                ["model.options.d_model=256", "model.options.layers=4", "trainer.precision=bf16-mixed"])
        batch = 128 if dry else 1024
        result = train_vs_plain_loop.compare(
            batch, 20 if dry else 120, 1,
            [f"data.options.path={corpus}", f"data.options.seq_len={32 if dry else 128}", *size],
            ROOT / "experiments" / "text_mlm_tiny.yaml")
        return [train_vs_plain_row(f"masked-LM encoder (GPU-bound), batch {batch}", result)]

    def packed() -> list[tuple[str, str, str]]:
        result = packed_trials.compare(*((2, [256], 2, 1, 2000, 1.0, "processes") if dry else
                                         (8, [256, 1024], 4, 1, 10_000, 1.0, "processes")))
        return [(f"trials/hour packed / unpacked ({result['trials']:.0f} trials)",
                 f"{result['ratio']:.2f} ({result['packed']:.0f} vs {result['unpacked']:.0f})", ">= 3")]

    measured = {"optimizers": optimizers, "triton-tests": triton_tests, "gpu-tests": gpu_tests,
                "train-mnist1d": train_mnist1d, "train-mlm": train_mlm, "packed": packed}
    for part in PARTS:
        if part in parts:
            table.add(part, measured[part])
    table.print()


if __name__ == "__main__":
    main()
