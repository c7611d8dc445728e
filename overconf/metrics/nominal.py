"""Nominal vs realised false-positive rate of a decision rule ``score >= threshold``.

An attack's threshold is set for a false-positive rate p0 (its *nominal* FPR: a requested level
such as 1%, or the shadow's FPR at the fitted threshold). On a non-member source with k of n
points flagged the realised FPR is k / n with the exact Clopper-Pearson interval
[B^-1(a/2; k, n-k+1), B^-1(1-a/2; k+1, n-k)] (a = 1 - confidence). The promise is *broken* on
that source where p0 lies outside the interval, i.e. where the exact two-sided binomial test of
H0: FPR = p0 by doubling the smaller tail,

    p = min(1, 2 min(P(X <= k), P(X >= k))),  X ~ Binomial(n, p0),

rejects at level a: the central (Clopper-Pearson) test is the one whose acceptance region is
exactly the set of p0 inside the interval, so flag and p-value always agree (tested). These
p-values are what the report corrects for multiplicity (Benjamini-Hochberg over every source,
attack, level and setting of a run).
"""
from __future__ import annotations

import math

import torch
from scipy.stats import binom

from .membership import rate_interval


def binomial_p_value(k: int, n: int, p0: float) -> float:
    """Two-sided exact binomial p-value of H0: rate = p0 for k successes in n trials, the central
    (doubled smaller tail) test dual to the Clopper-Pearson interval; nan for n = 0."""
    if n == 0:
        return float("nan")
    lower = float(binom.cdf(k, n, p0))       # P(X <= k)
    upper = float(binom.sf(k - 1, n, p0))    # P(X >= k)
    return min(1.0, 2.0 * min(lower, upper))


def nominal_vs_realised(nonmember_scores: torch.Tensor, threshold: float, nominal: float,
                        confidence: float = 0.95) -> dict[str, float]:
    """The realised FPR of ``score >= threshold`` on non-members against the nominal FPR: ``fpr``,
    ``fpr_ci_low`` / ``fpr_ci_high`` (Clopper-Pearson), ``nominal_fpr``, ``p_value`` (exact test of
    FPR = nominal, module docstring) and ``broken`` (1.0 where the nominal lies outside the interval)."""
    flagged = torch.as_tensor(nonmember_scores).double() >= threshold
    k, n = int(flagged.sum()), len(flagged)
    lo, hi = rate_interval(k, n, confidence)
    broken = float("nan") if n == 0 else float(not lo <= nominal <= hi)
    return {"fpr": k / n if n else float("nan"), "fpr_ci_low": lo, "fpr_ci_high": hi,
            "nominal_fpr": float(nominal), "p_value": binomial_p_value(k, n, nominal), "broken": broken}


def declared_rows(nominal: float | None, threshold: float, nonmember_scores: torch.Tensor,
                  confidence: float = 0.95) -> dict[str, float]:
    """Rows of an attack's main threshold on one source against the FPR it declares (nominal):
    ``nominal_fpr``, ``nominal_fpr_p_value``, ``nominal_fpr_broken`` (the realised ``fpr`` and its
    interval are the membership rows); nothing where no FPR is declared."""
    if nominal is None or math.isnan(nominal):
        return {}
    m = nominal_vs_realised(nonmember_scores, threshold, nominal, confidence)
    return {"nominal_fpr": m["nominal_fpr"], "nominal_fpr_p_value": m["p_value"], "nominal_fpr_broken": m["broken"]}


def level_rows(level: float, threshold: float, member_scores: torch.Tensor, nonmember_scores: torch.Tensor,
               confidence: float = 0.95) -> dict[str, float]:
    """Rows of the rule set for the requested FPR level L on one source: ``level_<L>_fpr`` with its
    interval (``_ci_low``, ``_ci_high``), ``level_<L>_p_value``, ``level_<L>_broken`` and
    ``level_<L>_tpr`` (the fraction of members flagged)."""
    m = nominal_vs_realised(nonmember_scores, threshold, level, confidence)
    flagged = torch.as_tensor(member_scores).double() >= threshold
    p = f"level_{level:g}_"
    return {p + "fpr": m["fpr"], p + "fpr_ci_low": m["fpr_ci_low"], p + "fpr_ci_high": m["fpr_ci_high"],
            p + "p_value": m["p_value"], p + "broken": m["broken"],
            p + "tpr": float(flagged.double().mean()) if len(flagged) else float("nan")}
