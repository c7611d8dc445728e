"""Does each finding of the reference study (Hintersdorf et al. 2022, Sec. 5) hold in a run?

Checked for the comparison's attack (the threshold attack by default) on every model, with the
numbers that decide it:

1. label smoothing lowers the mean OOD FPR (and the fake FPR where GAN sources exist) and raises
   the test AUROC, against the baseline;
2. LLLA drives the FPR on scaled inputs to near 0 (<= ``NEAR_ZERO``);
3. temperature T = 10 leaves the FPR on scaled inputs high (>= ``HIGH``);
4. L2 weight decay pushes the test AUROC towards 0.5 (|AUROC - 0.5| smaller than the baseline's).

A finding is "holds" when it holds for every qualifying setting, "does not hold" when for none,
"partly holds (k of n)" otherwise, and "not tested in this run" when the setting, the baseline
or the source it needs is absent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .comparison import Comparison, Entry

NEAR_ZERO = 0.05
HIGH = 0.5
NOT_TESTED = "not tested in this run"


@dataclass
class Verdict:
    key: str
    finding: str
    status: str = NOT_TESTED
    evidence: list[tuple[str, bool, str]] = field(default_factory=list)
    """(model / setting, holds, the numbers)"""
    note: str = ""

    def settle(self) -> "Verdict":
        if self.evidence:
            k, n = sum(h for _, h, _ in self.evidence), len(self.evidence)
            self.status = "holds" if k == n else "does not hold" if k == 0 else f"partly holds ({k} of {n} settings)"
        return self


def _n(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.3f}"


def _scaled_source(c: Comparison) -> str | None:
    return "scaled" if "scaled" in c.sources else next((s for s in c.sources if s.startswith("scaled")), None)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _label(c: Comparison, e: Entry) -> str:
    return f"{e.model} / {c.label(e)}"


def label_smoothing(c: Comparison) -> Verdict:
    v = Verdict("label_smoothing", "Label smoothing lowers OOD / fake FPR and raises AUROC")
    candidates = [e for e in c.entries if e.info.kind == "label_smoothing"
                  and _positive(e.info.recipe.get("label_smoothing"))]
    if not candidates:
        v.note = "needs a setting that only sets recipe.label_smoothing > 0"
    for e in candidates:
        b = c.baseline_for(e)
        if b is None:
            v.note = "needs a baseline setting"
            continue
        checks, parts = [], []
        for key, name in (("mean_ood_fpr", "mean OOD FPR"), ("fake_fpr", "fake FPR")):
            if not math.isnan(e.values[key]) and not math.isnan(b.values[key]):
                lower = e.values[key] < b.values[key]
                checks.append(lower)
                parts.append(f"{name} {_n(b.values[key])} -> {_n(e.values[key])} "
                             f"({'lower' if lower else 'not lower'})")
        if not checks:
            v.note = "needs OOD or fake sources"
            continue
        higher = e.values["auroc"] > b.values["auroc"]
        parts.append(f"AUROC {_n(b.values['auroc'])} -> {_n(e.values['auroc'])} "
                     f"({'higher' if higher else 'not higher'})")
        v.evidence.append((_label(c, e), all(checks) and higher, ", ".join(parts)))
    return v.settle()


def _scaled_fpr(v: Verdict, c: Comparison, candidates: list[Entry], holds, needs: str) -> Verdict:
    """Each candidate's FPR on the scaled source, judged by ``holds(fpr)``."""
    scaled = _scaled_source(c)
    if scaled is None or not candidates:
        v.note = needs
        return v
    for e in candidates:
        b = c.baseline_for(e)
        f = e.values[f"fpr:{scaled}"]
        base = f"baseline {_n(b.values[f'fpr:{scaled}'])} -> " if b is not None else ""
        v.evidence.append((_label(c, e), holds(f), f"FPR {scaled} {base}{_n(f)}"))
    return v.settle()


def llla_scaled(c: Comparison) -> Verdict:
    return _scaled_fpr(Verdict("llla_scaled", f"LLLA drives scaled-input FPR to near 0 (<= {NEAR_ZERO})"), c,
                       [e for e in c.entries if e.info.kind == "llla"], lambda f: f <= NEAR_ZERO,
                       "needs an LLLA setting and the 'scaled' source")


def temperature_scaled(c: Comparison) -> Verdict:
    return _scaled_fpr(Verdict("temperature_scaled", f"T = 10 leaves scaled-input FPR high (>= {HIGH})"), c,
                       [e for e in c.entries if e.info.kind == "temperature" and e.info.calibration.get("T") == 10],
                       lambda f: f >= HIGH, "needs a setting with calibration temperature T: 10 and the 'scaled' source")


def l2_auroc(c: Comparison) -> Verdict:
    v = Verdict("l2_auroc", "L2 weight decay pushes AUROC towards 0.5")
    candidates = [e for e in c.entries
                  if e.info.kind == "weight_decay" and _positive(e.info.recipe.get("weight_decay"))]
    if not candidates:
        v.note = "needs a setting that only sets recipe.weight_decay > 0"
    for e in candidates:
        b = c.baseline_for(e)
        if b is None:
            v.note = "needs a baseline setting"
            continue
        closer = abs(e.values["auroc"] - 0.5) < abs(b.values["auroc"] - 0.5)
        v.evidence.append((_label(c, e), closer, f"AUROC {_n(b.values['auroc'])} -> {_n(e.values['auroc'])} "
                                                 f"({'closer to' if closer else 'not closer to'} 0.5)"))
    return v.settle()


def verdicts(c: Comparison) -> list[Verdict]:
    return [label_smoothing(c), llla_scaled(c), temperature_scaled(c), l2_auroc(c)]


def verdicts_markdown(c: Comparison, level: int = 2) -> str:
    out = ["#" * level + " Verdicts: the reference study's findings in this run", "",
           f"Attack `{c.attack}`; each finding is checked against the baseline `{c.baseline}` of the same "
           f"model, for every setting it applies to. Values are means over the run's seeds, compared "
           f"without a significance test: differences of about 0.01 can flip with the seed, so confirm "
           f"a close verdict with more seeds (`--set seeds=[0,1,2]`).", ""]
    for i, v in enumerate(verdicts(c), 1):
        note = f" ({v.note})" if v.status == NOT_TESTED and v.note else ""
        out.append(f"{i}. **{v.finding}: {v.status}**{note}")
        out += [f"   - {label}: {text}: {'holds' if holds else 'does not hold'}" for label, holds, text in v.evidence]
    return "\n".join(out)
