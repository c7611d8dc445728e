"""Many verdicts at once: false discovery rate control over the tests of a run.

A study's verdicts are many tests (every source x attack x rule x setting x seed for the
nominal-vs-realised FPR; every setting's evidence for the reference study's findings). Reading
each one at level a inflates the share of false "broken" / "holds" calls. The Benjamini-Hochberg
step-up procedure (Benjamini & Hochberg 1995) keeps the expected share of false discoveries
among the rejected tests at most q for independent or positively dependent p-values: with the
m p-values sorted, p_(1) <= ... <= p_(m), reject the k smallest where k is the largest i with
p_(i) <= i q / m. The adjusted p-value (q-value) is min_{j >= i} min(1, m p_(j) / j). Computed by
statsmodels' ``multipletests(method="fdr_bh")``; NaN p-values (no test: one seed, no points)
stay out of m and get no q-value.
"""
from __future__ import annotations

import math

import numpy as np

FDR = 0.05
"""the false discovery rate the report controls"""


def benjamini_hochberg(p_values, q: float = FDR) -> tuple[list[bool], list[float]]:
    """(rejected, BH-adjusted p-values) for ``p_values`` (NaN: not a test; never rejected, q NaN)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray([float(v) for v in p_values], dtype=float)
    ok = ~np.isnan(p)
    rejected, adjusted = np.zeros(len(p), dtype=bool), np.full(len(p), math.nan)
    if ok.any():
        r, a, _, _ = multipletests(p[ok], alpha=q, method="fdr_bh")
        rejected[ok], adjusted[ok] = r, a
    return rejected.tolist(), adjusted.tolist()


def fdr_by_key(p_values: dict, q: float = FDR) -> dict:
    """key -> (rejected, BH-adjusted p-value) for the keys whose p-value is not NaN."""
    keys = [k for k, p in p_values.items() if not math.isnan(p)]
    rejected, adjusted = benjamini_hochberg([p_values[k] for k in keys], q)
    return {k: (r, a) for k, r, a in zip(keys, rejected, adjusted)}
