"""Optimizer construction from an experiment's ``optimizer`` section: one registry for torch and largebatch."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from largebatch.optim import LAMB, LARS, Exclude, param_groups
from largebatch.train.config import ConfigError, OptimizerConfig

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adamw": torch.optim.AdamW,
    "adam": torch.optim.Adam,
    "adagrad": torch.optim.Adagrad,
    "lars": LARS,
    "lamb": LAMB,
}
LAYERWISE = ("lars", "lamb")
# SGD is the momentum baseline of every paper here (Goyal et al., LARS, LAMB): momentum 0.9 unless given.
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {"sgd": {"momentum": 0.9}}


def _checked_options(name: str, cls: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    reserved = {"params", "lr", "weight_decay"}
    allowed = sorted(p for p in inspect.signature(cls).parameters if p not in reserved)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"optimizer.options: unknown option(s) {', '.join(unknown)} for '{name}'; allowed: {', '.join(allowed)}"
            + ("; lr and weight_decay are set at optimizer.lr / optimizer.weight_decay" if reserved & set(options) else "")
        )
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


def build_optimizer(config: OptimizerConfig, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """The configured optimizer over ``model``'s parameter groups at peak rate ``lr``.

    Layer-wise optimizers get the adaptation exclusions as the groups' ``adapt`` flag; the others ignore it.
    """
    cls = OPTIMIZERS[config.name]
    options = {**DEFAULT_OPTIONS.get(config.name, {}), **_checked_options(config.name, cls, config.options)}
    groups = param_groups(
        model,
        weight_decay=config.weight_decay,
        exclude_from_weight_decay=Exclude(**config.exclude_from_weight_decay.model_dump()),
        exclude_from_adaptation=Exclude(**config.exclude_from_adaptation.model_dump()),
    )
    if config.name not in LAYERWISE:
        for group in groups:
            del group["adapt"]
    try:
        return cls(groups, lr=lr, **options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"optimizer '{config.name}' with options {config.options}: {err}") from None
