"""Optimizer construction from an experiment's ``optimizer`` section, through the optimizer registry
(:mod:`largebatch.optim.registry`): the same path as :func:`largebatch.optim.create_optimizer`."""

from __future__ import annotations

import torch
from torch import nn

from largebatch.core.errors import ConfigError
from largebatch.optim import Exclude, create_optimizer
from largebatch.train.config import OptimizerConfig


def build_optimizer(config: OptimizerConfig, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """The configured optimizer over ``model``'s parameter groups at peak rate ``lr``.

    Layer-wise optimizers get the adaptation exclusions as the groups' ``adapt`` flag; the others ignore it.
    A value the constructor rejects raises :class:`ConfigError` naming the optimizer and its options.
    """
    try:
        return create_optimizer(
            model, config.name, lr=lr, weight_decay=config.weight_decay,
            exclude_from_weight_decay=Exclude(**config.exclude_from_weight_decay.model_dump()),
            exclude_from_adaptation=Exclude(**config.exclude_from_adaptation.model_dump()),
            **config.options,
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"optimizer '{config.name}' with options {config.options}: {err}") from None
