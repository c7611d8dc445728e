"""SalemCNN (Salem et al., ML-Leaks, NDSS 2019), as in the reference study: conv5x5-32, max-pool,
conv5x5-32, max-pool, fc-128, fc-K, ReLU."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import MODELS, Classifier


@MODELS.register("salem_cnn")
class SalemCNN(Classifier):
    """SalemCNN (ML-Leaks): conv5x5-32, pool, conv5x5-32, pool, fc-128, fc-K, ReLU."""

    def __init__(self, *, in_channels: int, num_classes: int, image_size: int, dropout: float = 0.0,
                 width: int = 32, hidden: int = 128):
        super().__init__(hidden, num_classes, dropout)
        self.conv1 = nn.Conv2d(in_channels, width, 5, padding=2)
        self.conv2 = nn.Conv2d(width, width, 5, padding=2)
        self.fc = nn.Linear(width * (image_size // 4) ** 2, hidden)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc(x.flatten(1)))
