"""AUROC with DeLong's interval, and the paired difference of two AUROCs on the same points
(DeLong, DeLong and Clarke-Pearson, "Comparing the areas under two or more correlated receiver
operating characteristic curves: a nonparametric approach", Biometrics 44, 1988).

With members X_1..X_n (positive) and non-members Y_1..Y_m, psi(x, y) = 1[x > y] + 1[x = y] / 2:

    AUC   = (1 / (n m)) sum_i sum_j psi(X_i, Y_j)                    (Mann-Whitney)
    V10_i = (1 / m) sum_j psi(X_i, Y_j),   V01_j = (1 / n) sum_i psi(X_i, Y_j)
    Var(AUC) = S10 / n + S01 / m,   S10, S01 the sample variances of V10 and V01;

for two scores r, s on the same points, Cov(AUC_r, AUC_s) = S10^{rs} / n + S01^{rs} / m (the
sample covariances of their components), so Var(AUC_r - AUC_s) = Var_r + Var_s - 2 Cov. Intervals
are normal: estimate +- z_{(1 + confidence) / 2} sd, the AUROC's clipped to [0, 1].
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from .functional import ranked


def components(member_scores, nonmember_scores) -> tuple[np.ndarray, np.ndarray]:
    """(V10 [n], V01 [m]): each member's share of non-members it outscores (ties 1/2) and each
    non-member's share of members that outscore it; their means are both the AUC."""
    x = ranked(member_scores, "member_scores")
    y = ranked(nonmember_scores, "nonmember_scores")
    ys, xs = np.sort(y), np.sort(x)
    below = np.searchsorted(ys, x, "left")              # #{j: Y_j < X_i}
    ties = np.searchsorted(ys, x, "right") - below      # #{j: Y_j = X_i}
    above = len(xs) - np.searchsorted(xs, y, "right")   # #{i: X_i > Y_j}
    ties_y = np.searchsorted(xs, y, "right") - np.searchsorted(xs, y, "left")
    return (below + ties / 2) / len(y), (above + ties_y / 2) / len(x)


def _var(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.cov(a, b, ddof=1)[0, 1]) if len(a) > 1 else 0.0


def _z(confidence: float) -> float:
    return float(norm.ppf((1 + confidence) / 2))


def delong_auc(member_scores, nonmember_scores, confidence: float = 0.95) -> tuple[float, float, float]:
    """(AUC, low, high): the Mann-Whitney AUROC and DeLong's normal interval (clipped to [0, 1])."""
    v10, v01 = components(member_scores, nonmember_scores)
    auc = float(v10.mean())
    sd = math.sqrt(max(_var(v10, v10) / len(v10) + _var(v01, v01) / len(v01), 0.0))
    z = _z(confidence)
    return auc, max(0.0, auc - z * sd), min(1.0, auc + z * sd)


def delong_difference(a_members, a_nonmembers, b_members, b_nonmembers,
                      confidence: float = 0.95) -> tuple[float, float, float]:
    """(AUC_a - AUC_b, low, high) of two scores a, b of the same members and the same non-members
    (paired: DeLong's covariance of the two AUCs)."""
    a10, a01 = components(a_members, a_nonmembers)
    b10, b01 = components(b_members, b_nonmembers)
    if len(a10) != len(b10) or len(a01) != len(b01):
        raise ValueError("delong_difference: both scores must be of the same members and non-members "
                         f"(got {len(a10)} / {len(b10)} members, {len(a01)} / {len(b01)} non-members)")
    n, m = len(a10), len(a01)
    var = ((_var(a10, a10) + _var(b10, b10) - 2 * _var(a10, b10)) / n
           + (_var(a01, a01) + _var(b01, b01) - 2 * _var(a01, b01)) / m)
    diff = float(a10.mean() - b10.mean())
    half = _z(confidence) * math.sqrt(max(var, 0.0))
    return diff, diff - half, diff + half
