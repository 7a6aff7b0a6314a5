"""The model registry and ``build_model``, which checks names, options and the dataset's meta before building."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from largebatch.models.convnets import CNN1D, DigitsCNN
from largebatch.models.mlp import MLP
from largebatch.models.resnet import ResNet
from largebatch.models.tiny_bert import TinyBert

MODELS: dict[str, type[nn.Module]] = {
    "cnn1d": CNN1D,
    "digits_cnn": DigitsCNN,
    "tiny_bert": TinyBert,
    "resnet": ResNet,
    "mlp": MLP,
}


def build_model(name: str, meta: Mapping[str, Any], **options: Any) -> nn.Module:
    """Build model ``name`` for a dataset described by ``meta`` (``Splits.meta``), with keyword ``options``.

    Raises ``ValueError`` for an unknown name or option (naming the allowed ones), for invalid option values and
    when ``meta`` lacks what the model reads (e.g. ``num_classes`` and ``input_shape`` for classifiers).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    cls = MODELS[name]
    allowed = [p.name for p in inspect.signature(cls).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"model '{name}': unknown option '{unknown[0]}'; allowed: {', '.join(allowed)}")
    missing = [key for key in cls.META_KEYS if key not in meta]
    if missing:
        raise ValueError(
            f"model '{name}' needs meta keys {', '.join(cls.META_KEYS)} (task {meta.get('task')!r} lacks "
            f"{', '.join(missing)})"
        )
    return cls(meta, **options)
