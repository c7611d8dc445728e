"""The differential-privacy bound on causal membership rates (seed 001: "corrected zero-run
estimates agree with multi-run and respect a DP bound").

If training is (eps, delta)-DP with respect to adding or removing one point, then for every
point i, every configuration of the other points and every threshold t,

    P(S_i(1) >= t) <= e^eps P(S_i(0) >= t) + delta   and   P(S_i(0) < t) <= e^eps P(S_i(1) < t) + delta

(the score is post-processing of the trained model). Averaging over points and over the others'
random inclusion keeps both, so the causal rates obey TPR_c(t) <= e^eps FPR_c(t) + delta and
1 - FPR_c(t) <= e^eps (1 - TPR_c(t)) + delta at every t (Kairouz et al. 2015's hypothesis-testing
region). :func:`bound_violation` measures how far a (TPR, FPR) curve leaves that region;
:func:`check_multi_run` does it on a multi-run score / keep matrix, once on the estimates and
once with exact Clopper-Pearson limits (TPR's lower, FPR's upper, Bonferroni over thresholds),
so that "violated" means significantly outside the region, not sampling noise. The pooled cells
of one point across models are not independent draws: the intervals are a guide, said so in the
report. :func:`gaussian_delta` / :func:`gaussian_epsilon` are the exact privacy profile of the
Gaussian mechanism (Balle & Wang 2018, Theorem 8), used by the known-truth simulation.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

from .weighted import as_np


def bound_violation(tpr, fpr, eps: float, delta: float) -> float:
    """max over thresholds of max(TPR - e^eps FPR - delta, (1 - FPR) - e^eps (1 - TPR) - delta):
    <= 0 inside the (eps, delta) region."""
    tpr, fpr = np.asarray(tpr, float), np.asarray(fpr, float)
    e = math.exp(eps)
    return float(max((tpr - e * fpr - delta).max(), ((1 - fpr) - e * (1 - tpr) - delta).max()))


def rate_curves(scores, keep) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(thresholds, IN counts >= t, OUT counts >= t, n IN cells, n OUT cells) at every observed
    score of a multi-run [K, n] score / keep matrix (pooled cells)."""
    s, k = as_np(scores).ravel(), as_np(keep, bool).ravel()
    s1, s0 = np.sort(s[k]), np.sort(s[~k])
    thr = np.unique(s)
    above = lambda v: len(v) - np.searchsorted(v, thr, "left")  # noqa: E731
    return thr, above(s1), above(s0), len(s1), len(s0)


def _cp(k: np.ndarray, n: int, alpha: float, upper: bool) -> np.ndarray:
    """One-sided exact (Clopper-Pearson) limit of k / n at level alpha."""
    k = np.asarray(k, float)
    if upper:
        return np.where(k >= n, 1.0, stats.beta.ppf(1 - alpha, k + 1, n - k))
    return np.where(k <= 0, 0.0, stats.beta.ppf(alpha, k, n - k + 1))


def check_multi_run(scores, keep, eps: float, delta: float, confidence: float = 0.95) -> dict[str, float]:
    """Rows of the DP-bound check on a multi-run matrix: the estimates' largest violation, the
    conservative one (Clopper-Pearson limits at level (1 - confidence) / (2 * thresholds)), and
    ``dp_bound_violated`` = 1 when the conservative violation is > 0."""
    thr, a1, a0, n1, n0 = rate_curves(scores, keep)
    tpr, fpr = a1 / n1, a0 / n0
    alpha = (1 - confidence) / (2 * len(thr))
    tpr_lo, tpr_hi = _cp(a1, n1, alpha, False), _cp(a1, n1, alpha, True)
    fpr_lo, fpr_hi = _cp(a0, n0, alpha, False), _cp(a0, n0, alpha, True)
    e = math.exp(eps)
    conservative = float(max((tpr_lo - e * fpr_hi - delta).max(), ((1 - fpr_hi) - e * (1 - tpr_lo) - delta).max()))
    return {"dp_epsilon": float(eps), "dp_delta": float(delta),
            "dp_bound_max_violation": bound_violation(tpr, fpr, eps, delta),
            "dp_bound_conservative_violation": conservative,
            "dp_bound_violated": float(conservative > 0)}


def gaussian_delta(eps: float, noise_multiplier: float) -> float:
    """delta(eps) of the Gaussian mechanism with noise sigma = noise_multiplier * sensitivity:
    Phi(mu / 2 - eps / mu) - e^eps Phi(-mu / 2 - eps / mu), mu = 1 / noise_multiplier (exact)."""
    mu = 1.0 / noise_multiplier
    return float(stats.norm.cdf(mu / 2 - eps / mu) - math.exp(eps) * stats.norm.cdf(-mu / 2 - eps / mu))


def gaussian_epsilon(delta: float, noise_multiplier: float) -> float:
    """The smallest eps with :func:`gaussian_delta` (eps) <= delta."""
    if gaussian_delta(0.0, noise_multiplier) <= delta:
        return 0.0
    hi = 1.0
    while gaussian_delta(hi, noise_multiplier) > delta:
        hi *= 2
    return float(optimize.brentq(lambda e: gaussian_delta(e, noise_multiplier) - delta, 0.0, hi, xtol=1e-12))
