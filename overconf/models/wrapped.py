"""A user's ``nn.Module`` as a :class:`Classifier` (the audit of your own model, overconf.runner.audit).

overconf reads every model through ``features(x)`` and a linear ``head`` (cached outputs, post-hoc
calibrations, reference-model logits). A module that is already a :class:`Classifier` is used as
it is. Any other module ``net`` (``net(x)`` = logits [N, K]) is wrapped: ``features(x) = net(x)``
and the head is the fixed identity map (weight I_K and bias 0 as buffers, never trained), so the
wrapper's logits are exactly the module's, training changes only ``net``, and the module's own
state dict loads into ``wrapper.net``.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Classifier


class IdentityHead(nn.Module):
    """The head of a wrapped module: z = f, with ``weight`` = I_K and ``bias`` = 0 stored as buffers
    (a copy into ``nn.Linear(K, K)``, as the calibrations make, computes the same logits)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.in_features = self.out_features = num_classes
        self.register_buffer("weight", torch.eye(num_classes))
        self.register_buffer("bias", torch.zeros(num_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class WrappedModule(Classifier):
    """``forward(x) = net(x)``: a user's module whose outputs are the K class logits."""

    def __init__(self, net: nn.Module, num_classes: int):
        super().__init__(num_classes, num_classes)
        self.net = net
        self.head = IdentityHead(num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def as_classifier(module: nn.Module, num_classes: int) -> Classifier:
    """``module`` itself when it is a :class:`Classifier`, else :class:`WrappedModule` around it."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"a model factory must return a torch.nn.Module, got {type(module).__name__}")
    return module if isinstance(module, Classifier) else WrappedModule(module, num_classes)


def inner_module(model: nn.Module) -> nn.Module:
    """The user's module inside ``model`` (the module itself when it was not wrapped)."""
    return model.net if isinstance(model, WrappedModule) else model
