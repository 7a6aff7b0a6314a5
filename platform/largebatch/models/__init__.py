"""Models for the large-batch workloads, built by name from a dataset's meta.

Depends on torch only. Layers carry readable names (``conv1.weight``, ``bn1.bias``, ``head.weight``) for
per-layer telemetry.
"""

from largebatch.models.convnets import CNN1D, DigitsCNN
from largebatch.models.mlp import MLP
from largebatch.models.registry import MODELS, build_model
from largebatch.models.resnet import ResNet
from largebatch.models.tiny_bert import TinyBert

__all__ = ["CNN1D", "MLP", "MODELS", "DigitsCNN", "ResNet", "TinyBert", "build_model"]
