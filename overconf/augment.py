"""Label-preserving augmentations of model inputs, for augmented queries.

LiRA (Carlini et al. 2022, Sec. 5.2) queries the target and every reference model on a few
augmented versions of each point (mirror, small shifts) and averages the per-query
log-likelihood ratios. These functions act on a batch [N, C, H, W] in the model's input space
(normalized images); shifts pad by replicating the border, so the background stays background.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .errors import ConfigError

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
