"""Small pieces shared by the models: named layer units, width scaling and classification meta."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

CLASSIFICATION_META = ("num_classes", "input_shape")
Named = list[tuple[str, nn.Module]]


def unit(name: str, layer: nn.Module, norm_name: str, norm: nn.Module | None) -> Named:
    """``layer`` as ``name``, ``norm`` as ``norm_name`` when given, then a ReLU as ``{name}_relu``."""
    return [(name, layer), *([(norm_name, norm)] if norm is not None else []), (f"{name}_relu", nn.ReLU())]


def scaled(channels: int, width: float) -> int:
    """``channels`` times the ``width`` multiplier, rounded, at least 1."""
    return max(1, round(channels * width))


def check_positive(model: str, **values: float) -> None:
    """Raise ``ValueError`` naming the first option whose value is not positive."""
    for option, value in values.items():
        if value <= 0:
            raise ValueError(f"model '{model}': option '{option}' must be positive, got {value!r}")


def check_dropout(model: str, dropout: float) -> None:
    """Raise ``ValueError`` unless ``0 <= dropout < 1``."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"model '{model}': option 'dropout' must be in [0, 1), got {dropout!r}")


def classification_shape(meta: Mapping[str, Any]) -> tuple[int, tuple[int, ...]]:
    """``(num_classes, input_shape)`` from a classification dataset's meta."""
    return int(meta["num_classes"]), tuple(int(d) for d in meta["input_shape"])
