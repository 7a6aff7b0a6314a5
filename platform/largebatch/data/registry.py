"""The dataset registry and ``build_dataset``, which checks names and options before building."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from largebatch.data.cifar10 import build_cifar10
from largebatch.data.digits import build_digits
from largebatch.data.mnist1d import build_mnist1d
from largebatch.data.splits import Splits, check_options
from largebatch.data.text import build_text

DATASETS: dict[str, Callable[..., Splits]] = {
    "mnist1d": build_mnist1d,
    "digits": build_digits,
    "text": build_text,
    "cifar10": build_cifar10,
}


def build_dataset(name: str, *, seed: int = 0, **options: Any) -> Splits:
    """Build dataset ``name`` with ``seed`` and its keyword ``options``.

    Raises ``ValueError`` for an unknown name or option (naming the allowed ones) and for invalid values.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    builder = DATASETS[name]
    check_options("dataset", name, builder, options)
    return builder(seed=seed, **options)
