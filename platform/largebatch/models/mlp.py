"""A multilayer perceptron on flattened inputs."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from largebatch.models.layers import CLASSIFICATION_META, Named, check_positive, classification_shape, unit


class MLP(nn.Sequential):
    """flatten → (fc{i} → [bn{i}] → ReLU) for each width in ``hidden`` → head. Default PyTorch init."""

    META_KEYS = CLASSIFICATION_META

    def __init__(self, meta: Mapping[str, Any], *, hidden: Sequence[int] = (256, 256), batch_norm: bool = False) -> None:
        check_positive("mlp", **{f"hidden[{i}]": h for i, h in enumerate(hidden)})
        num_classes, input_shape = classification_shape(meta)
        layers: Named = [("flatten", nn.Flatten())]
        features = math.prod(input_shape)
        for index, width in enumerate(hidden, start=1):
            fc = nn.Linear(features, width, bias=not batch_norm)
            layers += unit(f"fc{index}", fc, f"bn{index}", nn.BatchNorm1d(width) if batch_norm else None)
            features = width
        layers.append(("head", nn.Linear(features, num_classes)))
        super().__init__(OrderedDict(layers))
