"""Step time of ``largebatch train`` against a plain PyTorch loop with the same model, optimizer, schedule and batch.

  train   ``largebatch.train.runner.train`` as the CLI runs it (Lightning, telemetry at the experiment's cadence,
          run store, checkpoints); the step time is its Throughput callback's median (``summary.throughput``)
  plain   a hand-written loop: the same seeded model, optimizer and lr schedule (built by the same module),
          the training split placed on the device once and batched by ``TensorBatches``, forward / backward /
          step / zero_grad; timed like Throughput (mean over windows of ``logging.every_n_steps`` steps,
          synchronised at window ends), median over windows

The ratio train / plain is taken within a round; rounds alternate which one runs first. Target on a GPU: ≤ 1.1
at batch ≥ 1024 (issue 14). Mixed precision (``trainer.precision`` *-mixed) runs the plain loop under autocast.

What the ratio means depends on where the step's time goes. Lightning's loop, its hooks and the telemetry
callbacks cost a fixed fraction of a millisecond of host time per step. A model whose step is launch-bound (the
MNIST-1D CNN: a few dozen small kernels, the GPU idle between them) pays that in full; a model whose kernels keep
the GPU busy (``--experiment experiments/text_mlm_tiny.yaml --set model.options.d_model=256 ...``) hides it behind
the queued work, since nothing in the step waits for the GPU.

    python benchmarks/train_vs_plain_loop.py [--experiment experiments/mnist1d_cnn.yaml] [--batch-size 1024]
        [--steps 200] [--rounds 3] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from largebatch.data import TensorBatches
from largebatch.train.config import ExperimentConfig, load_experiment
from largebatch.train.runner import prepare, train

EXPERIMENT = Path(__file__).parents[1] / "experiments" / "mnist1d_cnn.yaml"


def experiment(path: Path, batch_size: int, steps: int, runs_root: Path, extra: list[str]) -> ExperimentConfig:
    return load_experiment(path, [f"batch_size={batch_size}", f"budget={{steps: {steps}}}",
                                  f"tracking.runs_root={runs_root}", "tracking.wandb.mode=disabled", *extra])


def train_step_ms(config: ExperimentConfig) -> float:
    """The Throughput callback's median step time of one ``largebatch train`` run."""
    result = train(config)
    if result.status != "completed":
        raise RuntimeError(f"largebatch train ended {result.status}")
    return float(result.summary["throughput"]["step_ms"])


def _device(config: ExperimentConfig) -> torch.device:
    wanted = config.trainer.accelerator
    if wanted in ("cuda", "gpu") or (wanted == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def plain_step_ms(config: ExperimentConfig) -> float:
    """Median over windows of the mean step time of a plain loop doing what ``train`` does per step."""
    data, module, plan = prepare(config)
    device = _device(config)
    module.to(device)
    optimizers = module.configure_optimizers()
    optimizer, scheduler = optimizers["optimizer"], optimizers["lr_scheduler"]["scheduler"]
    tensors = tuple(t.to(device) for t in data.splits.train)  # placed once, like the datamodule does
    batches = TensorBatches(tensors, plan.micro_batch, seed=config.seed, transform=data.transform)
    precision = config.trainer.precision
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float16
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if precision.endswith("mixed") else nullcontext
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
    every = config.logging.every_n_steps
    windows: list[float] = []

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step, micro, start = 0, 0, None
    while step < plan.total_steps:
        for batch in batches:
            with autocast():
                loss_sum, _, count = module.batch_losses(batch)
            scaler.scale(loss_sum / count / plan.accumulate).backward()
            micro += 1
            if micro % plan.accumulate:
                continue
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
            if step == 1 or step % every == 0:  # the first step (allocations, JIT) opens the first window
                sync()
                now = time.perf_counter()
                if start is not None:
                    windows.append((now - start) / (every if step > every else step - 1))
                start = now
            if step == plan.total_steps:
                break
    return 1e3 * statistics.median(windows)


def compare(batch_size: int, steps: int, rounds: int, extra: list[str], path: Path = EXPERIMENT) -> dict[str, float]:
    """Median train and plain step ms and the median of the per-round ratios."""
    train_ms, plain_ms = [], []
    with tempfile.TemporaryDirectory(prefix="lb-plain-") as tmp:
        for round_ in range(rounds):
            config = experiment(path, batch_size, steps, Path(tmp) / str(round_), extra)
            order = (train_step_ms, plain_step_ms) if round_ % 2 == 0 else (plain_step_ms, train_step_ms)
            measured = {f: f(config) for f in order}
            train_ms.append(measured[train_step_ms])
            plain_ms.append(measured[plain_step_ms])
    return {"train_ms": statistics.median(train_ms), "plain_ms": statistics.median(plain_ms),
            "ratio": statistics.median(t / p for t, p in zip(train_ms, plain_ms))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", type=Path, default=EXPERIMENT)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="experiment override")
    args = parser.parse_args()
    result = compare(args.batch_size, args.steps, args.rounds, args.set, args.experiment)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"# {args.experiment.name} {' '.join(args.set)}, batch {args.batch_size}, {args.steps} steps x "
          f"{args.rounds} rounds; device {device}")
    print("| largebatch train step ms | plain loop step ms | train / plain (median of rounds) |")
    print("|---|---|---|")
    print(f"| {result['train_ms']:.2f} | {result['plain_ms']:.2f} | {result['ratio']:.2f} |")


if __name__ == "__main__":
    main()
