"""Per-trial resources from what the cluster has (``ray.cluster_resources()``), never more than it can give.

A trial asking for a GPU on a CPU-only cluster, or for more CPUs than any cluster total, would stay PENDING
forever (ray#18332), so impossible requests are a ConfigError up front and ``gpu: auto`` resolves to 0 there.
With ``devices_per_trial`` = n > 1 the trial is a Ray Train run of n workers, each with the per-trial
resources; the Tune trial that drives it holds no CPU (a token of memory only), and the number of trials at
once is capped at what fits, as Ray's Train + Tune guide advises.

``resources.pack`` shares GPUs between trials: each trial asks for 1/N of a GPU (N stated, or measured by a probe
that :func:`plan_resources` calls, see :mod:`largebatch.sweep.packing`), so Ray runs N trials per GPU at once
(also bounded by the CPUs they ask for).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from largebatch.core.errors import ConfigError
from largebatch.sweep.config import ResourcesConfig

DRIVER_MEMORY = 2**20  # bytes: a data-parallel trial's driver must request something, and not a CPU
GPU_FRACTION_DIGITS = 4  # Ray accepts fractional GPU requests to 4 decimals (1/3 → 0.3333: three fit)


@dataclass(frozen=True)
class TrialResources:
    """CPUs and GPUs per worker, workers per trial, and how many trials fit in the cluster at once."""

    cpu: float
    gpu: float
    workers: int
    fit: int
    per_gpu: int = 1  # trials sharing one GPU (resources.pack)

    def tune_request(self) -> dict[str, float]:
        """What ``tune.with_resources`` reserves for each trial."""
        if self.workers > 1:
            return {"cpu": 0, "memory": DRIVER_MEMORY}
        return {"cpu": self.cpu, "gpu": self.gpu}

    def describe(self, cluster: Mapping[str, float]) -> str:
        per = f"{self.cpu:g} CPU, {self.gpu:g} GPU"
        who = f"{self.workers} workers × ({per})" if self.workers > 1 else per
        if self.per_gpu > 1:
            who += f" ({self.per_gpu} trials per GPU)"
        return (f"resources per trial: {who}; cluster: {cluster.get('CPU', 0):g} CPU, {cluster.get('GPU', 0):g} GPU"
                f" → up to {self.fit} trial{'s' if self.fit != 1 else ''} at once")


def plan_resources(
    requested: ResourcesConfig, workers: int, cluster: Mapping[str, float], source: str,
    probe: Callable[[], int] | None = None,
) -> TrialResources:
    """Resolve ``gpu: auto`` and ``pack`` against ``cluster`` and check the request fits; ConfigError naming the key
    if not. ``probe`` gives the trials per GPU for ``pack: true`` (it may raise ConfigError)."""
    cpus, gpus = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    gpu = (1.0 if gpus >= 1 else 0.0) if requested.gpu == "auto" else float(requested.gpu)
    per_gpu = 1
    if requested.pack is not False and gpus > 0:
        if workers > 1:
            raise ConfigError(f"{source}: key 'resources.pack': packing shares a GPU between single-device trials; "
                              f"devices_per_trial is {workers}")
        if requested.gpu != "auto":
            raise ConfigError(f"{source}: key 'resources.pack': give either 'pack' or a 'gpu' amount, not both")
        if requested.pack is True:
            if probe is None:
                raise ConfigError(f"{source}: key 'resources.pack': 'true' needs a memory probe here; state the "
                                  "trials per GPU (pack: N)")
            per_gpu = probe()
        else:
            per_gpu = int(requested.pack)
        gpu = math.floor(10**GPU_FRACTION_DIGITS / per_gpu) / 10**GPU_FRACTION_DIGITS
    for key, each, total in (("cpu", requested.cpu, cpus), ("gpu", gpu, gpus)):
        if each * workers > total:
            times = f"{workers} workers × " if workers > 1 else ""
            raise ConfigError(f"{source}: key 'resources.{key}': a trial needs {times}{each:g} {key.upper()} but "
                              f"the cluster has {total:g}; its trials would never start")
    fit = min(math.floor(total / (each * workers)) for each, total in ((requested.cpu, cpus), (gpu, gpus)) if each > 0)
    return TrialResources(requested.cpu, gpu, workers, fit, per_gpu)
