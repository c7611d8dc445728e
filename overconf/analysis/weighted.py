"""Weighted two-sample statistics of membership scores (rule "member iff score >= t"): the
building blocks of the causal-memorization estimators (:mod:`.causal_memorization`,
:mod:`.one_run`, :mod:`.zero_run`). With unit weights they equal the study's metrics
(scikit-learn's ROC AUC, :func:`overconf.metrics.membership.tpr_at_fpr`).

Weighted Mann-Whitney AUC (a Hajek-normalised IPW form; standard, not from seed 001's text):
    AUC_w = sum_i sum_j w_i v_j (1[s_i > s_j] + 1/2 1[s_i = s_j]) / (sum_i w_i sum_j v_j)
for members i (weights w) and non-members j (weights v).
"""
from __future__ import annotations

import numpy as np
import torch


def as_np(x, dtype=np.float64) -> np.ndarray:
    """A float64 (or ``dtype``) numpy copy of a tensor or array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _weights(w, n: int) -> np.ndarray:
    return np.ones(n) if w is None else as_np(w)


def below_mass(s_out: np.ndarray, v: np.ndarray, s: np.ndarray) -> np.ndarray:
    """For each score in ``s``: (weight of ``s_out`` strictly below it) + (weight tied) / 2."""
    order = np.argsort(s_out, kind="stable")
    so, cv = s_out[order], np.r_[0.0, np.cumsum(v[order])]
    lo, hi = np.searchsorted(so, s, "left"), np.searchsorted(so, s, "right")
    return cv[lo] + (cv[hi] - cv[lo]) / 2


def weighted_auc(s_in, s_out, w_in=None, w_out=None) -> float:
    """AUC_w above (nan when either side has no weight)."""
    s_in, s_out = as_np(s_in), as_np(s_out)
    w, v = _weights(w_in, len(s_in)), _weights(w_out, len(s_out))
    tw, tv = w.sum(), v.sum()
    if len(s_in) == 0 or len(s_out) == 0 or tw <= 0 or tv <= 0:
        return float("nan")
    return float((w * below_mass(s_out, v, s_in)).sum() / (tw * tv))


def weighted_rate(s, threshold: float, w=None) -> float:
    """sum_i w_i 1[s_i >= t] / sum_i w_i (nan without weight)."""
    s = as_np(s)
    w = _weights(w, len(s))
    return float((w * (s >= threshold)).sum() / w.sum()) if w.sum() > 0 else float("nan")


def weighted_roc(s_in, s_out, w_in=None, w_out=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct score, thresholds decreasing, starting at (0, 0)."""
    s_in, s_out = as_np(s_in), as_np(s_out)
    w, v = _weights(w_in, len(s_in)), _weights(w_out, len(s_out))
    thr = np.unique(np.r_[s_in, s_out])[::-1]

    def above(s, ws):  # weight with s >= t, for every t in thr
        order = np.argsort(s, kind="stable")
        cs = np.r_[0.0, np.cumsum(ws[order])]
        return cs[-1] - cs[np.searchsorted(s[order], thr, "left")]

    tpr, fpr = above(s_in, w) / w.sum(), above(s_out, v) / v.sum()
    return np.r_[0.0, fpr], np.r_[0.0, tpr], np.r_[np.inf, thr]


def weighted_tpr_at_fpr(s_in, s_out, max_fpr: float, w_in=None, w_out=None) -> tuple[float, float]:
    """(TPR, FPR reached): the highest weighted TPR over ROC points with weighted FPR <= max_fpr
    (the study's convention, :func:`overconf.metrics.membership.tpr_at_fpr`)."""
    fpr, tpr, _ = weighted_roc(s_in, s_out, w_in, w_out)
    ok = np.flatnonzero(fpr <= max_fpr + 1e-12)
    i = ok[np.argmax(tpr[ok])]
    return float(tpr[i]), float(fpr[i])


def percentile_interval(samples, confidence: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval [q_{a/2}, q_{1-a/2}] ignoring nan replicates."""
    a = (1 - confidence) / 2
    samples = np.asarray(samples, dtype=float)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return (np.nanquantile(samples, a, axis=axis), np.nanquantile(samples, 1 - a, axis=axis))


def kish_ess(w) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 of a weighted sample."""
    w = as_np(w)
    return float(w.sum() ** 2 / (w ** 2).sum()) if (w ** 2).sum() > 0 else 0.0
