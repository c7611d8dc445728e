"""Functional metrics on tensors, torchmetrics-style names (``binary_*`` take per-sample membership
scores; members are the positive class, "member" means ``score >= threshold``).

    >>> from overconf import metrics
    >>> metrics.binary_auroc(member_scores, nonmember_scores)
    >>> metrics.binary_tpr_at_fpr(member_scores, nonmember_scores, max_fpr=0.01)   # (tpr, fpr reached)
    >>> metrics.binary_fpr(nonmember_scores, threshold)                          # (fpr, ci_low, ci_high)
    >>> metrics.multiclass_calibration_error(probs, labels, n_bins=15)            # ECE

The study's own metrics (the same functions the result rows come from) are
:func:`~overconf.metrics.membership.membership_metrics` and the calibration metrics.
"""
from __future__ import annotations

import numpy as np
import torch

from .calibration import expected_calibration_error, overconfidence_error
from .membership import _np, clopper_pearson, fpr_at_tpr, roc, tpr_at_fpr


def binary_roc(member_scores, nonmember_scores) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ROC of the rule ``score >= t``: (fpr, tpr, thresholds) as float64 tensors, thresholds
    decreasing (scikit-learn's ``roc_curve`` without dropping points)."""
    return tuple(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
                 for a in roc(member_scores, nonmember_scores))


def binary_auroc(member_scores, nonmember_scores) -> float:
    """Area under the ROC = P(member score > non-member score) + P(tie) / 2 (Mann-Whitney U / n m)."""
    from sklearn.metrics import roc_auc_score

    s_in, s_out = _np(member_scores), _np(nonmember_scores)
    return float(roc_auc_score(np.r_[np.ones(len(s_in)), np.zeros(len(s_out))], np.r_[s_in, s_out]))


def binary_tpr_at_fpr(member_scores, nonmember_scores, max_fpr: float = 0.01) -> tuple[float, float]:
    """(TPR, FPR reached): the highest TPR over ROC points with FPR <= ``max_fpr`` (a point at
    exactly ``max_fpr`` counts; Carlini et al. 2022 read FPR < x)."""
    fpr, tpr, _ = roc(member_scores, nonmember_scores)
    return tpr_at_fpr(fpr, tpr, max_fpr)


def binary_fpr_at_tpr(member_scores, nonmember_scores, min_tpr: float = 0.95) -> float:
    """The lowest FPR over ROC points with TPR >= ``min_tpr`` (FPR at 95% TPR by default)."""
    fpr, tpr, _ = roc(member_scores, nonmember_scores)
    return fpr_at_tpr(fpr, tpr, min_tpr)


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of the rate k / n (Clopper & Pearson 1934):
    [B^-1(a/2; k, n-k+1), B^-1(1-a/2; k+1, n-k)], a = 1 - confidence; nan for n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    lo, hi = clopper_pearson(k, n, confidence)
    return float(lo), float(hi)


def _rate(scores, threshold: float, confidence: float) -> tuple[float, float, float]:
    flagged = torch.as_tensor(scores).double() >= threshold
    k, n = int(flagged.sum()), len(flagged)
    return (k / n if n else float("nan"), *clopper_pearson_interval(k, n, confidence))


def binary_fpr(nonmember_scores, threshold: float, confidence: float = 0.95) -> tuple[float, float, float]:
    """(FPR, ci_low, ci_high): the fraction of non-members flagged (``score >= threshold``) with
    its Clopper-Pearson interval."""
    return _rate(nonmember_scores, threshold, confidence)


def binary_tpr(member_scores, threshold: float, confidence: float = 0.95) -> tuple[float, float, float]:
    """(TPR, ci_low, ci_high): the fraction of members flagged with its Clopper-Pearson interval."""
    return _rate(member_scores, threshold, confidence)


def multiclass_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error (Guo et al. 2017), torchmetrics' ``multiclass_calibration_error``
    with norm l1: sum_b |B_b|/n |acc(B_b) - conf(B_b)| over equal-width confidence bins."""
    return expected_calibration_error(torch.as_tensor(probs), torch.as_tensor(labels), n_bins)


def multiclass_overconfidence_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """OE = sum_b |B_b|/n conf(B_b) max(conf(B_b) - acc(B_b), 0) (Thulasidasan et al. 2019)."""
    return overconfidence_error(torch.as_tensor(probs), torch.as_tensor(labels), n_bins)
