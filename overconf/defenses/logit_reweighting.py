"""Logit reweighting (seed 003, Khalil et al. 2025, arXiv 2511.16792; code najeebjebreel/mia_analysis).

c_k = mean training logit of class k (by true label); for a query with predicted class k,
s = w cos(z, c_k) and the released logits are z' = s z + (1 - s) c_k (then softmax).

Logits from what the runner hands over: the study passes released log-probabilities log p (after
the setting's calibration). Logits are defined up to a per-row constant (softmax is shift
invariant), so this defense uses the zero-mean representative z = log p - mean_j log p_j, for the
queries and for the centroids alike; for an uncalibrated model that is the model's logits minus
their row mean (the published recipe uses the raw logits: the cosine differs only by that shift).

Labels: z' is mostly c_k, whose argmax need not be k (a weak model's class centroids, or a
negative cosine), so the argmax can change. With ``keep_label: true`` (the default) such a row has
its entries k and argmax z' swapped (the same values, the predicted label kept; counted in the
``label_swapped_fraction`` row); ``keep_label: false`` releases z' as published.
"""
from __future__ import annotations

import torch

from overconf.core.errors import ConfigError
from .base import DEFENSES, DefenseContext, ReleaseDefense


def centred(log_probs: torch.Tensor) -> torch.Tensor:
    return log_probs - log_probs.mean(1, keepdim=True)


def reweight(z: torch.Tensor, centroids: torch.Tensor, w: float) -> torch.Tensor:
    """z' = s z + (1 - s) c_k with s = w cos(z, c_k), k = argmax z (batched)."""
    c = centroids[z.argmax(1)]
    s = w * torch.nn.functional.cosine_similarity(z, c, dim=1, eps=1e-12)[:, None]
    return s * z + (1 - s) * c


@DEFENSES.register("logit_reweighting")
class LogitReweighting(ReleaseDefense):
    """Logit reweighting (seed 003): z' = s z + (1 - s) c_k, s = w cos(z, c_k); w = 0.1."""

    name = "logit_reweighting"

    def __init__(self, w: float = 0.1, keep_label: bool = True):
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not 0 <= w <= 1:
            raise ConfigError(f"defense logit_reweighting: w must be a number in [0, 1], got {w!r}")
        if not isinstance(keep_label, bool):
            raise ConfigError(f"defense logit_reweighting: keep_label must be true or false, got {keep_label!r}")
        self.w, self.keep_label = float(w), keep_label
        self.centroids: torch.Tensor | None = None
        self.stats = {"queries": 0, "swapped": 0}

    def fit(self, ctx: DefenseContext) -> "LogitReweighting":
        z, y = centred(ctx.train_log_probs.double()), ctx.train_labels.long()
        k = z.shape[1]
        counts = torch.bincount(y, minlength=k).double()
        sums = torch.zeros(k, k, dtype=torch.float64).index_add_(0, y, z)
        if (counts == 0).any():
            raise ValueError(f"logit_reweighting: classes {torch.nonzero(counts == 0).flatten().tolist()} "
                             f"have no training sample (no centroid)")
        self.centroids = sums / counts[:, None]
        return self

    def release(self, log_probs: torch.Tensor) -> torch.Tensor:
        if self.centroids is None:
            raise RuntimeError("logit_reweighting: call fit() before release()")
        z = centred(log_probs.double())
        out = reweight(z, self.centroids, self.w)
        if self.keep_label:
            out, swapped = swap_to(out, z.argmax(1))
            self.stats["queries"] += len(z)
            self.stats["swapped"] += int(swapped.sum())
        return torch.log_softmax(out, dim=1)

    def describe(self) -> dict:
        return {"w": self.w, **({"label_swapped_fraction": self.stats["swapped"] / max(self.stats["queries"], 1)}
                                if self.keep_label else {})}


def swap_to(z: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``z`` whose argmax is not ``label`` get entries label and argmax swapped; (z, swapped)."""
    top = z.argmax(1)
    swapped = top != label
    rows = torch.arange(len(z))
    out = z.clone()
    out[rows, label], out[rows, top] = z[rows, top], z[rows, label]
    return out, swapped
