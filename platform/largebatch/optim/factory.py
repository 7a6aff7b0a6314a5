"""``create_optimizer``: a registered optimizer over a model's parameter groups in one call (timm's convention)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from largebatch.optim.param_groups import Exclude, param_groups
from largebatch.optim.registry import entry


def create_optimizer(
    model: nn.Module,
    name: str,
    *,
    lr: float,
    weight_decay: float = 0.0,
    exclude_from_weight_decay: Exclude = Exclude(),
    exclude_from_adaptation: Exclude = Exclude(),
    **options: Any,
) -> torch.optim.Optimizer:
    """Optimizer ``name`` (see :mod:`largebatch.optim.registry`) over ``model``'s trainable parameters.

    Biases, normalisation-layer parameters and other 1-D tensors are excluded from weight decay and, for the
    layer-wise optimizers (LARS, LAMB), from the trust ratio (``adapt=False``: their plain SGD/Adam step), as
    both papers do; pass :data:`largebatch.optim.NOTHING` (or another :class:`Exclude`) to change either rule.
    ``options`` go to the constructor over the registry's defaults (e.g. SGD's momentum 0.9); an unknown one
    raises ``ValueError`` listing the allowed options.

    Example::

        optimizer = create_optimizer(model, "lamb", lr=2e-3, weight_decay=0.01, betas=(0.9, 0.999))
    """
    spec = entry(name)
    groups = param_groups(model, weight_decay=weight_decay, exclude_from_weight_decay=exclude_from_weight_decay,
                          exclude_from_adaptation=exclude_from_adaptation)
    if not spec.layerwise:
        for group in groups:
            del group["adapt"]
    return spec.cls(groups, lr=lr, **spec.checked_options(options))
