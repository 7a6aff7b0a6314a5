"""Plain convolutional classifiers for the small offline workloads: MNIST-1D and 8×8 digits."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from torch import nn

from largebatch.models.layers import (
    CLASSIFICATION_META,
    Named,
    check_dropout,
    check_positive,
    classification_shape,
    scaled,
    unit,
)


class CNN1D(nn.Sequential):
    """The MNIST-1D reference CNN (Greydanus & Kobak 2024; ``ConvBase`` in github.com/greydanus/mnist1d).

    Three stride-2 ``Conv1d`` layers with ``channels`` filters (kernels 5, 3, 3; padding 1) and ReLU, then a
    linear head on the flattened features: 40 → 19 → 10 → 5 positions, 125 features at 25 channels. With
    ``batch_norm`` a ``BatchNorm1d`` follows each convolution (whose bias is then dropped). Default PyTorch init.
    """

    META_KEYS = CLASSIFICATION_META

    def __init__(self, meta: Mapping[str, Any], *, channels: int = 25, batch_norm: bool = False) -> None:
        check_positive("cnn1d", channels=channels)
        num_classes, (in_channels, length) = classification_shape(meta)
        layers: Named = []
        for index, kernel in enumerate((5, 3, 3), start=1):
            conv = nn.Conv1d(in_channels, channels, kernel, stride=2, padding=1, bias=not batch_norm)
            layers += unit(f"conv{index}", conv, f"bn{index}", nn.BatchNorm1d(channels) if batch_norm else None)
            in_channels, length = channels, (length + 2 - kernel) // 2 + 1
        layers += [("flatten", nn.Flatten()), ("head", nn.Linear(channels * length, num_classes))]
        super().__init__(OrderedDict(layers))


class DigitsCNN(nn.Sequential):
    """A small AlexNet-style CNN for 8×8 digits, with and without BatchNorm (the LARS paper's AlexNet vs AlexNet-BN
    contrast, You, Gitman & Ginsburg 2017).

    conv1(32) → conv2(64) → max-pool → conv3(64) → max-pool → fc1(128) → dropout → head, all 3×3 convolutions
    with padding 1 and ReLU; channel counts scale with ``width``. With ``batch_norm`` a BatchNorm follows every
    conv and ``fc1`` (bn1–bn4; their layers then have no bias). Default PyTorch init.
    """

    META_KEYS = CLASSIFICATION_META

    def __init__(
        self, meta: Mapping[str, Any], *, batch_norm: bool = False, width: float = 1.0, dropout: float = 0.0
    ) -> None:
        check_positive("digits_cnn", width=width)
        check_dropout("digits_cnn", dropout)
        num_classes, (in_channels, height, width_px) = classification_shape(meta)
        if min(height, width_px) < 4:
            raise ValueError(f"model 'digits_cnn' needs inputs of at least 4×4 pixels, got {height}×{width_px}")
        c1, c2, c3, hidden = (scaled(c, width) for c in (32, 64, 64, 128))

        def conv(index: int, c_in: int, c_out: int) -> Named:
            layer = nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm)
            return unit(f"conv{index}", layer, f"bn{index}", nn.BatchNorm2d(c_out) if batch_norm else None)

        fc1 = nn.Linear(c3 * (height // 4) * (width_px // 4), hidden, bias=not batch_norm)
        layers = [
            *conv(1, in_channels, c1),
            *conv(2, c1, c2),
            ("pool1", nn.MaxPool2d(2)),
            *conv(3, c2, c3),
            ("pool2", nn.MaxPool2d(2)),
            ("flatten", nn.Flatten()),
            *unit("fc1", fc1, "bn4", nn.BatchNorm1d(hidden) if batch_norm else None),
            ("dropout", nn.Dropout(dropout)),
            ("head", nn.Linear(hidden, num_classes)),
        ]
        super().__init__(OrderedDict(layers))
