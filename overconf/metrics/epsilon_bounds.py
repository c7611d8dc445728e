"""Empirical epsilon lower bounds from membership scores (DP auditing): pure functions of counts
and score arrays.

Hypothesis-testing view of (eps, delta)-DP (Kairouz et al. 2015): every test of "member" vs
"non-member" has FPR + e^eps FNR >= 1 - delta and FNR + e^eps FPR >= 1 - delta, so an attack with
rates (FPR, FNR) shows eps >= max(log((1 - delta - FPR) / FNR), log((1 - delta - FNR) / FPR)).

1. Several-run style, from counts (Jagielski et al. 2020, "Auditing differentially private machine
   learning", arXiv 2006.07709; TF-Privacy's ``epsilon_lower_bound`` module): the rates are
   replaced by their upper Clopper-Pearson limits (each side at level alpha / 2, as statsmodels'
   ``proportion_confint(method="beta")``), so that with probability >= 1 - alpha

       eps_lb = max(log((1 - delta - FPR_hi) / FNR_hi), log((1 - delta - FNR_hi) / FPR_hi))

   is below the true epsilon (:func:`epsilon_lower_bound`). At delta = 0 the two terms are the
   ratio bounds TPR_lo / FPR_hi and TNR_lo / FNR_hi of TF-Privacy's Clopper-Pearson method
   (its worked example: 500 of 500 members and 0 of 500 non-members flagged, alpha = 0.01: 4.54).
   :func:`ratio_lower_bound` also gives the Katz-log and Bailey lower bounds of TPR / FPR (Aho and
   Bowyer 2015; TF-Privacy's docstring examples) for comparison.
   :func:`heldout_threshold_bound`: the threshold is chosen on a held-out half of the scores,
   never on the points the bound is computed on; when ``n_thresholds`` > 1 thresholds are carried
   to the evaluation half, each is tested at alpha / n_thresholds (Bonferroni).

2. One run (Steinke, Nasr and Jagielski 2023, "Privacy auditing with one (1) training run",
   Theorem 3 / their Algorithm for the p-value): m canaries, each included independently with
   probability 1/2; the auditor guesses on r of them (abstaining on the rest) and v guesses are
   right. Under (eps, delta)-DP, with q = e^eps / (1 + e^eps),

       P[W >= v] <= P[Binomial(r, q) >= v] + 2 m delta max_{i = 1..v} P[v > Binomial(r, q) >= v - i] / i,

   and eps_lb is the largest eps whose p-value is < beta = 1 - confidence
   (:func:`one_run_p_value`, :func:`one_run_epsilon`). With every guess right and delta = 0 this
   is logit(beta^(1 / r)) (the paper's all-correct curves). :func:`one_run_audit` makes the
   guesses: the k+ highest scores guessed "in", the k- lowest "out" (abstain on the rest).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .membership import clopper_pearson as exact_interval

RATIO_METHODS = ("clopper-pearson", "katz-log", "bailey")


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha = {alpha} must be in (0, 0.5) (1 - confidence, e.g. 0.05)")


def clopper_pearson(k, n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided exact interval of k / n at level 1 - alpha (alpha / 2 on each side): (low, high);
    :func:`overconf.metrics.membership.clopper_pearson` in the alpha form of this module."""
    return exact_interval(k, n, 1 - alpha)


def ratio_lower_bound(tp, fp, pos: int, neg: int, alpha: float, method: str = "clopper-pearson") -> np.ndarray:
    """Lower confidence bound (level 1 - alpha) of TPR / FPR = (tp / pos) / (fp / neg).

    ``clopper-pearson``: TPR_lo / FPR_hi (two-sided limits, alpha / 2 each). ``katz-log``: the
    ratio times exp(z sqrt(FNR / tp + TNR / fp)), z = Phi^-1(alpha). ``bailey``: the ratio times
    ((1 + z / 3 sqrt(FNR / tp + TNR / fp - z^2 FNR TNR / (9 tp fp))) / (1 - z^2 TNR / (9 fp)))^3.
    Katz / Bailey take fp = 0 as 0.5 (and tp = pos, fp = neg as pos - 0.5, neg - 0.5); tp = 0 gives 0."""
    _check_alpha(alpha)
    if method not in RATIO_METHODS:
        raise ValueError(f"unknown ratio method {method!r}; use one of {RATIO_METHODS}")
    tp0, fp0 = np.atleast_1d(np.asarray(tp, float)), np.atleast_1d(np.asarray(fp, float))
    if method == "clopper-pearson":
        tpr_lo, _ = clopper_pearson(tp0, pos, alpha)
        _, fpr_hi = clopper_pearson(fp0, neg, alpha)
        return np.where((tpr_lo <= 0) | (fpr_hi >= 1), 0.0, tpr_lo / np.where(fpr_hi > 0, fpr_hi, 1.0))
    z = stats.norm.ppf(alpha)
    both_full = (tp0 == pos) & (fp0 == neg)
    if method == "katz-log":
        tp_, fp_ = np.where(both_full, pos - 0.5, tp0), np.where(both_full, neg - 0.5, fp0)
        fp_ = np.where(fp_ == 0, 0.5, fp_)
    else:  # bailey
        tp_ = np.where(tp0 == pos, pos - 0.5, tp0)
        fp_ = np.where(fp0 == neg, neg - 0.5, fp0)
        fp_ = np.where(fp0 == 0, 0.5, fp_)
    tpr, fpr = tp_ / pos, fp_ / neg
    fnr, tnr = 1 - tpr, 1 - fpr
    safe_tp = np.where(tp_ > 0, tp_, 1.0)
    ratio = tpr / fpr
    if method == "katz-log":
        out = ratio * np.exp(z * np.sqrt(fnr / safe_tp + tnr / fp_))
    else:
        num = 1 + z / 3 * np.sqrt(fnr / safe_tp + tnr / fp_ - z ** 2 * fnr * tnr / (9 * safe_tp * fp_))
        out = ratio * (num / (1 - z ** 2 * tnr / (9 * fp_))) ** 3
    return np.where(tp0 == 0, 0.0, out)


def epsilon_from_rates(fpr_hi, fnr_hi, delta: float = 0.0) -> np.ndarray:
    """max(log((1 - delta - FPR_hi) / FNR_hi), log((1 - delta - FNR_hi) / FPR_hi)), floored at 0
    (a term with a non-positive numerator says nothing; a zero denominator is inf)."""
    fpr_hi, fnr_hi = np.asarray(fpr_hi, float), np.asarray(fnr_hi, float)

    def term(num, den):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(num <= 0, 0.0, np.where(den <= 0, np.inf, np.log(np.maximum(num, 1e-300) / den)))
    return np.maximum(0.0, np.maximum(term(1 - delta - fpr_hi, fnr_hi), term(1 - delta - fnr_hi, fpr_hi)))


def epsilon_lower_bound(tp, fp, pos: int, neg: int, alpha: float = 0.05, delta: float = 0.0) -> np.ndarray:
    """eps_lb at level 1 - alpha from tp of ``pos`` members and fp of ``neg`` non-members flagged
    (upper Clopper-Pearson limits of FPR = fp / neg and FNR = 1 - tp / pos; module docstring)."""
    _check_alpha(alpha)
    if not 0 <= delta < 1:
        raise ValueError(f"delta = {delta} must be in [0, 1)")
    tp, fp = np.asarray(tp, float), np.asarray(fp, float)
    _, fpr_hi = clopper_pearson(fp, neg, alpha)
    _, fnr_hi = clopper_pearson(pos - tp, pos, alpha)
    return epsilon_from_rates(fpr_hi, fnr_hi, delta)


def counts_at(in_scores: np.ndarray, out_scores: np.ndarray, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """(tp, fp): members / non-members with score >= each threshold."""
    s1, s0 = np.sort(np.asarray(in_scores, float)), np.sort(np.asarray(out_scores, float))
    t = np.asarray(thresholds, float)
    return len(s1) - np.searchsorted(s1, t, "left"), len(s0) - np.searchsorted(s0, t, "left")


def heldout_threshold_bound(in_scores, out_scores, *, alpha: float = 0.05, delta: float = 0.0,
                            n_thresholds: int = 1, rng: np.random.Generator) -> dict[str, float]:
    """eps_lb with thresholds chosen on held-out data: each side is split at random in halves; on
    the selection half every observed score is a candidate threshold, ranked by the bound itself
    computed on that half (which favours thresholds with enough counts to be confirmed, unlike the
    point estimate, infinite at zero false positives); the ``n_thresholds`` best
    are evaluated on the other half with Clopper-Pearson limits at alpha / n_thresholds
    (Bonferroni). Returns the largest bound, its threshold and the evaluation half's counts."""
    if n_thresholds < 1:
        raise ValueError(f"n_thresholds = {n_thresholds} must be >= 1")
    s1, s0 = np.asarray(in_scores, float), np.asarray(out_scores, float)
    if len(s1) < 4 or len(s0) < 4:
        raise ValueError(f"the held-out bound needs >= 4 member and non-member scores, got {len(s1)} and {len(s0)}")
    p1, p0 = rng.permutation(len(s1)), rng.permutation(len(s0))
    sel1, ev1 = s1[p1[: len(s1) // 2]], s1[p1[len(s1) // 2:]]
    sel0, ev0 = s0[p0[: len(s0) // 2]], s0[p0[len(s0) // 2:]]
    cand = np.unique(np.r_[sel1, sel0])
    tp, fp = counts_at(sel1, sel0, cand)
    on_selection = epsilon_lower_bound(tp, fp, len(sel1), len(sel0), alpha, delta)
    best = cand[np.argsort(-on_selection, kind="stable")[:n_thresholds]]
    tp_e, fp_e = counts_at(ev1, ev0, best)
    eps = epsilon_lower_bound(tp_e, fp_e, len(ev1), len(ev0), alpha / n_thresholds, delta)
    i = int(np.argmax(eps))
    return {"eps_lb": float(eps[i]), "threshold": float(best[i]), "tp": float(tp_e[i]), "fp": float(fp_e[i]),
            "n_in": float(len(ev1)), "n_out": float(len(ev0)), "tpr": float(tp_e[i] / len(ev1)),
            "fpr": float(fp_e[i] / len(ev0))}


def one_run_p_value(m: int, r: int, v: int, eps: float, delta: float = 0.0) -> float:
    """Steinke et al. 2023, Theorem 3: the probability of >= v right guesses out of r (m canaries,
    each in with probability 1/2) under (eps, delta)-DP, q = e^eps / (1 + e^eps):
    P[Bin(r, q) >= v] + 2 m delta max_{i=1..v} P[v > Bin(r, q) >= v - i] / i (at most 1)."""
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v = {v}, r = {r}, m = {m}")
    if eps < 0 or not 0 <= delta <= 1:
        raise ValueError(f"need eps >= 0 and delta in [0, 1], got {eps}, {delta}")
    q = 1.0 / (1.0 + math.exp(-eps))
    tail = float(stats.binom.sf(v - 1, r, q))
    if delta == 0 or v == 0:
        return min(tail, 1.0)
    pmf = stats.binom.pmf(np.arange(v - 1, -1, -1), r, q)  # P[Bin = v - i], i = 1..v
    worst = float(np.max(np.cumsum(pmf) / np.arange(1, v + 1)))
    return min(tail + 2 * m * delta * worst, 1.0)


def one_run_epsilon(m: int, r: int, v: int, delta: float = 0.0, confidence: float = 0.95) -> float:
    """The largest eps with :func:`one_run_p_value` < 1 - confidence (bisection; 0 when even eps = 0
    is not rejected): the one-run audit's lower bound."""
    beta = 1 - confidence
    if not 0 < beta < 1:
        raise ValueError(f"confidence = {confidence} must be in (0, 1)")
    if one_run_p_value(m, r, v, 0.0, delta) >= beta:
        return 0.0
    lo, hi = 0.0, 1.0
    while one_run_p_value(m, r, v, hi, delta) < beta:
        lo, hi = hi, hi * 2
        if hi > 1e3:
            return float("inf")
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if one_run_p_value(m, r, v, mid, delta) < beta else (lo, mid)
    return lo


def one_run_audit(scores, included, *, guesses, delta: float = 0.0, confidence: float = 0.95,
                  m: int | None = None) -> dict[str, float]:
    """The one-run audit of canaries' ``scores`` (higher = more member-like) and their random
    ``included`` flags: for each k in ``guesses`` the k highest scores are guessed "in" and the k
    lowest "out" (r = 2k guesses, abstain on the rest); each k is tested at
    (1 - confidence) / len(guesses) (Bonferroni); the largest bound wins. ``m``: the number of
    canaries of the design (default len(scores))."""
    s, inc = np.asarray(scores, float), np.asarray(included, bool)
    m = len(s) if m is None else int(m)
    guesses = [int(k) for k in guesses]
    if not guesses or min(guesses) < 1 or 2 * max(guesses) > len(s):
        raise ValueError(f"guesses must be k >= 1 with 2k <= {len(s)} canaries, got {guesses}")
    order = np.argsort(-s, kind="stable")
    conf = 1 - (1 - confidence) / len(guesses)
    best = {"eps_lb": -1.0}
    for k in guesses:
        v = int(inc[order[:k]].sum() + (~inc[order[len(s) - k:]]).sum())
        eps = one_run_epsilon(m, 2 * k, v, delta, conf)
        if eps > best["eps_lb"]:
            best = {"eps_lb": eps, "k": float(k), "r": float(2 * k), "v": float(v), "m": float(m)}
    return best
