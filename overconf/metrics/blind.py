"""The blind baseline: what distribution difference alone buys a membership "attacker" that never
queries the target (in the spirit of PANORAMIA, Kazmi et al. 2024, whose baseline classifier
tells real member-distribution data from generated non-members without the target; Das et al.,
"Blind Baselines Beat Membership Inference Attacks for Foundation Models", 2024).

A logistic regression on the model inputs' pixels (standardised with the training set's per-pixel
mean and standard deviation, L2 penalty C, scikit-learn's lbfgs: deterministic) separates
member-distribution images (label 1) from one source's images (label 0):

    b(x) = w . (x - mu) / sd + w_0     (the log-odds of "member distribution"),

and "member" means b(x) >= t. Trained on images no model of the study trained on (the reserve)
and on source images disjoint from the evaluated non-members, it is evaluated like an attack on
the target's members vs the source's evaluation non-members: its AUROC is what telling the
distributions apart is worth there, with no memorisation at all. Trained once per (member data,
source data, C) and cached by content like every trained artifact.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from overconf.core.cache import content_key, tensor_digest

C_DEFAULT = 0.01
"""inverse L2 strength: 784 pixels from a few thousand images over-fit with a weak penalty"""


@dataclass(frozen=True)
class BlindClassifier:
    """b(x) = w . (x - mu) / sd + w_0 on flattened inputs (float64)."""

    mu: torch.Tensor
    sd: torch.Tensor
    w: torch.Tensor
    w0: float

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """The log-odds of "member distribution", float64 [N] (higher: more member-like)."""
        z = (x.detach().cpu().double().reshape(len(x), -1) - self.mu) / self.sd
        return z @ self.w + self.w0

    def payload(self) -> dict:
        return {"mu": self.mu, "sd": self.sd, "w": self.w, "w0": torch.tensor(self.w0, dtype=torch.float64)}

    @staticmethod
    def of(payload: dict) -> "BlindClassifier":
        return BlindClassifier(payload["mu"], payload["sd"], payload["w"], float(payload["w0"]))


def fit_blind(member_x: torch.Tensor, source_x: torch.Tensor, C: float = C_DEFAULT) -> BlindClassifier:
    """Logistic regression of "member distribution" (``member_x``) vs ``source_x`` on standardised
    pixels (scikit-learn, lbfgs, penalty 1 / (2 C) |w|^2)."""
    from sklearn.linear_model import LogisticRegression

    if len(member_x) == 0 or len(source_x) == 0:
        raise ValueError(f"fit_blind: needs images of both kinds, got {len(member_x)} member-distribution and "
                         f"{len(source_x)} source images")
    x = torch.cat([member_x.detach().cpu().double().reshape(len(member_x), -1),
                   source_x.detach().cpu().double().reshape(len(source_x), -1)])
    if not bool(torch.isfinite(x).all()):
        x = torch.nan_to_num(x, nan=0.0, posinf=1e6, neginf=-1e6)
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-6)
    y = np.r_[np.ones(len(member_x)), np.zeros(len(source_x))]
    model = LogisticRegression(C=C, max_iter=500).fit(((x - mu) / sd).numpy(), y)
    return BlindClassifier(mu, sd, torch.from_numpy(model.coef_[0].astype(np.float64)), float(model.intercept_[0]))


def load_or_fit_blind(member_x: torch.Tensor, source_x: torch.Tensor, cache, C: float = C_DEFAULT) -> BlindClassifier:
    """:func:`fit_blind`, cached by the content of both training sets and C (``cache``: a
    :class:`overconf.core.cache.Cache`, or None: not cached)."""
    if cache is None:
        return fit_blind(member_x, source_x, C)
    key = content_key({"kind": "blind_baseline", "members": tensor_digest(member_x.float()),
                       "source": tensor_digest(source_x.float()), "C": float(C)})
    payload = cache.get_or_create("blind_baseline", key, lambda: fit_blind(member_x, source_x, C).payload(),
                                  valid=lambda p: p["w"].numel() == p["mu"].numel())
    return BlindClassifier.of(payload)
