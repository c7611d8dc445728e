"""Logit reweighting (seed 003, Khalil et al. 2025, arXiv 2511.16792; code najeebjebreel/mia_analysis).

As published (the authors' CIFAR-10 / Purchase-100 notebooks): c_k = mean training logit of class
k (by true label); for a query with predicted class k = argmax z, s = w cos(z, c_k) and the
released logits are z' = s z + (1 - s) c_k (then softmax), w = 0.1.

Which logits: the release's own logits whenever it has them (``DefenseContext.train_logits`` and
the ``logits`` handed to :meth:`LogitReweighting.release_outputs`): the model's raw logits when
the release is uncalibrated (the published recipe), z / T under temperature scaling (the cosine is
scale invariant, so that is the published defense followed by the temperature). Only where the
release has no logits (a calibration that yields only probabilities, e.g. a Laplace predictive)
does it fall back on the zero-mean representative z = log p - mean_j log p_j, for the queries and
the centroids alike; the cosine of those centred vectors is a different quantity, so the
``on_logits`` row (1: logits, 0: centred log-probabilities) says which one ran.

Labels: z' is mostly c_k, whose argmax need not be k (a weak model's class centroids, a negative
cosine), so the released label can change; the published defense has no fix-up, and accuracy is
measured on the released argmax (row ``label_changed_fraction``: the fraction of released outputs
whose argmax differs from the model's own). ``keep_label: true`` (an option, off by default) swaps
entries k and argmax z' in such rows (the same values, the label kept; row
``label_swapped_fraction``), which makes "accuracy unchanged" true by construction.
"""
from __future__ import annotations

import torch

from overconf.core.errors import ConfigError
from .base import DEFENSES, DefenseContext, ReleaseDefense


def centred(log_probs: torch.Tensor) -> torch.Tensor:
    return log_probs - log_probs.mean(1, keepdim=True)


def class_centroids(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """float64 [K, K]: c_k = mean of z over the rows of true label k (an error naming a class without rows)."""
    z, y = z.double(), labels.long()
    k = z.shape[1]
    counts = torch.bincount(y, minlength=k).double()
    if (counts == 0).any():
        raise ValueError(f"logit_reweighting: classes {torch.nonzero(counts == 0).flatten().tolist()} "
                         f"have no training sample (no centroid)")
    return torch.zeros(k, k, dtype=torch.float64).index_add_(0, y, z) / counts[:, None]


def reweight(z: torch.Tensor, centroids: torch.Tensor, w: float) -> torch.Tensor:
    """z' = s z + (1 - s) c_k with s = w cos(z, c_k), k = argmax z (batched)."""
    c = centroids[z.argmax(1)]
    s = w * torch.nn.functional.cosine_similarity(z, c, dim=1, eps=1e-12)[:, None]
    return s * z + (1 - s) * c


@DEFENSES.register("logit_reweighting")
class LogitReweighting(ReleaseDefense):
    """Logit reweighting (seed 003): z' = s z + (1 - s) c_k, s = w cos(z, c_k); w = 0.1; on the
    release's logits; ``keep_label`` (off: as published) swaps the label back."""

    name = "logit_reweighting"
    key_version = 2
    """2: raw logits and no label fix-up by default (1, unversioned: centred log-probabilities, fix-up on)"""

    def __init__(self, w: float = 0.1, keep_label: bool = False):
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not 0 <= w <= 1:
            raise ConfigError(f"defense logit_reweighting: w must be a number in [0, 1], got {w!r}")
        if not isinstance(keep_label, bool):
            raise ConfigError(f"defense logit_reweighting: keep_label must be true or false, got {keep_label!r}")
        self.w, self.keep_label = float(w), keep_label
        self.centroids: torch.Tensor | None = None
        self.on_logits = True
        self.stats = {"queries": 0, "changed": 0}

    def fit(self, ctx: DefenseContext) -> "LogitReweighting":
        self.on_logits = ctx.train_logits is not None
        z = ctx.train_logits if self.on_logits else centred(ctx.train_log_probs)
        self.centroids = class_centroids(z, ctx.train_labels)
        return self

    def release(self, log_probs: torch.Tensor) -> torch.Tensor:
        return self.release_outputs(log_probs, None)

    def release_outputs(self, log_probs: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
        if self.centroids is None:
            raise RuntimeError("logit_reweighting: call fit() before release()")
        if self.on_logits and logits is None:
            raise ValueError("logit_reweighting was fitted on the release's logits but is handed only "
                             "log-probabilities; pass the logits (release_outputs) or fit without train_logits")
        z = logits.double() if self.on_logits else centred(log_probs.double())
        out = reweight(z, self.centroids, self.w)
        label = z.argmax(1)
        self.stats["queries"] += len(z)
        self.stats["changed"] += int((out.argmax(1) != label).sum())
        if self.keep_label:
            out = swap_to(out, label)[0]
        return torch.log_softmax(out, dim=1)

    def describe(self) -> dict:
        changed = self.stats["changed"] / max(self.stats["queries"], 1)
        return {"w": self.w, "on_logits": float(self.on_logits),
                ("label_swapped_fraction" if self.keep_label else "label_changed_fraction"): changed}


def swap_to(z: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``z`` whose argmax is not ``label`` get entries label and argmax swapped; (z, swapped)."""
    top = z.argmax(1)
    swapped = top != label
    rows = torch.arange(len(z))
    out = z.clone()
    out[rows, label], out[rows, top] = z[rows, top], z[rows, label]
    return out, swapped
