"""Causal memorization, multi-run estimators (seed 001: Even et al. 2026, "Membership Inference
Attacks from Causal Principles"; only its abstract is available here).

The abstract defines the memorization of a point as the causal effect of including it in the
training set and asks for causal analogues of the MIA metrics. The forms below are the standard
potential-outcome ones (named so; not the paper's text). With S_i(1), S_i(0) the score of point
i from a model trained with / without it (the rest of the training set random, as drawn):

    TPR_c(t) = mean_i P(S_i(1) >= t)      FPR_c(t) = mean_i P(S_i(0) >= t)
    AUC_c    = P(S_I(1) > S_J(0)) (+ ties / 2)     m_i = P(S_i(1) > S_i(0)) (+ ties / 2)

Multi-run: K models, keep[k, n] = point n trains model k (randomised, Bernoulli 1/2 or balanced),
S[k, n] = the score of model k on point n. Inclusion is randomised, so the plain IN / OUT
averages are unbiased (no confounding):

    TPR_c = sum keep 1[S >= t] / sum keep,   FPR_c = sum (1 - keep) 1[S >= t] / sum (1 - keep)
    AUC_c = Mann-Whitney over all IN scores vs all OUT scores (pooled over points and models)
    m_i   = Mann-Whitney over point i's IN scores vs its OUT scores (per-point AUC)
    delta_i = mean IN score - mean OUT score of point i (Feldman & Zhang 2020's memorization
              estimate when the score is the 0/1 correctness: ``correct`` gives that form too)
    d_i   = delta_i / pooled standard deviation (standardised mean difference, Cohen's d)

Intervals: percentile bootstrap over runs (the K models resampled with replacement, seeded), the
unit that is randomised and independent. Duplicated models in a resample shrink a point's spread,
so the interval of the standardised form d_i is biased upwards (read it with care; the others are
rank or mean statistics).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata

from .weighted import as_np, percentile_interval, weighted_auc, weighted_tpr_at_fpr

AGGREGATES = ("causal_auc", "causal_tpr", "causal_fpr", "mean_delta", "mean_standardized", "mean_point_auc")
PER_POINT = ("auc", "delta", "standardized")


def _check(scores, keep) -> tuple[np.ndarray, np.ndarray]:
    s, k = as_np(scores), as_np(keep, bool)
    if s.ndim != 2 or s.shape != k.shape:
        raise ValueError(f"scores and keep must both be [K, N], got {s.shape} and {k.shape}")
    return s, k


def causal_rates(scores, keep, threshold: float) -> tuple[float, float]:
    """(TPR_c, FPR_c) of the rule ``score >= threshold`` over the IN / OUT cells of the matrices."""
    s, k = _check(scores, keep)
    hit = s >= threshold
    n_in, n_out = k.sum(), (~k).sum()
    return (float((hit & k).sum() / n_in) if n_in else float("nan"),
            float((hit & ~k).sum() / n_out) if n_out else float("nan"))


def causal_auc(scores, keep) -> float:
    """AUC_c: Mann-Whitney AUC of every IN score against every OUT score."""
    s, k = _check(scores, keep)
    return weighted_auc(s[k], s[~k])


def causal_tpr_at_fpr(scores, keep, max_fpr: float) -> tuple[float, float]:
    """(TPR_c, FPR_c reached) at the best threshold with FPR_c <= ``max_fpr`` (pooled ROC)."""
    s, k = _check(scores, keep)
    return weighted_tpr_at_fpr(s[k], s[~k], max_fpr)


def per_point(scores, keep, correct=None) -> dict[str, np.ndarray]:
    """Per-point memorization [N]: ``auc`` (m_i), ``delta``, ``standardized`` (d_i), ``n_in``,
    ``n_out`` and, with ``correct`` [K, N] (0/1), ``feldman`` = P(correct | IN) - P(correct | OUT).
    nan where a point has no IN or no OUT model."""
    s, k = _check(scores, keep)
    a, b = k.sum(0).astype(float), (~k).sum(0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ranks = rankdata(s, axis=0)  # average ranks per column: ties count 1/2
        auc = ((ranks * k).sum(0) - a * (a + 1) / 2) / (a * b)
        mean_in, mean_out = (s * k).sum(0) / a, (s * ~k).sum(0) / b
        delta = mean_in - mean_out
        ss = ((s - mean_in) ** 2 * k).sum(0) + ((s - mean_out) ** 2 * ~k).sum(0)
        sd = np.sqrt(ss / (a + b - 2))
        scale = np.abs(s).max(0) + 1.0  # a point whose (resampled) scores are all equal has no spread
        standardized = np.where(sd > 1e-9 * scale, delta / sd, np.nan)
        out = {"auc": auc, "delta": delta, "standardized": standardized, "n_in": a, "n_out": b}
        if correct is not None:
            c = as_np(correct)
            out["feldman"] = (c * k).sum(0) / a - (c * ~k).sum(0) / b
    bad = (a == 0) | (b == 0)
    for name in ("auc", "delta", "standardized", "feldman"):
        if name in out:
            out[name] = np.where(bad, np.nan, out[name])
    return out


def aggregates(scores, keep, threshold: float) -> dict[str, float]:
    """Every aggregate of :data:`AGGREGATES` for one score / keep matrix."""
    tpr, fpr = causal_rates(scores, keep, threshold)
    pp = per_point(scores, keep)
    with np.errstate(all="ignore"):
        means = {f"mean_{n}": float(np.nanmean(pp[name])) if np.isfinite(pp[name]).any() else float("nan")
                 for n, name in (("delta", "delta"), ("standardized", "standardized"), ("point_auc", "auc"))}
    return {"causal_auc": causal_auc(scores, keep), "causal_tpr": tpr, "causal_fpr": fpr, **means}


@dataclass
class MultiRun:
    """Estimates with percentile-bootstrap intervals over the K runs."""

    estimates: dict[str, float]
    low: dict[str, float]
    high: dict[str, float]
    points: dict[str, np.ndarray]
    """per-point estimates (:func:`per_point`)"""
    points_low: dict[str, np.ndarray] = field(default_factory=dict)
    points_high: dict[str, np.ndarray] = field(default_factory=dict)
    threshold: float = 0.0
    n_boot: int = 0

    def rows(self, **extra) -> list[dict]:
        """One row per aggregate: metric, value, ci_low, ci_high (+ ``extra`` columns)."""
        return [{**extra, "metric": m, "value": v, "ci_low": self.low[m], "ci_high": self.high[m]}
                for m, v in self.estimates.items()]


def multi_run(scores, keep, threshold: float = 0.0, *, tpr_at: tuple[float, ...] = (0.01, 0.1),
              correct=None, n_boot: int = 200, seed: int = 0, confidence: float = 0.95) -> MultiRun:
    """Multi-run causal estimates from ``scores`` [K, N] and ``keep`` [K, N]: the aggregates at
    ``threshold``, TPR_c at each FPR_c of ``tpr_at`` (``causal_tpr_at_<x>``) and per-point
    memorization, each with a bootstrap interval over runs (``n_boot`` resamples of the K models,
    numpy generator seeded by ``seed``; ``n_boot = 0``: no interval, nan)."""
    s, k = _check(scores, keep)
    c = None if correct is None else as_np(correct)

    def stats(idx):
        out = aggregates(s[idx], k[idx], threshold)
        for x in tpr_at:
            out[f"causal_tpr_at_{x:g}"] = causal_tpr_at_fpr(s[idx], k[idx], x)[0]
        return out

    every = np.arange(len(s))
    est = stats(every)
    points = per_point(s, k, c)
    nan = {m: float("nan") for m in est}
    result = MultiRun(est, dict(nan), dict(nan), points, threshold=threshold, n_boot=n_boot)
    if n_boot <= 0:
        return result
    rng = np.random.default_rng(seed)
    boot_aggr, boot_points = [], {name: [] for name in points if name not in ("n_in", "n_out")}
    for _ in range(n_boot):
        idx = rng.integers(0, len(s), len(s))
        rep = stats(idx)
        boot_aggr.append([rep[m] for m in est])
        pp = per_point(s[idx], k[idx], None if c is None else c[idx])
        for name in boot_points:
            boot_points[name].append(pp[name])
    lo, hi = percentile_interval(np.array(boot_aggr), confidence)
    result.low, result.high = dict(zip(est, map(float, lo))), dict(zip(est, map(float, hi)))
    for name, reps in boot_points.items():
        result.points_low[name], result.points_high[name] = percentile_interval(np.array(reps), confidence)
    return result
