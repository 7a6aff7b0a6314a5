"""The ``Splits`` container and the seeded splitting and standardisation steps every dataset shares."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class Splits:
    """Train/val/test tensor tuples (all tensors of a tuple share dim 0) and the dataset's metadata.

    ``meta`` describes the task, e.g. ``{"task": "classification", "num_classes": 10, "input_shape": (1, 40)}``
    or ``{"task": "mlm", "vocab_size": V, "seq_len": L, "mask_token_id": 2, "pad_token_id": 0}``.
    """

    train: tuple[Tensor, ...]
    val: tuple[Tensor, ...]
    test: tuple[Tensor, ...] | None
    meta: dict[str, Any]


def check_options(kind: str, name: str, builder: Callable[..., Any], options: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the first option ``builder`` does not take as a keyword, and the allowed ones."""
    allowed = [p.name for p in inspect.signature(builder).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{kind} '{name}': unknown option '{unknown[0]}'; allowed: {', '.join(allowed)}")


def check_fraction(dataset: str, option: str, value: float) -> None:
    """Raise ``ValueError`` unless ``0 < value < 1``."""
    if not 0.0 < value < 1.0:
        raise ValueError(f"dataset '{dataset}': option '{option}' must be in (0, 1), got {value!r}")


def holdout(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices ``(kept, held_out)`` of a seeded shuffle of ``range(n)``; ``held_out`` has ``round(fraction * n)``.

    Both parts are non-empty (the held-out count is clamped to ``[1, n - 1]``), so ``n`` must be at least 2.
    """
    if n < 2:
        raise ValueError(f"cannot hold out a split from {n} sample(s); need at least 2")
    held = min(n - 1, max(1, round(fraction * n)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[held:], order[:held]


def standardise(train: Tensor, *others: Tensor) -> tuple[list[Tensor], dict[str, tuple[float, ...]]]:
    """Standardise ``train`` and ``others`` per channel (dim 1) with the mean and std of ``train`` alone.

    Returns the standardised tensors (train first) and ``{"mean": ..., "std": ...}`` for the dataset's meta.
    """
    dims = [d for d in range(train.dim()) if d != 1]
    mean = train.mean(dim=dims, keepdim=True)
    std = train.std(dim=dims, keepdim=True).clamp_min(1e-8)
    out = [(t - mean) / std for t in (train, *others)]
    return out, {"mean": tuple(mean.flatten().tolist()), "std": tuple(std.flatten().tolist())}


def classification_splits(
    x: Tensor, y: Tensor, test: tuple[Tensor, Tensor], *, val_fraction: float, seed: int, num_classes: int
) -> Splits:
    """Carve a seeded validation share from the train pool ``(x, y)`` and standardise with train statistics."""
    train_idx, val_idx = holdout(len(y), val_fraction, seed)
    (x_train, x_val, x_test), stats = standardise(x[train_idx], x[val_idx], test[0])
    meta = {"task": "classification", "num_classes": num_classes, "input_shape": tuple(x.shape[1:]), **stats}
    return Splits(train=(x_train, y[train_idx]), val=(x_val, y[val_idx]), test=(x_test, test[1]), meta=meta)
