"""Membership-inference metrics at a fixed decision rule ``score >= threshold`` and over the ROC.

Members are positives. ROC, AUROC and AUPR come from scikit-learn on the same scores.

Intervals: every rate at the fitted threshold (TPR, FPR) gets an exact binomial Clopper-Pearson
interval (``fpr_ci_low/high``, ``tpr_ci_low/high``), which keeps its width at a rate of 0 or 1 where a percentile bootstrap of 0/1 decisions collapses to
[0, 0] or [1, 1]. The TPR at a target FPR, a rate at a threshold chosen from the data, gets an
exact bootstrap interval (:func:`bootstrap_tpr_at_fpr`). "TPR at x FPR" is read at ROC points
with FPR <= x (Carlini et al.'s ``fig_fpr_tpr.py`` uses FPR < x).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import beta, binom
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from overconf.core import checks
from overconf.core.errors import InputError


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=float)


def roc(scores_in, scores_out) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) of the rule ``score >= threshold``, members positive."""
    s_in, s_out = _np(scores_in), _np(scores_out)
    y = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
    fpr, tpr, thr = roc_curve(y, np.r_[s_in, s_out], drop_intermediate=False)
    return fpr, tpr, thr


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> tuple[float, float]:
    """Highest TPR over ROC points with FPR <= target, and the FPR actually reached there."""
    ok = np.flatnonzero(fpr <= target + 1e-12)
    i = ok[np.argmax(tpr[ok])]
    return float(tpr[i]), float(fpr[i])


def fpr_at_tpr(fpr: np.ndarray, tpr: np.ndarray, target: float = 0.95) -> float:
    """Lowest FPR over ROC points with TPR >= target."""
    return float(fpr[tpr >= target - 1e-12].min())


def clopper_pearson(k, n, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact binomial interval for k successes in n trials (Clopper & Pearson 1934):
    [B^-1(a/2; k, n - k + 1), B^-1(1 - a/2; k + 1, n - k)], a = 1 - confidence (0 / 1 at the ends).
    ``k`` and ``n`` (numbers or arrays) are whole numbers with 0 <= k <= n."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    if not (np.all(k >= 0) and np.all(k <= n) and np.all(k == np.round(k)) and np.all(n == np.round(n))):
        raise InputError(f"clopper_pearson: counts must be whole numbers with 0 <= k <= n (k successes of n trials), "
                         f"got k = {k.tolist()}, n = {n.tolist()}")
    a = 1 - confidence
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k > 0, beta.ppf(a / 2, k, n - k + 1), 0.0)
        hi = np.where(k < n, beta.ppf(1 - a / 2, k + 1, n - k), 1.0)
    return lo, hi


def rate_interval(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Clopper-Pearson interval of the rate k / n as floats (nan for n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    lo, hi = clopper_pearson(k, n, confidence)
    return float(lo), float(hi)


def advantage(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Membership advantage max_t (TPR(t) - FPR(t)) over the ROC (Yeom et al. 2018)."""
    return float(np.max(tpr - fpr))


def precision_at_prior(tpr: float, fpr: float, prior: float) -> float:
    """Precision if a fraction ``prior`` of the queried points were members:
    pi TPR / (pi TPR + (1 - pi) FPR); nan where nothing is flagged."""
    flagged = prior * tpr + (1 - prior) * fpr
    return prior * tpr / flagged if flagged > 0 else float("nan")


def bootstrap_tpr_at_fpr(scores_in: torch.Tensor, scores_out: torch.Tensor, targets, *, n_boot: int,
                         confidence: float, generator: torch.Generator) -> dict[float, tuple[float, float]]:
    """Percentile bootstrap interval of the ROC's TPR at each target FPR, members and non-members
    resampled separately (with replacement, original sizes).

    The best rule ``score >= t`` flagging at most k = floor(target n_out) non-members puts t just
    above the (k+1)-th largest non-member score T, so TPR = #{members > T} / n_in (this equals
    :func:`tpr_at_fpr` on sklearn's ROC; tested). Rather than materialise B resamples, each one's
    T and member count are drawn from their exact bootstrap distributions: T takes the value v of
    the non-member scores with P(T >= v) = P(Binomial(n_out, #{s_out >= v} / n_out) >= k + 1)
    (inverse-CDF draw), and given T the resampled member count above T is
    Binomial(n_in, #{s_in > T} / n_in)."""
    targets = list(targets)
    s_in = np.sort(_np(scores_in))
    s_out = np.sort(_np(scores_out))[::-1]
    n_in, n_out = len(s_in), len(s_out)
    if n_in == 0 or n_out == 0 or n_boot <= 0:
        return {t: (float("nan"), float("nan")) for t in targets}
    values, first = np.unique(-s_out, return_index=True)  # distinct non-member scores, descending
    values = -values
    at_least = np.r_[first[1:], n_out]  # #{s_out >= v} for each distinct v
    alpha = (1 - confidence) / 2
    out = {}
    for target in targets:
        k = int(np.floor((target + 1e-12) * n_out))
        if k >= n_out:
            out[target] = (1.0, 1.0)
            continue
        cdf = binom.sf(k, n_out, at_least / n_out)  # P(T >= v), nondecreasing as v decreases
        u = torch.rand(n_boot, generator=generator, dtype=torch.float64).numpy()
        t_b = values[np.minimum(np.searchsorted(cdf, u), len(values) - 1)]
        above = (n_in - np.searchsorted(s_in, t_b, side="right")) / n_in
        tpr = torch.binomial(torch.full((n_boot,), float(n_in), dtype=torch.float64),
                             torch.from_numpy(above), generator=generator) / n_in
        lo, hi = torch.quantile(tpr, torch.tensor([alpha, 1 - alpha], dtype=torch.float64))
        out[target] = (float(lo), float(hi))
    return out


def membership_metrics(
    scores_in: torch.Tensor,
    scores_out: torch.Tensor,
    threshold: float,
    *,
    fpr_targets=(0.01, 0.001),
    priors=(0.01, 0.1, 0.5),
    n_boot: int = 1000,
    confidence: float = 0.95,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """TPR, FPR, precision (also at each member prior), accuracy, balanced accuracy and advantage
    (TPR - FPR) at the fitted threshold; over the ROC: AUROC, AUPR, advantage (max TPR - FPR),
    FPR at 95% TPR, TPR at each FPR target with the FPR reached.

    Intervals: Clopper-Pearson for the TPR and the FPR at the threshold (``tpr_ci_*``,
    ``fpr_ci_*``), the exact bootstrap for the TPR at each FPR target (read at FPR <= target).
    Scores are checked as in the functional metrics (real [N], N >= 1, no NaN)."""
    s_in, s_out = checks.scores(scores_in, "scores_in"), checks.scores(scores_out, "scores_out")
    threshold = checks.number(threshold, "threshold", finite=False)
    d_in, d_out = s_in >= threshold, s_out >= threshold
    tp, fp = int(d_in.sum()), int(d_out.sum())
    n_in, n_out = len(s_in), len(s_out)
    fpr, tpr, _ = roc(s_in, s_out)
    y = np.r_[np.ones(n_in), np.zeros(n_out)]
    s = np.r_[_np(s_in), _np(s_out)]
    m = {
        "tpr": tp / n_in,
        "fpr": fp / n_out,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "accuracy": (tp + n_out - fp) / (n_in + n_out),
        "balanced_accuracy": (tp / n_in + 1 - fp / n_out) / 2,
        "advantage_at_threshold": tp / n_in - fp / n_out,
        "advantage": advantage(fpr, tpr),
        "auroc": float(roc_auc_score(y, s)),
        "aupr": float(average_precision_score(y, s)),
        "fpr_at_95tpr": fpr_at_tpr(fpr, tpr, 0.95),
        "threshold": float(threshold),
        "n_members": n_in,
        "n_nonmembers": n_out,
        "flagged": fp,
    }
    for prior in priors:
        m[f"precision_at_prior_{prior:g}"] = precision_at_prior(m["tpr"], m["fpr"], prior)
    for target in fpr_targets:
        t, f = tpr_at_fpr(fpr, tpr, target)
        m[f"tpr_at_fpr_{target:g}"] = t
        m[f"fpr_reached_{target:g}"] = f
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    m["tpr_ci_low"], m["tpr_ci_high"] = rate_interval(tp, n_in, confidence)
    m["fpr_ci_low"], m["fpr_ci_high"] = rate_interval(fp, n_out, confidence)
    intervals = bootstrap_tpr_at_fpr(s_in, s_out, fpr_targets, n_boot=n_boot, confidence=confidence, generator=g)
    for target, (lo, hi) in intervals.items():
        m[f"tpr_at_fpr_{target:g}_ci_low"], m[f"tpr_at_fpr_{target:g}_ci_high"] = lo, hi
    return m


def mmps(max_in: torch.Tensor, max_out: torch.Tensor, flagged_in: torch.Tensor,
         flagged_out: torch.Tensor) -> dict[str, float]:
    """Mean max prediction score of true/false positives/negatives (Hintersdorf et al. 2022)."""
    def mean(v, mask):
        return float(v[mask].double().mean()) if mask.any() else float("nan")

    return {"mmps_tp": mean(max_in, flagged_in), "mmps_fn": mean(max_in, ~flagged_in),
            "mmps_fp": mean(max_out, flagged_out), "mmps_tn": mean(max_out, ~flagged_out)}
