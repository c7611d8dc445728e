"""Which members are vulnerable: the flags of two papers, as pure functions of score tensors (float64).

- Single model, two protocols for the threshold on the scaled logit phi = log p_y - log
  sum_{k != y} p_k:
  * ``paper`` (seed 003, Khalil et al. 2025, arXiv 2511.16792; code najeebjebreel/mia_analysis,
    "Analysis MIAs" notebooks): t_a = ``numpy.percentile(phi of the evaluation non-members,
    100 (1 - a))`` with numpy's default linear interpolation (99 for 1% FPR, 99.5 for 0.5%), and a
    member is vulnerable when phi >= t_a (:func:`percentile_threshold`). The threshold is taken on
    the very non-members it is evaluated against (an in-sample FPR), with no shadow model;
  * ``overconf``: t_a = the (floor(a n) + 1)-th largest phi of n non-members that are NOT
    evaluated (the shadow's fit non-members: at most a n of them exceed t_a), vulnerable when
    phi > t_a (:func:`threshold_at_fpr`); its FPR on the evaluation non-members is then measured.
  Either way a n < 1 (e.g. a = 0.001 with 500 non-members) leaves only the largest non-member score
  as the threshold: the FPR a is not resolved (:func:`resolved`).
- Reference models, leave-one-out (NOT seed 003: Jebreel, Khalil, Sanchez, Domingo-Ferrer 2025,
  "Revisiting the LiRA membership inference attack under realistic assumptions"; code
  najeebjebreel/lira_analysis): over the K models, each in turn the target (its IN points
  members, its OUT points non-members), scored against the other K - 1 (LiRA online with a global
  variance, or the plain scaled logit); model k's threshold is taken on its OUT points among the
  threshold points (the shadow's fit points), and each evaluated point (the target's members and
  test images) counts a true positive when IN and flagged, a false positive when OUT and flagged.
  Highly vulnerable: TP > 0 and FP = 0.
"""
from __future__ import annotations

import math

import torch

from ..attacks.lira import gaussian_logpdf, masked_stats

MIN_MODELS = 2
LOO_PAPER = "Jebreel et al. 2025 (lira_analysis)"
"""the leave-one-out "highly vulnerable" flag's paper (not seed 003)"""


def percentile_threshold(nonmember_scores: torch.Tensor, fpr: float) -> float:
    """Seed 003's threshold: ``numpy.percentile(scores, 100 (1 - fpr))`` (linear interpolation, the
    authors' call); flag iff score >= t."""
    import numpy as np

    s = nonmember_scores.double().flatten()
    s = s[~s.isnan()]
    if len(s) == 0:
        raise ValueError("no non-member scores to take a threshold on")
    return float(np.percentile(s.numpy(), 100.0 * (1.0 - fpr)))


def resolved(n: int, fpr: float) -> bool:
    """Whether n non-members resolve FPR ``fpr``: fpr n >= 1 (otherwise the threshold is their
    largest score, an FPR of 0 on them, not ``fpr``)."""
    return fpr * n >= 1 - 1e-9


def threshold_at_fpr(nonmember_scores: torch.Tensor, fpr: float) -> float:
    """t such that at most floor(fpr n) of the n scores are > t: the (floor(fpr n) + 1)-th largest
    (the largest score when fpr n < 1: no non-member exceeds it). Flag iff score > t."""
    s = nonmember_scores.double().flatten()
    s = s[~s.isnan()]
    if len(s) == 0:
        raise ValueError("no non-member scores to take a threshold on")
    k = min(int(math.floor(fpr * len(s) + 1e-9)), len(s) - 1)
    return float(s.sort(descending=True).values[k])


def lira_loo_scores(phi: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """float64 [n, K]: LiRA online score of model k on point i against the other K - 1 models:
    log N(phi_ik; mu_in, s_in^2) - log N(phi_ik; mu_out, s_out^2), mu over the other models where
    i is IN (OUT), s^2 the mean per-point variance over points with >= 2 IN and OUT others (the
    fixed-variance LiRA of Carlini et al. 2022 for few models)."""
    phi, keep = phi.double(), keep.bool()
    n, k = phi.shape
    out = torch.empty(n, k, dtype=torch.float64)
    tiny = torch.finfo(torch.float64).tiny
    for j in range(k):
        others = torch.ones(k, dtype=torch.bool)
        others[j] = False
        kin, kout = keep & others, ~keep & others
        mu_in, var_in, n_in = (t[:, 0] for t in masked_stats(phi[:, None, :], kin))
        mu_out, var_out, n_out = (t[:, 0] for t in masked_stats(phi[:, None, :], kout))
        ok = (n_in >= MIN_MODELS) & (n_out >= MIN_MODELS)
        v_in = var_in[ok].mean() if ok.any() else torch.tensor(1.0, dtype=torch.float64)
        v_out = var_out[ok].mean() if ok.any() else torch.tensor(1.0, dtype=torch.float64)
        shift = (mu_in[ok] - mu_out[ok]).mean() if ok.any() else torch.tensor(0.0, dtype=torch.float64)
        mu_in = torch.where(n_in == 0, mu_out + shift, mu_in)
        mu_out = torch.where(n_out == 0, mu_in - shift, mu_out)
        out[:, j] = (gaussian_logpdf(phi[:, j], mu_in, v_in.clamp(min=tiny))
                     - gaussian_logpdf(phi[:, j], mu_out, v_out.clamp(min=tiny)))
    return out


def loo_counts(scores: torch.Tensor, keep: torch.Tensor, threshold_points: torch.Tensor, fpr: float
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(thresholds [K], TP [n], FP [n]): model k as the target flags point i iff scores[i, k] >
    t_k, t_k = :func:`threshold_at_fpr` of scores[:, k] over the threshold points OUT of model k;
    TP counts the models that flag i while i is IN, FP while OUT. Only points outside
    ``threshold_points`` are counted (0 for the threshold points themselves)."""
    scores, keep, thr_pts = scores.double(), keep.bool(), threshold_points.bool()
    n, k = scores.shape
    thresholds = torch.empty(k, dtype=torch.float64)
    flagged = torch.zeros(n, k, dtype=torch.bool)
    for j in range(k):
        out_pts = thr_pts & ~keep[:, j]
        thresholds[j] = threshold_at_fpr(scores[out_pts, j], fpr)
        flagged[:, j] = scores[:, j] > thresholds[j]
    counted = (~thr_pts)[:, None]
    tp = (flagged & keep & counted).sum(1)
    fp = (flagged & ~keep & counted).sum(1)
    return thresholds, tp, fp
