"""fast_cifar: an airbench-style network for CIFAR-sized images (Jordan 2024, "94% on CIFAR-10 in
3.29 seconds on a single GPU"; after Page 2018 and hlb-CIFAR10), our own implementation of the
paper's description, for paper-scale LiRA / RMIA with hundreds of reference models.

- A first 2x2 convolution initialised by **patch whitening** from the training images
  (:meth:`FastCifar.init_from_data`, called by the trainer before the first epoch): for the
  uncentered second moment M = E[p p^T] of the (C*2*2)-dim input patches, M = V diag(lambda) V^T,
  the filters are the rows of diag(lambda + eps)^-1/2 V^T and their negatives (2*C*4 channels, then
  GELU), so the filter responses have second moment diag(lambda / (lambda + eps)) ~ I. As in the
  paper the whitening weights are **frozen** (``requires_grad`` False); its bias trains.
- Three blocks conv3x3 -> max-pool 2 -> BatchNorm -> GELU -> conv3x3 -> BatchNorm -> GELU (widths
  64-256-256), a global max-pool, the features scaled by 1/9 (the paper's downscaled logits) and the
  linear head. BatchNorm with fast momentum (0.4 in torch's convention) and no trainable scale.
- The recipe (:data:`RECIPE`, applied by ``overconf.config.presets`` wherever fast_cifar is the
  architecture): Nesterov SGD, label smoothing 0.2, flip and 2-pixel translate augmentation,
  about 10 epochs with a triangular learning rate, and an EMA of the weights (airbench's lookahead
  / EMA, in its simpler EMA form), batch 1024.

Left out of airbench: the per-group lr scaling of BatchNorm biases, dirac init, freezing the
whitening bias after 3 epochs, alternating flips, test-time augmentation and torch.compile.
BatchNorm makes it a sequential model (the batched trainer refuses BatchNorm): reference models
train one after another, or as executor tasks. The whitening statistics come from the model's own
training images (a data-dependent init: part of the training, so DP-SGD does not cover it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from overconf.core.errors import ConfigError
from .base import MODELS, Classifier

WHITEN_KERNEL = 2


def patch_moment(x: torch.Tensor, kernel: int = WHITEN_KERNEL) -> torch.Tensor:
    """Uncentered second moment E[p p^T] of every kernel x kernel patch p of ``x`` [N, C, H, W]
    (float64), p flattened in a conv weight's (C, kh, kw) order."""
    c = x.shape[1]
    p = x.double().unfold(2, kernel, 1).unfold(3, kernel, 1)  # [N, C, H', W', k, k]
    p = p.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * kernel * kernel)
    return p.T @ p / len(p)


def whitening_filters(x: torch.Tensor, kernel: int = WHITEN_KERNEL, eps: float = 5e-4) -> torch.Tensor:
    """[2 D, C, k, k] with D = C k k: diag(lambda + eps)^-1/2 V^T of the patch moment and its negative."""
    c = x.shape[1]
    lam, vec = torch.linalg.eigh(patch_moment(x, kernel))
    w = (vec / torch.sqrt(lam.clamp_min(0) + eps)).T  # rows: v_i / sqrt(lambda_i + eps)
    w = w.reshape(-1, c, kernel, kernel)
    return torch.cat([w, -w]).float()


def conv_block(cin: int, cout: int, momentum: float) -> nn.Sequential:
    def bn():
        b = nn.BatchNorm2d(cout, momentum=momentum)
        b.weight.requires_grad_(False)
        return b
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2), bn(), nn.GELU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), bn(), nn.GELU())


@MODELS.register("fast_cifar")
class FastCifar(Classifier):
    """Whitened 2x2 conv (frozen) -> GELU -> 3 x (conv-pool-BN-GELU-conv-BN-GELU) -> max-pool -> x 1/9 -> head."""

    def __init__(self, *, in_channels: int, num_classes: int, image_size: int, dropout: float = 0.0,
                 widths: tuple[int, ...] | list[int] = (64, 256, 256), bn_momentum: float = 0.4,
                 feature_scale: float = 1 / 9, whiten_eps: float = 5e-4, whiten_images: int = 5000):
        widths = tuple(int(w) for w in widths)
        if image_size < 2 ** len(widths) * 2:
            raise ConfigError(f"fast_cifar needs images of at least {2 ** len(widths) * 2} pixels for "
                              f"{len(widths)} blocks, got {image_size}; use fewer widths")
        super().__init__(widths[-1], num_classes, dropout)
        d = in_channels * WHITEN_KERNEL * WHITEN_KERNEL
        self.whiten = nn.Conv2d(in_channels, 2 * d, WHITEN_KERNEL)
        self.whiten.weight.requires_grad_(False)
        nn.init.zeros_(self.whiten.bias)
        cins = (2 * d, *widths[:-1])
        self.blocks = nn.Sequential(*[conv_block(a, b, bn_momentum) for a, b in zip(cins, widths)])
        self.feature_scale, self.whiten_eps, self.whiten_images = feature_scale, whiten_eps, whiten_images

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Patch-whitening init of the first layer from the first ``whiten_images`` training inputs."""
        w = whitening_filters(x[: self.whiten_images].float(), WHITEN_KERNEL, self.whiten_eps)
        self.whiten.weight.copy_(w.to(self.whiten.weight.device))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.gelu(self.whiten(x)))
        return x.amax(dim=(2, 3)) * self.feature_scale


RECIPE = dict(epochs=10, optimizer="sgd", nesterov=True, lr=1.5, momentum=0.85, weight_decay=1.3e-3,
              batch_size=1024, label_smoothing=0.2, flip=True, translate=2, ema=0.98, triangular=0.23)
"""airbench's hyperparameters in per-mean-loss units (its lr 11.5 and weight decay 0.0153 are per
summed loss over 1024 images with a 1 / (1024 (1 + 1 / (1 - momentum))) scale), the EMA in place of
lookahead. Mirrored, torch-free, in :data:`overconf.config.presets.RECIPE_PRESETS` (kept equal by a test)."""
