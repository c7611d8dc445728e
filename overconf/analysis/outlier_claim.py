"""Verdict on seed 003's claim that vulnerable points are class outliers, with an interval.

The claim (Khalil et al. 2025, arXiv 2511.16792, abstract): "Our findings reveal that these samples
are often outliers within their classes (e.g., noisy or hard to classify)." The paper's evidence
is visual (t-SNE, Grad-CAM of the samples closest to and farthest from their class centroid); the
measurable form tested here: members flagged vulnerable lie farther from their class centroid
(penultimate features, :mod:`.characteristics`) than the other members, i.e. the AUROC of the
centroid distance for predicting the flag is above 0.5. With the 95% bootstrap interval (over
members) of that AUROC: ``holds`` when the whole interval is above 0.5, ``does not hold`` when it
is wholly below (the flagged members are closer to their centroid: typical points), else
``inconclusive``; ``not tested`` with fewer than ``MIN_FLAGGED`` flagged members (a bootstrap over
members says little about a handful of points: with one flagged member every resample that holds it
gives nearly the same AUROC) or with all of them flagged.

Seed 003's claim is tested with seed 003's own flag (``protocol: paper``); the same AUROC for
overconf's flag and for the leave-one-out flag of Jebreel et al. 2025 (lira_analysis) is reported
beside it under those names: a finding about those flags, not a test of seed 003's claim.
"""
from __future__ import annotations

import math

CLAIM = ("Our findings reveal that these samples are often outliers within their classes "
         "(e.g., noisy or hard to classify).")
CLAIM_SOURCE = "Khalil et al. 2025 (seed 003), abstract"
CHARACTERISTIC = "centroid_distance"
HOLDS, FAILS, INCONCLUSIVE, NOT_TESTED = "holds", "does not hold", "inconclusive", "not tested"
MIN_FLAGGED = 10
"""fewest flagged members (and other members) for a verdict"""


def decide(auc: float, low: float, high: float, n_flagged: int, n: int) -> str:
    """The verdict of 'AUROC > 0.5' from the AUROC and its interval over n members, n_flagged flagged."""
    if any(math.isnan(v) for v in (auc, low, high)) or min(n_flagged, n - n_flagged) < MIN_FLAGGED:
        return NOT_TESTED
    if low > 0.5:
        return HOLDS
    if high < 0.5:
        return FAILS
    return INCONCLUSIVE


def whose(flag: str) -> str:
    """Which paper's flag a per-sample flag column is."""
    if flag.startswith("vulnerable_paper_"):
        return "seed 003's protocol"
    if flag.startswith("highly_vulnerable_"):
        return "Jebreel et al. 2025 (leave-one-out)"
    return "overconf (shadow threshold)"


def verdicts(auc_table) -> list[dict]:
    """One verdict per flag of the characteristics table (its ``CHARACTERISTIC`` rows): flag, whose
    flag, n_flagged, AUROC, interval, verdict, and whether it tests seed 003's claim."""
    out = []
    if len(auc_table) == 0:
        return out
    for r in auc_table[auc_table["characteristic"] == CHARACTERISTIC].itertuples():
        out.append({"flag": r.flag, "whose": whose(r.flag), "tests_claim": r.flag.startswith("vulnerable_paper_"),
                    "n_flagged": int(r.n_flagged), "auroc": float(r.auroc), "ci_low": float(r.ci_low),
                    "ci_high": float(r.ci_high),
                    "verdict": decide(r.auroc, r.ci_low, r.ci_high, int(r.n_flagged), int(r.n))})
    return out


def rows(found: list[dict]) -> list[dict]:
    """Tidy rows: metric ``outlier_claim_auroc`` per flag, with the interval and the verdict."""
    return [{"source": "members", "metric": "outlier_claim_auroc", "value": v["auroc"], "flag": v["flag"],
             "ci_low": v["ci_low"], "ci_high": v["ci_high"], "verdict": v["verdict"], "whose_flag": v["whose"]}
            for v in found]


def markdown(found: list[dict]) -> str:
    """The claim quoted, then one line per flag (seed 003's own flag first)."""
    if not found:
        return ""
    lines = [f"**Verdict on seed 003's claim** ({CLAIM_SOURCE}: \"{CLAIM}\"), measured as the AUROC of the "
             f"distance to the class centroid (penultimate features) for flagged vs other members, 95% "
             f"bootstrap interval; above 0.5: the flagged members are class outliers (not tested with fewer "
             f"than {MIN_FLAGGED} flagged members):", ""]
    paper = [v for v in found if v["tests_claim"]]
    if not paper:
        lines.append("- seed 003's flag not computed (`protocol: overconf`): the claim is not tested; set "
                     "`protocol: paper` or `both`.")
    for v in sorted(found, key=lambda v: not v["tests_claim"]):
        what = "tests the claim" if v["tests_claim"] else "a finding about this flag, not a test of seed 003's claim"
        lines.append(f"- `{v['flag']}` ({v['whose']}; {v['n_flagged']} flagged): AUROC {v['auroc']:.3f} "
                     f"[{v['ci_low']:.3f}, {v['ci_high']:.3f}]: **{v['verdict']}** ({what})")
    return "\n".join(lines)
