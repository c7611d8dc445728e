"""Output post-processing (ART's post-processors): top-k, rounding, label-only. Each keeps the
predicted label (ties created by the transform are broken in favour of the original argmax)."""
from __future__ import annotations

import torch

from overconf.core.errors import ConfigError
from .base import DEFENSES, FLOOR, ReleaseDefense, floor_log

TIE = 1e-12
"""added to the predicted class's released probability (below any released precision) so a tie
the transform creates keeps the original argmax"""


def _keep_label(p: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    return p.scatter_add(1, label[:, None], torch.full((len(p), 1), TIE, dtype=p.dtype))


@DEFENSES.register("top_k")
class TopK(ReleaseDefense):
    """Release the k largest probabilities; the rest are zeroed (``rest: zero``, ART) or share
    the remaining mass evenly (``rest: spread``, the vector still sums to 1)."""

    name = "top_k"

    def __init__(self, k: int = 1, rest: str = "zero"):
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"defense top_k: k must be a positive integer, got {k!r}")
        if rest not in ("zero", "spread"):
            raise ConfigError(f"defense top_k: rest '{rest}' is not allowed; use one of: zero, spread")
        self.k, self.rest = k, rest

    def release(self, log_probs: torch.Tensor) -> torch.Tensor:
        p = log_probs.double().exp()
        k = min(self.k, p.shape[1])
        top = p.topk(k, dim=1)
        out = torch.zeros_like(p).scatter(1, top.indices, top.values)
        if self.rest == "spread" and k < p.shape[1]:
            left = (1 - top.values.sum(1, keepdim=True)).clamp_min(0) / (p.shape[1] - k)
            out = torch.where(out > 0, out, left.expand_as(out))
        return floor_log(_keep_label(out, p.argmax(1)))

    def describe(self) -> dict:
        return {"k": self.k}


@DEFENSES.register("rounding")
class Rounding(ReleaseDefense):
    """Probabilities rounded to d decimals (not renormalised; zeros floored at FLOOR)."""

    name = "rounding"

    def __init__(self, d: int = 1):
        if not isinstance(d, int) or isinstance(d, bool) or d < 0:
            raise ConfigError(f"defense rounding: d must be an integer >= 0, got {d!r}")
        self.d = d

    def release(self, log_probs: torch.Tensor) -> torch.Tensor:
        p = log_probs.double().exp()
        return floor_log(_keep_label(torch.round(p, decimals=self.d), p.argmax(1)))

    def describe(self) -> dict:
        return {"decimals": self.d}


@DEFENSES.register("label_only")
class LabelOnly(ReleaseDefense):
    """One-hot of the predicted class (zeros floored at FLOOR)."""

    name = "label_only"

    def release(self, log_probs: torch.Tensor) -> torch.Tensor:
        onehot = torch.nn.functional.one_hot(log_probs.argmax(1), log_probs.shape[1]).double()
        return floor_log(onehot.clamp_min(FLOOR))
