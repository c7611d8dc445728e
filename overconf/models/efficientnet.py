"""EfficientNet-B0 (Tan & Le 2019) for small images: torchvision's network with a stride-1 3x3
stem over the dataset's channels, so 32x32 inputs keep spatial detail."""
from __future__ import annotations

import torch
from torch import nn

from .base import MODELS, Classifier


@MODELS.register("efficientnet_b0")
class EfficientNetB0(Classifier):
    """EfficientNet-B0 (swish), CIFAR variant: stride-1 3x3 stem."""

    def __init__(self, *, in_channels: int, num_classes: int, image_size: int, dropout: float = 0.0,
                 stochastic_depth: float = 0.2):
        from torchvision.models import efficientnet_b0 as tv_efficientnet_b0  # heavy (~2 s): on use

        net = tv_efficientnet_b0(weights=None, stochastic_depth_prob=stochastic_depth)
        super().__init__(net.classifier[1].in_features, num_classes, dropout)
        stem = net.features[0][0]
        net.features[0][0] = nn.Conv2d(in_channels, stem.out_channels, 3, stride=1, padding=1, bias=False)
        self.body = net.features
        self.pool = net.avgpool

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x)).flatten(1)
