"""Telemetry callbacks for Lightning: trust ratios, gradient norms, generalization gap, divergence, throughput,
the gradient noise scale and sharpness.

Each callback has one concern and writes straight to ``trainer.loggers`` (``log_metrics``; per-layer tables
also to loggers with ``log_layers``) at ``step`` = ``trainer.global_step`` after the optimizer step concerned.
"""

from largebatch.train.callbacks.divergence import DivergenceGuard
from largebatch.train.callbacks.generalization_gap import GeneralizationGap
from largebatch.train.callbacks.grad_norm import GradNormMonitor
from largebatch.train.callbacks.noise_scale import NoiseScaleMonitor
from largebatch.train.callbacks.sharpness import SharpnessProbe
from largebatch.train.callbacks.throughput import Throughput
from largebatch.train.callbacks.trust_ratio import TrustRatioMonitor

__all__ = [
    "DivergenceGuard", "GeneralizationGap", "GradNormMonitor", "NoiseScaleMonitor", "SharpnessProbe", "Throughput",
    "TrustRatioMonitor",
]
