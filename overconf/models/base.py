from __future__ import annotations

import torch
from torch import nn

from overconf.core.device import float32_head
from overconf.core.registry import Registry

MODELS: Registry = Registry("architecture")


class Classifier(nn.Module):
    """``forward(x) = head(dropout(features(x)))`` with ``head`` an ``nn.Linear``, computed in float32
    outside autocast (:func:`overconf.core.device.float32_head`): logits are float32 under bf16 autocast."""

    def __init__(self, feature_dim: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.feature_dim = feature_dim
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return float32_head(self.head, self.dropout(self.features(x)))


def build_model(arch: str, *, in_channels: int, num_classes: int, image_size: int,
                dropout: float = 0.0, **params) -> Classifier:
    model = MODELS[arch](in_channels=in_channels, num_classes=num_classes, image_size=image_size,
                         dropout=dropout, **params)
    model.input_shape = (in_channels, image_size, image_size)  # what overconf.evaluate checks inputs against
    return model
