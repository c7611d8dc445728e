"""From per-seed values to a verdict: the Student-t interval of their mean, its p-value against a
bound, and the decision holds / does not hold / inconclusive (one seed: the value decides).

mean +- t_{(1+c)/2, n-1} s / sqrt(n) (s: sample standard deviation); the two-sided t-test of
"mean = bound" has p < 1 - c exactly when the interval excludes the bound. Used by the reference
study's verdicts (overconf.report.verdicts) and the defense verdicts (overconf.report.defense_verdicts).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95
NOT_TESTED = "not tested in this run"
HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"


@dataclass
class Interval:
    """Mean and Student-t interval of per-seed values (``low``/``high`` are NaN for one value)."""

    mean: float
    low: float
    high: float
    n: int
    se: float = math.nan
    """standard error s / sqrt(n) (NaN for fewer than two values)"""

    def p_value(self, bound: float) -> float:
        """Two-sided Student-t p-value of H0: mean = bound (n - 1 degrees of freedom); NaN below two values."""
        if self.n < 2 or math.isnan(self.se):
            return math.nan
        if self.se == 0:
            return 1.0 if self.mean == bound else 0.0
        return float(2 * stats.t.sf(abs(self.mean - bound) / self.se, self.n - 1))

    def text(self, digits: int = 3, signed: bool = False) -> str:
        f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
        if self.n >= 2 and 0 < max(abs(self.low), abs(self.high)) < 10 ** -digits:
            f = "{:+.2e}" if signed else "{:.2e}"  # tiny differences: rounding would hide the sign
        if self.n < 2:
            return f"{f.format(self.mean)} (1 seed: no interval)"
        return (f"{f.format(self.mean)}, {CONFIDENCE:.0%} CI [{f.format(self.low)}, {f.format(self.high)}] "
                f"over {self.n} seeds")


def t_interval(values, confidence: float = CONFIDENCE, limits: tuple[float, float] | None = None) -> Interval:
    """mean +- t_{(1+confidence)/2, n-1} * s / sqrt(n) (s: sample standard deviation); NaNs dropped.
    ``limits``: the range the mean must lie in (a rate: (0, 1)); the interval is cut to it, which
    keeps its coverage and cannot change a verdict against a bound inside the range."""
    vals = [float(v) for v in values if not math.isnan(v)]
    n = len(vals)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean = sum(vals) / n
    if n == 1:
        return Interval(mean, float("nan"), float("nan"), 1)
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    if limits is not None:
        low, high = max(low, limits[0]), min(high, limits[1])
    return Interval(mean, low, high, n, sd / math.sqrt(n))


def decide(iv: Interval, bound: float, side: str, strict: bool = False) -> str:
    """Judge the claim 'value <side> bound' (side: "below" or "above"; ``strict``: < / > instead of
    <= / >=) from the interval: holds / does not hold / inconclusive (one seed: the value decides)."""
    if iv.n == 0:
        return INCONCLUSIVE
    low, high = (iv.low, iv.high) if iv.n >= 2 else (iv.mean, iv.mean)
    if side == "above":  # mirror onto "below"
        low, high, bound = -high, -low, -bound
    elif side != "below":
        raise ValueError(f"side must be 'below' or 'above', got {side!r}")
    if high < bound or (not strict and high == bound):
        return HOLDS
    if low > bound or (strict and low == bound):
        return FAILS
    return INCONCLUSIVE


def combine(statuses: list[str]) -> str:
    """Several statuses into one: holds / does not hold / inconclusive when all agree, else partly
    holds (k of n settings), naming the inconclusive ones."""
    n, k = len(statuses), statuses.count(HOLDS)
    d, i = statuses.count(FAILS), statuses.count(INCONCLUSIVE)
    if n == 0:
        return NOT_TESTED
    if k == n or d == n or i == n:
        return statuses[0]
    if i == 0:
        return f"partly holds ({k} of {n} settings)"
    if k == 0:
        return f"does not hold or inconclusive ({d} do not hold, {i} inconclusive of {n} settings)"
    return f"partly holds ({k} of {n} settings; {i} inconclusive)"
