"""Does each finding of the reference study (Hintersdorf et al. 2022, Sec. 5) hold in a run?

Checked for the comparison's attack (the threshold attack by default) on every model, with the
numbers that decide it:

1. label smoothing lowers the mean OOD FPR (and the fake FPR where GAN sources exist) and raises
   the test AUROC, against the baseline;
2. LLLA drives the FPR on scaled inputs to near 0 (<= ``NEAR_ZERO``);
3. temperature T = 10 leaves the FPR on scaled inputs high (>= ``HIGH``);
4. L2 weight decay pushes the test AUROC towards 0.5 (|AUROC - 0.5| smaller than the baseline's).

Each (model, setting) is judged on the per-seed values (for a comparison with the baseline: the
per-seed differences, seeds paired) by their mean and the 95% Student-t interval
mean +- t_{0.975, n-1} s / sqrt(n): "holds" when the whole interval lies on the claimed side of
the claim's bound, "does not hold" when it lies wholly on the other side, "inconclusive" when it
straddles the bound. With one seed there is no interval: the single value decides, and the
verdict says so. A finding is stated per model (architecture) when the run has several; over the
settings it applies to it "holds" when every setting holds, "does not hold" when none does,
"partly holds (k of n settings)" when settings disagree, "inconclusive" when none is decided, and
"not tested in this run" when the setting, the baseline or the source it needs is absent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from scipy import stats

from .comparison import Comparison, Entry

NEAR_ZERO = 0.05
HIGH = 0.5
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
    return Interval(mean, low, high, n)


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


@dataclass
class Verdict:
    key: str
    finding: str
    status: str = NOT_TESTED
    evidence: list[tuple[str, str, str, str]] = field(default_factory=list)
    """(model / setting, holds | does not hold | inconclusive, the numbers, model)"""
    note: str = ""
    per_model: dict[str, str] = field(default_factory=dict)
    """model -> status, when the run has several models (the finding is judged per architecture)"""

    def settle(self) -> "Verdict":
        if self.evidence:
            models = list(dict.fromkeys(m for *_, m in self.evidence))
            self.per_model = {m: combine([s for _, s, _, mm in self.evidence if mm == m]) for m in models}
            self.status = (combine([s for _, s, _, _ in self.evidence]) if len(models) == 1
                           else "; ".join(f"{m}: {s}" for m, s in self.per_model.items()))
        return self


def _n(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.3f}"


def _scaled_source(c: Comparison) -> str | None:
    return "scaled" if "scaled" in c.sources else next((s for s in c.sources if s.startswith("scaled")), None)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _label(c: Comparison, e: Entry) -> str:
    return f"{e.model} / {c.label(e)}"


def seed_values(e: Entry, key: str) -> dict[int, float]:
    """Per-seed values of ``key`` (one value, seed -1, where the entry holds no per-seed values)."""
    return e.per_seed.get(key) or {-1: e.values[key]}


def paired_differences(e: Entry, b: Entry, key: str) -> list[float]:
    """e - b per seed, over the seeds both hold (a seed-less value pairs with any)."""
    ev, bv = seed_values(e, key), seed_values(b, key)
    if -1 in ev or -1 in bv:
        return [sum(ev.values()) / len(ev) - sum(bv.values()) / len(bv)]
    return [ev[s] - bv[s] for s in ev if s in bv]


def _compare(e: Entry, b: Entry, key: str, name: str, side: str, words: dict[str, str]) -> tuple[str, str]:
    """Status and text of the claim 'e's key is <side> b's' from the paired per-seed differences."""
    iv = t_interval(paired_differences(e, b, key))
    status = decide(iv, 0.0, side, strict=True)
    text = f"{name} {_n(b.values[key])} -> {_n(e.values[key])} ({words[status]}"
    return status, text + (f"; difference {iv.text(signed=True)})" if iv.n >= 2 else ")")


def _all(statuses: list[str]) -> str:
    """A conjunction of claims: holds if every part holds, does not hold if any part fails."""
    return HOLDS if all(s == HOLDS for s in statuses) else FAILS if FAILS in statuses else INCONCLUSIVE


def label_smoothing(c: Comparison) -> Verdict:
    v = Verdict("label_smoothing", "Label smoothing lowers OOD / fake FPR and raises AUROC")
    candidates = [e for e in c.entries if e.info.kind == "label_smoothing"
                  and _positive(e.info.recipe.get("label_smoothing"))]
    if not candidates:
        v.note = "needs a setting that only sets recipe.label_smoothing > 0"
    lower = {HOLDS: "lower", FAILS: "not lower", INCONCLUSIVE: "lower or not: inconclusive"}
    higher = {HOLDS: "higher", FAILS: "not higher", INCONCLUSIVE: "higher or not: inconclusive"}
    for e in candidates:
        b = c.baseline_for(e)
        if b is None:
            v.note = "needs a baseline setting"
            continue
        checks, parts = [], []
        for key, name in (("mean_ood_fpr", "mean OOD FPR"), ("fake_fpr", "fake FPR")):
            if not math.isnan(e.values[key]) and not math.isnan(b.values[key]):
                status, text = _compare(e, b, key, name, "below", lower)
                checks.append(status)
                parts.append(text)
        if not checks:
            v.note = "needs OOD or fake sources"
            continue
        status, text = _compare(e, b, "auroc", "AUROC", "above", higher)
        checks.append(status)
        parts.append(text)
        v.evidence.append((_label(c, e), _all(checks), ", ".join(parts), e.model))
    return v.settle()


def _scaled_fpr(v: Verdict, c: Comparison, candidates: list[Entry], bound: float, side: str, needs: str) -> Verdict:
    """Each candidate's FPR on the scaled source, judged against ``bound`` (<= for "below", >= for
    "above") from its per-seed values."""
    scaled = _scaled_source(c)
    if scaled is None or not candidates:
        v.note = needs
        return v
    key = f"fpr:{scaled}"
    for e in candidates:
        b = c.baseline_for(e)
        iv = t_interval(seed_values(e, key).values(), limits=(0.0, 1.0))  # a rate
        base = f"baseline {_n(b.values[key])} -> " if b is not None else ""
        numbers = _n(e.values[key]) if iv.n < 2 else iv.text()
        v.evidence.append((_label(c, e), decide(iv, bound, side), f"FPR {scaled} {base}{numbers}", e.model))
    return v.settle()


def llla_scaled(c: Comparison) -> Verdict:
    return _scaled_fpr(Verdict("llla_scaled", f"LLLA drives scaled-input FPR to near 0 (<= {NEAR_ZERO})"), c,
                       [e for e in c.entries if e.info.kind == "llla"], NEAR_ZERO, "below",
                       "needs an LLLA setting and the 'scaled' source")


def temperature_scaled(c: Comparison) -> Verdict:
    return _scaled_fpr(Verdict("temperature_scaled", f"T = 10 leaves scaled-input FPR high (>= {HIGH})"), c,
                       [e for e in c.entries if e.info.kind == "temperature" and e.info.calibration.get("T") == 10],
                       HIGH, "above",
                       "needs a setting with calibration temperature T: 10 and the 'scaled' source")


def l2_auroc(c: Comparison) -> Verdict:
    v = Verdict("l2_auroc", "L2 weight decay pushes AUROC towards 0.5")
    candidates = [e for e in c.entries
                  if e.info.kind == "weight_decay" and _positive(e.info.recipe.get("weight_decay"))]
    if not candidates:
        v.note = "needs a setting that only sets recipe.weight_decay > 0"
    closer = {HOLDS: "closer to", FAILS: "not closer to", INCONCLUSIVE: "inconclusive whether closer to"}
    for e in candidates:
        b = c.baseline_for(e)
        if b is None:
            v.note = "needs a baseline setting"
            continue
        ea, ba = seed_values(e, "auroc"), seed_values(b, "auroc")
        if -1 in ea or -1 in ba:
            diffs = [abs(e.values["auroc"] - 0.5) - abs(b.values["auroc"] - 0.5)]
        else:
            diffs = [abs(ea[s] - 0.5) - abs(ba[s] - 0.5) for s in ea if s in ba]
        iv = t_interval(diffs)
        status = decide(iv, 0.0, "below", strict=True)
        text = f"AUROC {_n(b.values['auroc'])} -> {_n(e.values['auroc'])} ({closer[status]} 0.5"
        text += f"; |AUROC - 0.5| difference {iv.text(signed=True)})" if iv.n >= 2 else ")"
        v.evidence.append((_label(c, e), status, text, e.model))
    return v.settle()


def verdicts(c: Comparison) -> list[Verdict]:
    return [label_smoothing(c), llla_scaled(c), temperature_scaled(c), l2_auroc(c)]


def _seed_counts(c: Comparison) -> list[int]:
    return sorted({len(e.per_seed.get("auroc") or {-1: 0}) for e in c.entries})


def verdicts_markdown(c: Comparison, level: int = 2) -> str:
    counts = _seed_counts(c)
    if counts == [1]:
        seeds = ("This run has 1 seed, so there is no interval: each verdict rests on one run and can flip "
                 "with the seed; run more seeds (`--set seeds=[0,1,2]`) for intervals.")
    else:
        seeds = (f"Per setting: mean and {CONFIDENCE:.0%} Student-t interval over the seeds "
                 f"({', '.join(map(str, counts))} per setting; differences with the baseline paired by seed). "
                 f"'holds' / 'does not hold' when the whole interval lies on one side of the claim's bound, "
                 f"'inconclusive' when it straddles it.")
    out = ["#" * level + " Verdicts: the reference study's findings in this run", "",
           f"Attack `{c.attack}`; each finding is checked against the baseline `{c.baseline}` of the same "
           f"model, for every setting it applies to, per model. {seeds}", ""]
    for i, v in enumerate(verdicts(c), 1):
        note = f" ({v.note})" if v.status == NOT_TESTED and v.note else ""
        out.append(f"{i}. **{v.finding}: {v.status}**{note}")
        out += [f"   - {label}: {text}: {status}" for label, status, text, _ in v.evidence]
    return "\n".join(out)
