"""The CIFAR ResNet of He, Zhang, Ren & Sun 2016 ("Deep Residual Learning for Image Recognition", §4.2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from largebatch.models.layers import CLASSIFICATION_META, check_positive, classification_shape, scaled


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers and an identity shortcut; where the shape changes the shortcut subsamples and pads
    the new channels with zeros (§4.2, option A: parameter-free, as the paper uses on CIFAR-10)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))
        return F.relu(out + shortcut)


class ResNet(nn.Module):
    """ResNet-(6n+2) for small images: a 3×3 stem and three stages of ``n`` basic blocks with 16, 32 and 64 filters
    (times ``width``; stages 2 and 3 start with stride 2), global average pooling and a linear head.

    ``depth`` 20, 32, 44, 56, 110 are the paper's nets. Convolutions use He et al. 2015's normal initialisation
    (fan-out, as torchvision does; the paper cites it), BatchNorm starts at weight 1 and bias 0, the head keeps
    PyTorch's default.
    """

    META_KEYS = CLASSIFICATION_META

    def __init__(self, meta: Mapping[str, Any], *, depth: int = 20, width: float = 1.0) -> None:
        super().__init__()
        check_positive("resnet", width=width)
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"model 'resnet': option 'depth' must be 6n+2 with n >= 1 (8, 14, 20, ...), got {depth}")
        num_classes, (in_channels, _, _) = classification_shape(meta)
        blocks = (depth - 2) // 6
        channels = [scaled(c, width) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(in_channels, channels[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[0])
        stages, previous = [], channels[0]
        for index, out in enumerate(channels):
            first = BasicBlock(previous, out, stride=1 if index == 0 else 2)
            stages.append(nn.Sequential(first, *(BasicBlock(out, out, stride=1) for _ in range(blocks - 1))))
            previous = out
        self.stage1, self.stage2, self.stage3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels[-1], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.head(self.pool(x).flatten(1))
