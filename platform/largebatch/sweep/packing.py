"""How many trials of a sweep share one GPU (``resources.pack: true``): measured by a short probe on a GPU.

The probe trains the sweep's most memory-hungry trial (the largest micro-batch of its grid, sampled keys at their
upper bounds) for a few steps in a Ray task holding one GPU, with the training split on the device as training
puts it, and reads torch's peak allocated memory. Each trial process also holds a CUDA context and allocator
slack, so a trial is counted as ``peak × MEMORY_SLACK + CONTEXT_BYTES``, and the GPU as ``USABLE_SHARE`` of its
memory; the result is capped at ``MAX_TRIALS_PER_GPU`` (beyond that, trials mostly wait for each other's kernels).
"""

from __future__ import annotations

import math
from typing import Any

from largebatch.core.errors import ConfigError
from largebatch.sweep.space import Sweep, extremes
from largebatch.train.config import ExperimentConfig

CONTEXT_BYTES = 600 * 2**20  # a CUDA context and torch's kernels, per process
MEMORY_SLACK = 1.25  # the caching allocator's fragmentation and the eval batches over the measured training peak
USABLE_SHARE = 0.9
MAX_TRIALS_PER_GPU = 16
PROBE_STEPS = 3


def trials_per_gpu(peak_bytes: int, gpu_bytes: int) -> int:
    """Trials of ``peak_bytes`` each that fit in a GPU of ``gpu_bytes`` (at least 1, at most MAX_TRIALS_PER_GPU)."""
    per_trial = peak_bytes * MEMORY_SLACK + CONTEXT_BYTES
    return max(1, min(MAX_TRIALS_PER_GPU, math.floor(USABLE_SHARE * gpu_bytes / per_trial)))


def largest_trial(sweep: Sweep) -> ExperimentConfig:
    """The trial config with the largest micro-batch: every grid cell, sampled keys at their upper bound."""
    sampled = {key: extremes(dist)[-1] for key, dist in sweep.config.sample.items()}
    configs = [sweep.experiment_for({**cell, **sampled}) for cell in sweep.cells()]

    def micro_batch(config: ExperimentConfig) -> int:
        return min(config.batch_size, config.max_micro_batch or config.batch_size)

    return max(configs, key=micro_batch)


def measure_peak_memory(config: ExperimentConfig) -> tuple[int, int]:
    """(peak allocated bytes of ``PROBE_STEPS`` training steps of ``config`` on this process's GPU, its memory)."""
    import torch

    from largebatch.data import TensorBatches
    from largebatch.train.runner import prepare

    if not torch.cuda.is_available():
        raise ConfigError("'true' measures a trial on a GPU, but the probe found no CUDA device; state the trials "
                          "per GPU instead (pack: N)")
    device = torch.device("cuda")
    data, module, plan = prepare(config)
    torch.cuda.reset_peak_memory_stats(device)
    module.to(device)
    optimizer = module.configure_optimizers()["optimizer"]
    train = tuple(t.to(device) for t in data.splits.train)
    batches = iter(TensorBatches(train, min(plan.micro_batch, len(train[0])), seed=config.seed, drop_last=False,
                                 transform=data.transform))
    for _ in range(PROBE_STEPS):
        loss_sum, _, count = module.batch_losses(next(batches))
        (loss_sum / count).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device), torch.cuda.get_device_properties(device).total_memory


def probe_trials_per_gpu(sweep: Sweep, cpu: float) -> int:
    """Trials per GPU for ``sweep``, measured in a Ray task that holds one GPU (and ``cpu`` CPUs) of the cluster."""
    import ray

    task: Any = ray.remote(num_gpus=1, num_cpus=cpu)(measure_peak_memory)
    try:
        peak, total = ray.get(task.remote(largest_trial(sweep)))
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, ConfigError):
            raise ConfigError(f"{sweep.source}: key 'resources.pack': {err.cause}") from None
        raise
    return trials_per_gpu(peak, total)
