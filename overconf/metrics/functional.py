"""Functional metrics on tensors, torchmetrics-style names (``binary_*`` take per-sample membership
scores; members are the positive class, "member" means ``score >= threshold``).

    >>> from overconf import metrics
    >>> metrics.binary_auroc(member_scores, nonmember_scores)
    >>> metrics.binary_tpr_at_fpr(member_scores, nonmember_scores, max_fpr=0.01)   # (tpr, fpr reached)
    >>> metrics.binary_fpr(nonmember_scores, threshold)                          # (fpr, ci_low, ci_high)
    >>> metrics.multiclass_calibration_error(probs, labels, n_bins=15)            # ECE

The study's own metrics (the same functions the result rows come from) are
:func:`~overconf.metrics.membership.membership_metrics` and the calibration metrics.

Every function here checks its arguments (:mod:`overconf.core.checks`; docs/python-api-inputs.md):
scores are real [N], N >= 1, without NaN (+-inf count as the largest finite float64, order kept,
as the attacks' own scores); probabilities [N, K] are rows of probability vectors, labels integer
in [0, K); rates, confidences and counts are numbers in range (never bools). A bad argument is one
:class:`~overconf.core.errors.InputError` (or ``InputTypeError``) naming it.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from overconf.core import checks
from .calibration import expected_calibration_error, overconfidence_error
from .membership import clopper_pearson, fpr_at_tpr, roc, tpr_at_fpr


def ranked(values, name: str) -> np.ndarray:
    """Checked scores as float64, +-inf mapped to the largest finite values (scikit-learn's ROC
    refuses infinities; the order is kept, as in :func:`overconf.attacks.scores.finite`)."""
    big = np.finfo(np.float64).max
    return np.nan_to_num(checks.scores(values, name).numpy(), nan=math.nan, posinf=big, neginf=-big)


def binary_roc(member_scores, nonmember_scores) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ROC of the rule ``score >= t``: (fpr, tpr, thresholds) as float64 tensors, thresholds
    decreasing (scikit-learn's ``roc_curve`` without dropping points)."""
    return tuple(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
                 for a in roc(ranked(member_scores, "member_scores"), ranked(nonmember_scores, "nonmember_scores")))


def binary_auroc(member_scores, nonmember_scores) -> float:
    """Area under the ROC = P(member score > non-member score) + P(tie) / 2 (Mann-Whitney U / n m)."""
    from sklearn.metrics import roc_auc_score

    s_in, s_out = ranked(member_scores, "member_scores"), ranked(nonmember_scores, "nonmember_scores")
    return float(roc_auc_score(np.r_[np.ones(len(s_in)), np.zeros(len(s_out))], np.r_[s_in, s_out]))


def binary_tpr_at_fpr(member_scores, nonmember_scores, max_fpr: float = 0.01) -> tuple[float, float]:
    """(TPR, FPR reached): the highest TPR over ROC points with FPR <= ``max_fpr`` (a point at
    exactly ``max_fpr`` counts; Carlini et al. 2022 read FPR < x)."""
    max_fpr = checks.number(max_fpr, "max_fpr", low=0, high=1)
    fpr, tpr, _ = roc(ranked(member_scores, "member_scores"), ranked(nonmember_scores, "nonmember_scores"))
    return tpr_at_fpr(fpr, tpr, max_fpr)


def binary_fpr_at_tpr(member_scores, nonmember_scores, min_tpr: float = 0.95) -> float:
    """The lowest FPR over ROC points with TPR >= ``min_tpr`` (FPR at 95% TPR by default)."""
    min_tpr = checks.number(min_tpr, "min_tpr", low=0, high=1)
    fpr, tpr, _ = roc(ranked(member_scores, "member_scores"), ranked(nonmember_scores, "nonmember_scores"))
    return fpr_at_tpr(fpr, tpr, min_tpr)


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of the rate k / n (Clopper & Pearson 1934):
    [B^-1(a/2; k, n-k+1), B^-1(1-a/2; k+1, n-k)], a = 1 - confidence; nan for n = 0.
    ``k`` and ``n`` are whole numbers with 0 <= k <= n."""
    k, n = counts(k, n)
    confidence = checks.number(confidence, "confidence", low=0, high=1, open_low=True, open_high=True)
    if n == 0:
        return float("nan"), float("nan")
    lo, hi = clopper_pearson(k, n, confidence)
    return float(lo), float(hi)


def counts(k, n) -> tuple[int, int]:
    """k successes of n trials: whole numbers, 0 <= k <= n."""
    k, n = checks.count(k, "k"), checks.count(n, "n")
    if k > n:
        checks.fail("k", f"k = {k} successes out of n = {n} trials",
                    "k counts the flagged samples among n: 0 <= k <= n")
    return k, n


def _rate(scores, threshold: float, confidence: float, name: str) -> tuple[float, float, float]:
    threshold = checks.number(threshold, "threshold", finite=False)
    flagged = checks.scores(scores, name) >= threshold
    k, n = int(flagged.sum()), len(flagged)
    return (k / n, *clopper_pearson_interval(k, n, confidence))


def binary_fpr(nonmember_scores, threshold: float, confidence: float = 0.95) -> tuple[float, float, float]:
    """(FPR, ci_low, ci_high): the fraction of non-members flagged (``score >= threshold``) with
    its Clopper-Pearson interval."""
    return _rate(nonmember_scores, threshold, confidence, "nonmember_scores")


def binary_tpr(member_scores, threshold: float, confidence: float = 0.95) -> tuple[float, float, float]:
    """(TPR, ci_low, ci_high): the fraction of members flagged with its Clopper-Pearson interval."""
    return _rate(member_scores, threshold, confidence, "member_scores")


def multiclass_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error (Guo et al. 2017), torchmetrics' ``multiclass_calibration_error``
    with norm l1: sum_b |B_b|/n |acc(B_b) - conf(B_b)| over equal-width confidence bins."""
    return expected_calibration_error(*calibration_inputs(probs, labels, n_bins))


def multiclass_overconfidence_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """OE = sum_b |B_b|/n conf(B_b) max(conf(B_b) - acc(B_b), 0) (Thulasidasan et al. 2019)."""
    return overconfidence_error(*calibration_inputs(probs, labels, n_bins))


def calibration_inputs(probs, labels, n_bins) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Checked (probabilities [N, K], labels [N] in [0, K): every sample labelled, n_bins >= 1)."""
    p = checks.probabilities(probs, "probs")
    y = checks.label_range(checks.labels(labels, "labels", len(p)), "labels", p.shape[1], unlabelled=False)
    return p, y, checks.number(n_bins, "n_bins", low=1, integer=True)
