"""Telemetry callbacks for Lightning: trust ratios, gradient norms, generalization gap, divergence, throughput,
the gradient noise scale and sharpness, progress lines for logs, and the recorder of a changing batch size.

Each callback has one concern and writes straight to ``trainer.loggers`` (``log_metrics``, or whole blocks of
steps with ``log_metric_block`` where a logger has it; per-layer tables also to loggers with ``log_layer_block`` or
``log_layers``: the Protocols of :mod:`.emit`) at ``step`` = ``trainer.global_step`` after the optimizer step concerned.
The runner registers them as one :class:`CallbackGroup` (Lightning's per-callback hook dispatch is a cost of its
own); :func:`find` looks a callback up by type inside groups.
"""

from largebatch.train.callbacks.batch_schedule import BatchScheduleRecorder
from largebatch.train.callbacks.divergence import DivergenceGuard
from largebatch.train.callbacks.generalization_gap import GeneralizationGap
from largebatch.train.callbacks.grad_norm import GradNormMonitor
from largebatch.train.callbacks.group import CallbackGroup, find
from largebatch.train.callbacks.noise_scale import NoiseScaleMonitor
from largebatch.train.callbacks.progress import ProgressLog
from largebatch.train.callbacks.sharpness import SharpnessProbe
from largebatch.train.callbacks.throughput import Throughput
from largebatch.train.callbacks.trust_ratio import TrustRatioMonitor

__all__ = [
    "BatchScheduleRecorder", "CallbackGroup", "DivergenceGuard", "GeneralizationGap", "GradNormMonitor",
    "NoiseScaleMonitor", "ProgressLog", "SharpnessProbe",
    "Throughput", "TrustRatioMonitor", "find",
]
