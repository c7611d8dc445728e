"""How many points and seeds a verdict needs: a small power planner.

An inconclusive verdict on a false-positive rate means the interval was too wide for its bound.
To detect an FPR change of ``delta`` (0.05) at power 1 - beta (80%) with a two-sided test at
level a (5%):

- points per source (non-members, and as many members: overconf compares equal-size sets), for
  the two-proportion z-test on the arcsine scale (Cohen's h = |2 asin sqrt(p1) - 2 asin sqrt(p0)|,
  p1 = p0 + delta, or p0 - delta where p0 + delta > 1): the smallest n per group with
  Phi(h sqrt(n / 2) - z_{1-a/2}) + Phi(-h sqrt(n / 2) - z_{1-a/2}) >= 1 - beta (statsmodels'
  ``NormalIndPower`` with ``proportion_effectsize``, ratio 1; tested against it);
- seeds, for the one-sample (paired, across seeds) t-test of the per-seed values with standard
  deviation sd: the smallest n >= 2 whose power under the noncentral t distribution,
  P(|T| > t_{1-a/2, n-1}) with T ~ t'(n - 1, (delta / sd) sqrt(n)), reaches 1 - beta (statsmodels'
  ``TTestPower``; tested against it). With one seed there is no sd: the binomial standard
  deviation of an FPR estimated on n_now points, sqrt(p0 (1 - p0) / n_now), stands in (a lower
  bound: training randomness adds to it).
"""
from __future__ import annotations

import math

from scipy.stats import nct, norm
from scipy.stats import t as student_t

DELTA, POWER, ALPHA = 0.05, 0.8, 0.05


def two_proportion_power(n: float, p0: float, p1: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided two-proportion z-test (arcsine scale) with n points per group."""
    h = abs(2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p0)))
    z = norm.ppf(1 - alpha / 2)
    return float(norm.cdf(h * math.sqrt(n / 2) - z) + norm.cdf(-h * math.sqrt(n / 2) - z))


def points_needed(p0: float, delta: float = DELTA, power: float = POWER, alpha: float = ALPHA) -> int:
    """Points per group (non-members per source, and members) to detect p0 -> p0 +- delta."""
    p0 = min(max(float(p0), 0.0), 1.0)
    p1 = p0 + delta if p0 + delta <= 1 else p0 - delta
    h = abs(2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p0)))
    n = max(1, math.ceil(2 * ((norm.ppf(1 - alpha / 2) + norm.ppf(power)) / h) ** 2))  # one tail: an upper bound
    while n > 1 and two_proportion_power(n - 1, p0, p1, alpha) >= power:
        n -= 1
    return n


def t_test_power(n: int, effect: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided one-sample t-test with n values and standardised effect delta / sd."""
    crit = student_t.ppf(1 - alpha / 2, n - 1)
    nc = effect * math.sqrt(n)
    return float(nct.sf(crit, n - 1, nc) + nct.cdf(-crit, n - 1, nc))


def seeds_needed(sd: float, delta: float = DELTA, power: float = POWER, alpha: float = ALPHA,
                 most: int = 100_000) -> int:
    """Seeds for the t-test across seeds to detect a mean change ``delta`` of values with standard
    deviation ``sd`` (2 where sd is 0; ``most`` caps the search)."""
    if sd <= 0:
        return 2
    effect = delta / sd
    lo, hi = 1, 2  # power(lo) < target (or lo = 1: no test), power(hi) >= target after doubling
    while hi < most and t_test_power(hi, effect, alpha) < power:
        lo, hi = hi, hi * 2
    hi = min(hi, most)
    while hi - lo > 1:  # power increases with n: bisect
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if t_test_power(mid, effect, alpha) >= power else (mid, hi)
    return hi


def plan(p0: float, n_now: int | None, per_seed: list[float], delta: float = DELTA, power: float = POWER,
         rate: bool = True) -> str:
    """One line for an inconclusive verdict: points per source (``rate``: the value is an FPR near
    ``p0``, measured on ``n_now`` non-members when known) and seeds needed (from the sd of the
    per-seed values or differences, else the binomial sd at ``n_now``)."""
    vals = [v for v in per_seed if not math.isnan(v)]
    if len(vals) >= 2:
        mean = sum(vals) / len(vals)
        sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
        seeds = f"{seeds_needed(sd, delta, power)} seeds (sd over this run's {len(vals)} seeds {sd:.3f})"
    elif n_now and rate:
        sd = math.sqrt(max(p0 * (1 - p0), 1e-12) / n_now)
        seeds = f"at least {seeds_needed(sd, delta, power)} seeds (binomial sd {sd:.3f} at {n_now} points; 1 seed)"
    else:
        seeds = "more seeds (1 seed: no sd)"
    what = "an FPR change" if rate else "a change"
    head = f"power plan: to detect {what} of {delta:g} at {power:.0%} power (two-sided, 5%), "
    if not rate:
        return head + seeds
    n = points_needed(p0, delta, power)
    now = f" (this run: {n_now})" if n_now else ""
    return head + f"{n} non-members and {n} members per source{now}, or {seeds}"
