"""Input transformations for augmented queries: flips and shifts (label-only attacks; LiRA's
augmented queries) and seeded Gaussian noise. Everything acts on model inputs [N, C, H, W]."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import ConfigError


def shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Translate images by (dx, dy) pixels (right, down), filling the border by reflection."""
    if dx == 0 and dy == 0:
        return x
    d = max(abs(dx), abs(dy))
    h, w = x.shape[-2:]
    padded = F.pad(x, (d, d, d, d), mode="reflect")
    return padded[..., d - dy: d - dy + h, d - dx: d - dx + w]


@dataclass(frozen=True)
class FlipShift:
    """Horizontal flip (optional), then a shift by (dx, dy) pixels."""

    flip: bool = False
    dx: int = 0
    dy: int = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return shift(x.flip(-1) if self.flip else x, self.dx, self.dy)


def flip_shift_views(flip: bool = True, max_shift: int = 1) -> list[FlipShift]:
    """The identity first, then every (flip, dx, dy) with |dx| + |dy| <= max_shift
    (Choquette-Choo et al. 2021 use shifts on such an L1 sphere; flips double the set)."""
    if max_shift < 0:
        raise ConfigError(f"augmentation shift must be >= 0, got {max_shift}")
    offsets = [(dx, dy) for dx in range(-max_shift, max_shift + 1) for dy in range(-max_shift, max_shift + 1)
               if abs(dx) + abs(dy) <= max_shift]
    offsets.sort(key=lambda o: (abs(o[0]) + abs(o[1]), o))
    return [FlipShift(f, dx, dy) for f in ((False, True) if flip else (False,)) for dx, dy in offsets]


def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """x + sigma * N(0, I), drawn on the CPU from ``generator`` (the same draws on any device)."""
    return x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)
