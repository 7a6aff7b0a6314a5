"""Median optimizer-step time of largebatch LARS/LAMB against torch and peer implementations.

Three parameter sets are measured in the same run: ``small`` (~100k params in 98 tensors), ``resnet18``
(ResNet-18's 62 tensor shapes, 11.7M params) and ``bert`` (BERT-base's 199 shapes, 109.5M params).
Gradients are random and fixed; each implementation steps ``--warmup`` times, then ``--repeats`` timed steps.
With ``--rounds N`` every implementation is measured N times, interleaved (round r starts the list at a
different implementation), so that load from other processes hits all of them alike; the table shows the
median over rounds and the spread (min–max of the per-round medians), and ratios are paired per round.

    python benchmarks/optimizer_step.py                      # CPU, all sets
    python benchmarks/optimizer_step.py --rounds 5 --threads 2
    python benchmarks/optimizer_step.py --device cuda --sets resnet18,bert

On CUDA the "fused" rows are the Triton kernels (:mod:`largebatch.optim._fused_triton`), on the CPU the C++ ones.
The last column is each implementation's first step in the process: for the Triton rows it includes the JIT
compilation of the kernels (Triton caches compiled kernels on disk, ``~/.triton/cache``, so a second process
compiles nothing).
"""

from __future__ import annotations

import argparse
import inspect
import math
import statistics
import sys
import time
from collections.abc import Callable

import torch

from largebatch.optim import LAMB, LARS
from largebatch.optim._fused_cpu import kernels
from largebatch.optim.peers import timm_optimizer


def small_shapes() -> list[tuple[int, ...]]:
    return [s for _ in range(49) for s in ((45, 45), (45,))]


def resnet18_shapes() -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]
    in_ch = 64
    for out_ch, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            shapes += [(out_ch, in_ch if block == 0 else out_ch, 3, 3), (out_ch,), (out_ch,)]
            shapes += [(out_ch, out_ch, 3, 3), (out_ch,), (out_ch,)]
            if block == 0 and stride == 2:
                shapes += [(out_ch, in_ch, 1, 1), (out_ch,), (out_ch,)]
        in_ch = out_ch
    return shapes + [(1000, 512), (1000,)]


def bert_base_shapes() -> list[tuple[int, ...]]:
    d, ffn = 768, 3072
    shapes: list[tuple[int, ...]] = [(30522, d), (512, d), (2, d), (d,), (d,)]
    for _ in range(12):
        shapes += [(d, d), (d,)] * 4 + [(d,), (d,), (ffn, d), (ffn,), (d, ffn), (d,), (d,), (d,)]
    return shapes + [(d, d), (d,)]


SETS: dict[str, Callable[[], list[tuple[int, ...]]]] = {
    "small": small_shapes, "resnet18": resnet18_shapes, "bert": bert_base_shapes,
}


def implementations() -> dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]]:
    impls: dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]] = {
        "torch AdamW fused": lambda p: torch.optim.AdamW(p, lr=1e-3, fused=True),
        "torch AdamW foreach": lambda p: torch.optim.AdamW(p, lr=1e-3, foreach=True),
        "torch SGD momentum foreach": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, foreach=True),
        "largebatch LAMB fused": lambda p: LAMB(p, lr=1e-3, fused=True),
        "largebatch LAMB foreach": lambda p: LAMB(p, lr=1e-3, fused=False),
        "largebatch LAMB per-param": lambda p: LAMB(p, lr=1e-3, foreach=False),
        "largebatch LARS fused": lambda p: LARS(p, lr=0.1, momentum=0.9, weight_decay=1e-4, fused=True),
        "largebatch LARS foreach": lambda p: LARS(p, lr=0.1, momentum=0.9, weight_decay=1e-4, fused=False),
        "largebatch LARS per-param": lambda p: LARS(p, lr=0.1, momentum=0.9, weight_decay=1e-4, foreach=False),
    }
    try:
        timm_lamb, timm_lars = timm_optimizer("lamb", "Lamb"), timm_optimizer("lars", "Lars")
    except ImportError:
        pass
    else:  # older timm releases have no foreach switch: their default (per-parameter) path is measured then
        lamb_kw = {"foreach": True} if "foreach" in inspect.signature(timm_lamb).parameters else {}
        lars_kw = {"foreach": True} if "foreach" in inspect.signature(timm_lars).parameters else {}
        impls[f"timm Lamb{' (foreach)' if lamb_kw else ''}"] = lambda p: timm_lamb(p, lr=1e-3, max_grad_norm=None,
                                                                                 **lamb_kw)
        impls[f"timm Lars{' (foreach)' if lars_kw else ''}"] = lambda p: timm_lars(
            p, lr=0.1, momentum=0.9, weight_decay=1e-4, **lars_kw)
    try:
        import torch_optimizer

        impls["torch-optimizer Lamb"] = lambda p: torch_optimizer.Lamb(p, lr=1e-3)
    except ImportError:
        pass
    return impls


def time_steps(opt: torch.optim.Optimizer, device: torch.device, warmup: int, repeats: int) -> tuple[float, float]:
    """(first step ms, median ms of the timed steps): the first step includes any JIT compilation and table set-up."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    sync()
    start = time.perf_counter()
    opt.step()
    sync()
    first = (time.perf_counter() - start) * 1e3
    for _ in range(warmup):
        opt.step()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        opt.step()
        sync()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times) * 1e3


def measure(
    impls: dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]], set_names: list[str],
    device: torch.device, args: argparse.Namespace, first_steps: dict[str, float] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Per implementation and set, the median ms/step of each round (implementations interleaved per round).

    ``first_steps`` receives each implementation's first step in this process (ms): JIT compilation included.
    """
    results: dict[str, dict[str, list[float]]] = {name: {s: [] for s in set_names} for name in impls}
    names = list(impls)
    for round_index in range(args.rounds):
        for set_name in set_names:
            shapes = SETS[set_name]()
            gen = torch.Generator().manual_seed(0)
            base = [torch.randn(s, generator=gen) * 0.05 for s in shapes]
            grads = [(torch.randn(s, generator=gen) * 1e-3).to(device) for s in shapes]
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                params = [torch.nn.Parameter(p.clone().to(device)) for p in base]
                for p, g in zip(params, grads):
                    p.grad = g
                first, median = time_steps(impls[name](params), device, args.warmup, args.repeats)
                results[name][set_name].append(median)
                if first_steps is not None:
                    first_steps.setdefault(name, first)
                del params
            print(f"# round {round_index + 1}/{args.rounds}: {set_name} done", file=sys.stderr, flush=True)
    return results


def cell(values: list[float]) -> str:
    """Median, with the min–max spread when there are several rounds."""
    median = statistics.median(values)
    return f"{median:.2f}" if len(values) == 1 else f"{median:.2f} ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="small,resnet18,bert", help=f"comma list of {', '.join(SETS)}")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved measurements of every implementation")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    parser.add_argument("--only", default="", help="comma list of substrings of implementation names to run")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    impls = implementations()
    if args.only:
        impls = {k: v for k, v in impls.items() if any(s.strip() in k for s in args.only.split(","))}
    set_names = [s.strip() for s in args.sets.split(",")]
    unknown = [s for s in set_names if s not in SETS]
    if unknown:
        parser.error(f"unknown --sets {unknown}; allowed: {', '.join(SETS)}")
    if device.type == "cpu" and any("fused" in name and "largebatch" in name for name in impls):
        kernels()  # build (or load) the fused kernels before anything is timed

    first_steps: dict[str, float] = {}
    results = measure(impls, set_names, device, args, first_steps)
    described = []
    for set_name in set_names:
        shapes = SETS[set_name]()
        numel = sum(math.prod(s) for s in shapes)
        described.append(f"{set_name}: {numel / 1e6:.2f}M params in {len(shapes)} tensors")
    name = f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    print(f"# optimizer step, median ms/step over {args.repeats} steps, {args.rounds} interleaved round(s) "
          f"(spread: min–max of the round medians); {name}; torch {torch.__version__}; "
          f"threads {torch.get_num_threads()}")
    print("# " + "; ".join(described))

    def ratios(impl: str, ref: str, s: str) -> list[float]:
        if ref not in results:
            return [float("nan")]
        return [a / b for a, b in zip(results[impl][s], results[ref][s])]

    header = "| implementation | " + " | ".join(f"{s} ms | {s} ×AdamW-fused" for s in set_names)
    print(header + f" | first step ms ({set_names[0]}, JIT included) |")
    print("|" + "---|" * (2 + 2 * len(set_names)))
    for impl, row in results.items():
        cells = []
        for s in set_names:
            cells += [cell(row[s]), cell(ratios(impl, "torch AdamW fused", s))]
        print(f"| {impl} | " + " | ".join(cells) + f" | {first_steps[impl]:.0f} |")

    targets = [(impl, ref) for impl, ref in (("largebatch LAMB fused", "torch AdamW fused"),
                                             ("largebatch LARS fused", "torch SGD momentum foreach"))
               if impl in results and ref in results]
    if targets:
        print("\n# targets (issue 14, GPU): ≤ 1.3 at resnet18 and bert, ≤ 2 on small; paired per-round ratio, "
              "median (min–max)")
        print("| ratio | " + " | ".join(set_names) + " |")
        print("|" + "---|" * (1 + len(set_names)))
        for impl, ref in targets:
            print(f"| {impl} / {ref} | " + " | ".join(cell(ratios(impl, ref, s)) for s in set_names) + " |")


if __name__ == "__main__":
    main()
