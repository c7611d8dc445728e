"""Label-preserving augmentations of model inputs [N, C, H, W] (normalized images), for
augmented queries: LiRA's named queries (Carlini et al. 2022, Sec. 5.2: mirror and small
shifts, log-likelihood ratios averaged over queries), the label-only attacks' flip / shift views
(Choquette-Choo et al. 2021) and seeded Gaussian noise. Shifts pad by replicating the border, so
the background stays background.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from overconf.core.errors import ConfigError

SHIFT_PIXELS = 2
"""shift of the ``shift`` queries (Carlini et al. used 4 px of 32 for CIFAR-10)"""


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror image: x[..., w] -> x[..., W - 1 - w]."""
    return x.flip(-1)


def shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Translate by (dx, dy) pixels (right, down), padding with the replicated border."""
    p = max(abs(dx), abs(dy))
    if p == 0:
        return x.clone()
    h, w = x.shape[-2:]
    padded = F.pad(x, (p, p, p, p), mode="replicate")
    return padded[..., p - dy: p - dy + h, p - dx: p - dx + w].contiguous()


QUERIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "flip": hflip,
    "shift_right": lambda x: shift(x, SHIFT_PIXELS, 0),
    "shift_left": lambda x: shift(x, -SHIFT_PIXELS, 0),
    "shift_down": lambda x: shift(x, 0, SHIFT_PIXELS),
    "shift_up": lambda x: shift(x, 0, -SHIFT_PIXELS),
}
"""named augmented queries (each also registered as a signal, see overconf.reference.signals)"""

GROUPS = {"flip": ["flip"], "shift": ["shift_right", "shift_left", "shift_down", "shift_up"]}
"""what an attack's ``augment: [flip, shift]`` expands to"""


def expand_queries(names, where: str) -> list[str]:
    """``[flip, shift]`` -> the named queries, in a fixed order; unknown names are ConfigErrors."""
    out: list[str] = []
    for name in names or ():
        if name in GROUPS:
            out += [q for q in GROUPS[name] if q not in out]
        elif name in QUERIES:
            out += [name] if name not in out else []
        else:
            raise ConfigError(f"{where}: unknown augmentation '{name}'; use any of: "
                              f"{', '.join([*GROUPS, *QUERIES])}")
    return out


@dataclass(frozen=True)
class FlipShift:
    """Horizontal flip (optional), then a shift by (dx, dy) pixels."""

    flip: bool = False
    dx: int = 0
    dy: int = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return shift(hflip(x) if self.flip else x, self.dx, self.dy)


def flip_shift_views(flip: bool = True, max_shift: int = 1) -> list[FlipShift]:
    """The identity first, then every (flip, dx, dy) with |dx| + |dy| <= max_shift
    (Choquette-Choo et al. 2021 use shifts on such an L1 ball; flips double the set)."""
    if max_shift < 0:
        raise ConfigError(f"augmentation shift must be >= 0, got {max_shift}")
    offsets = [(dx, dy) for dx in range(-max_shift, max_shift + 1) for dy in range(-max_shift, max_shift + 1)
               if abs(dx) + abs(dy) <= max_shift]
    offsets.sort(key=lambda o: (abs(o[0]) + abs(o[1]), o))
    return [FlipShift(f, dx, dy) for f in ((False, True) if flip else (False,)) for dx, dy in offsets]


def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """x + sigma * N(0, I), drawn on the CPU from ``generator`` (the same draws on any device)."""
    return x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)


def random_flip_translate(x: torch.Tensor, flip: bool, translate: int, generator: torch.Generator) -> torch.Tensor:
    """Training augmentation of a batch [B, C, H, W] (airbench, Jordan 2024; Page 2018): each image
    mirrored with probability 1/2 (``flip``) and shifted by (dx, dy), each uniform in
    [-translate, translate], padding with the reflected border (airbench: reflect padding and a
    random crop). Draws come from ``generator`` (on ``x``'s device), flips first, then dx, then dy."""
    b = len(x)
    if flip:
        mirror = torch.rand(b, generator=generator, device=x.device) < 0.5
        x = torch.where(mirror.view(-1, 1, 1, 1), x.flip(-1), x)
    t = int(translate)
    if t <= 0:
        return x
    shifts = torch.randint(-t, t + 1, (2, b), generator=generator, device=x.device)
    h, w = x.shape[-2:]
    padded = F.pad(x, (t, t, t, t), mode="reflect")
    rows = torch.arange(h, device=x.device) + t - shifts[1][:, None]  # [B, H]: row r of the output
    cols = torch.arange(w, device=x.device) + t - shifts[0][:, None]  # [B, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # one gather, no host sync
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return out.permute(0, 3, 1, 2).contiguous(  # the input's layout (channels_last on CUDA)
        memory_format=torch.channels_last if channels_last else torch.contiguous_format)
