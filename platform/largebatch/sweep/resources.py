"""Per-trial resources from what the cluster has (``ray.cluster_resources()``), never more than it can give.

A trial asking for a GPU on a CPU-only cluster, or for more CPUs than any cluster total, would stay PENDING
forever (ray#18332), so impossible requests are a ConfigError up front and ``gpu: auto`` resolves to 0 there.
With ``devices_per_trial`` = n > 1 the trial is a Ray Train run of n workers, each with the per-trial
resources; the Tune trial that drives it holds no CPU (a token of memory only), and the number of trials at
once is capped at what fits, as Ray's Train + Tune guide advises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from largebatch.sweep.config import ResourcesConfig
from largebatch.train.config import ConfigError

DRIVER_MEMORY = 2**20  # bytes: a data-parallel trial's driver must request something, and not a CPU


@dataclass(frozen=True)
class TrialResources:
    """CPUs and GPUs per worker, workers per trial, and how many trials fit in the cluster at once."""

    cpu: float
    gpu: float
    workers: int
    fit: int

    def tune_request(self) -> dict[str, float]:
        """What ``tune.with_resources`` reserves for each trial."""
        if self.workers > 1:
            return {"cpu": 0, "memory": DRIVER_MEMORY}
        return {"cpu": self.cpu, "gpu": self.gpu}

    def describe(self, cluster: Mapping[str, float]) -> str:
        per = f"{self.cpu:g} CPU, {self.gpu:g} GPU"
        who = f"{self.workers} workers × ({per})" if self.workers > 1 else per
        return (f"resources per trial: {who}; cluster: {cluster.get('CPU', 0):g} CPU, {cluster.get('GPU', 0):g} GPU"
                f" → up to {self.fit} trial{'s' if self.fit != 1 else ''} at once")


def plan_resources(
    requested: ResourcesConfig, workers: int, cluster: Mapping[str, float], source: str
) -> TrialResources:
    """Resolve ``gpu: auto`` against ``cluster`` and check the request fits; ConfigError naming the key if not."""
    cpus, gpus = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    gpu = (1.0 if gpus >= 1 else 0.0) if requested.gpu == "auto" else float(requested.gpu)
    for key, each, total in (("cpu", requested.cpu, cpus), ("gpu", gpu, gpus)):
        if each * workers > total:
            times = f"{workers} workers × " if workers > 1 else ""
            raise ConfigError(f"{source}: key 'resources.{key}': a trial needs {times}{each:g} {key.upper()} but "
                              f"the cluster has {total:g}; its trials would never start")
    fit = min(math.floor(total / (each * workers)) for each, total in ((requested.cpu, cpus), (gpu, gpus)) if each > 0)
    return TrialResources(requested.cpu, gpu, workers, fit)
