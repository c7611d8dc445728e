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

p-values and many verdicts at once: each evidence line with an interval also gets the p-value of
the two-sided Student-t test of "mean = bound" (p < 0.05 exactly when the 95% interval excludes
the bound, i.e. when the line is decided; a conjunction of claims takes the largest of its parts'
p-values, the intersection-union test). The summary corrects the p-values of all lines together
by Benjamini-Hochberg at a 5% false discovery rate (overconf.report.multiplicity) and says which
decided lines do not survive it; an inconclusive line gets a power plan (overconf.report.power):
the points per source and the seeds needed to detect an FPR change of 0.05 at 80% power.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .comparison import Comparison, Entry
from .intervals import (CONFIDENCE, FAILS, HOLDS, INCONCLUSIVE, NOT_TESTED, Interval, combine,  # noqa: F401
                        decide, t_interval)
from .multiplicity import FDR, fdr_by_key
from .power import plan

NEAR_ZERO = 0.05
HIGH = 0.5


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
    p_values: dict[str, float] = field(default_factory=dict)
    """evidence label -> p-value of its test (module docstring); NaN or absent: no interval"""
    plans: dict[str, str] = field(default_factory=dict)
    """evidence label -> the power plan of an inconclusive line"""

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


def _compare(e: Entry, b: Entry, key: str, name: str, side: str, words: dict[str, str]) -> tuple[str, str, float]:
    """Status, text and p-value of the claim 'e's key is <side> b's' from the paired per-seed differences."""
    iv = t_interval(paired_differences(e, b, key))
    status = decide(iv, 0.0, side, strict=True)
    text = f"{name} {_n(b.values[key])} -> {_n(e.values[key])} ({words[status]}"
    return status, text + (f"; difference {iv.text(signed=True)})" if iv.n >= 2 else ")"), iv.p_value(0.0)


def _plan(v: "Verdict", label: str, status: str, p0: float, per_seed: list[float], rate: bool = True) -> None:
    """An inconclusive line's power plan (overconf.report.power)."""
    if status == INCONCLUSIVE and not math.isnan(p0):
        v.plans[label] = plan(p0, None, per_seed, rate=rate)


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
        checks, parts, ps, fprs = [], [], [], []  # fprs: (baseline FPR, paired differences)
        for key, name in (("mean_ood_fpr", "mean OOD FPR"), ("fake_fpr", "fake FPR")):
            if not math.isnan(e.values[key]) and not math.isnan(b.values[key]):
                status, text, p = _compare(e, b, key, name, "below", lower)
                checks.append(status)
                parts.append(text)
                ps.append(p)
                fprs.append((b.values[key], paired_differences(e, b, key)))
        if not checks:
            v.note = "needs OOD or fake sources"
            continue
        status, text, p = _compare(e, b, "auroc", "AUROC", "above", higher)
        checks.append(status)
        parts.append(text)
        ps.append(p)
        label = _label(c, e)
        v.evidence.append((label, _all(checks), ", ".join(parts), e.model))
        v.p_values[label] = max(ps)  # intersection-union test of the conjunction
        _plan(v, label, _all(checks), *fprs[0])
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
        status = decide(iv, bound, side)
        v.evidence.append((_label(c, e), status, f"FPR {scaled} {base}{numbers}", e.model))
        v.p_values[_label(c, e)] = iv.p_value(bound)
        _plan(v, _label(c, e), status, e.values[key], list(seed_values(e, key).values()))
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
        v.p_values[_label(c, e)] = iv.p_value(0.0)
        _plan(v, _label(c, e), status, 0.5, diffs, rate=False)
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
    found = verdicts(c)
    fdr = fdr_by_key({(i, label): v.p_values.get(label, math.nan) for i, v in enumerate(found)
                      for label, *_ in v.evidence})
    if fdr:
        out += [f"p: two-sided Student-t test of the claim's bound (p < 0.05 exactly where the line is decided); "
                f"q: Benjamini-Hochberg adjusted over the {len(fdr)} lines with a p-value (false discovery rate "
                f"{FDR:.0%}; statsmodels `multipletests`, `fdr_bh`): "
                f"{sum(r for r, _ in fdr.values())} of {len(fdr)} lines stay decided after the correction.", ""]
    for i, v in enumerate(found, 1):
        note = f" ({v.note})" if v.status == NOT_TESTED and v.note else ""
        out.append(f"{i}. **{v.finding}: {v.status}**{note}")
        for label, status, text, _ in v.evidence:
            line = f"   - {label}: {text}: {status}"
            if (i - 1, label) in fdr:
                r, q = fdr[(i - 1, label)]
                line += f" (p = {v.p_values[label]:.3g}, BH q = {q:.3g}"
                line += "; not decided after BH)" if status != INCONCLUSIVE and not r else ")"
            out.append(line)
            if label in v.plans:
                out.append(f"     - {v.plans[label]}")
    return "\n".join(out)
