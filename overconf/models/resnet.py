"""ResNets for small images (He et al. 2016) in the CIFAR variant: 3x3 stem, stride 1, no max-pool."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import MODELS, Classifier


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(Classifier):
    def __init__(self, *, in_channels: int, num_classes: int, widths: tuple[int, ...],
                 blocks: tuple[int, ...], dropout: float = 0.0):
        super().__init__(widths[-1], num_classes, dropout)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers, cin = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(BasicBlock(cin, w, 2 if (i > 0 and j == 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1).flatten(1)


@MODELS.register("resnet18")
def resnet18(*, in_channels: int, num_classes: int, image_size: int, dropout: float = 0.0,
             width: int = 64) -> ResNet:
    """ResNet-18: four stages of two basic blocks, widths 64-128-256-512 (scaled by ``width``)."""
    return ResNet(in_channels=in_channels, num_classes=num_classes, dropout=dropout,
                  widths=tuple(width * m for m in (1, 2, 4, 8)), blocks=(2, 2, 2, 2))


@MODELS.register("small_resnet")
def small_resnet(*, in_channels: int, num_classes: int, image_size: int, dropout: float = 0.0,
                 width: int = 16) -> ResNet:
    """A three-stage ResNet with one block per stage (widths 16-32-64): trains in seconds on CPU."""
    return ResNet(in_channels=in_channels, num_classes=num_classes, dropout=dropout,
                  widths=(width, 2 * width, 4 * width), blocks=(1, 1, 1))
