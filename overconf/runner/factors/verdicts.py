"""Verdicts of the causal-factors study, with numbers.

1. The paper's main finding (Baluta et al. 2022): the train-test accuracy gap has the largest
   causal effect on attack accuracy: per attack, whether |effect(acc_gap)| is the largest of the
   factors' total effects in the learned graph.
2. Ours: does overconfidence cause false positives independently of the gap? The back-door effect
   of the mean max score on the OOD sources (and of the overconfidence error on test) on the
   max-score threshold's FPR on those sources, adjusting for the accuracy gap and the grid's knobs
   (standardised, DoWhy linear regression, both refuters): "holds" when the 95% interval is above 0
   and both refuters pass, "does not hold" when it is wholly at or below 0, else "inconclusive".
"""
from __future__ import annotations


def judge(effect: dict) -> str:
    if effect["ci_low"] > 0 and effect.get("random_common_cause_passes") and effect.get("data_subset_passes"):
        return "holds"
    if effect["ci_high"] <= 0:
        return "does not hold"
    return "inconclusive"


def gap_verdict(analysis: dict) -> tuple[str, list[str]]:
    """(overall verdict, one line per attack) on 'the accuracy gap has the largest effect'."""
    lines, holds, n = [], 0, 0
    for outcome, res in analysis["outcomes"].items():
        if not outcome.startswith("attack_") or "effects" not in res:
            continue
        n += 1
        effects = [e for e in res["effects"] if e["adjusted_for"] != "no causal path"]
        gap = next((e for e in res["effects"] if e["factor"] == "acc_gap"), None)
        if not effects:
            lines.append(f"- {outcome}: no factor has a causal path to it in the learned graph: does not hold")
            continue
        top = max(effects, key=lambda e: abs(e["effect"]))
        ok = top["factor"] == "acc_gap"
        holds += ok
        gap_text = f"acc_gap {gap['effect']:+.3f}" if gap is not None else "acc_gap not in the graph"
        lines.append(f"- {outcome}: largest |effect| {top['factor']} {top['effect']:+.3f} (95% CI "
                     f"[{top['ci_low']:+.3f}, {top['ci_high']:+.3f}]); {gap_text}"
                     f"{'' if gap is None or gap['adjusted_for'] != 'no causal path' else ' (no causal path)'}: "
                     f"{'holds' if ok else 'does not hold'}")
    if n == 0:
        return "not tested", lines
    overall = "holds" if holds == n else "does not hold" if holds == 0 else f"partly holds ({holds} of {n} attacks)"
    return overall, lines


def overconfidence_verdict(analysis: dict) -> tuple[str, list[str]]:
    lines, verdicts = [], []
    for e in analysis.get("overconfidence", []):
        v = judge(e)
        if e["factor"] != "acc_gap":
            verdicts.append(v)
        lines.append(f"- {e['factor']} -> {e['outcome']} (adjusted for {e['adjusted_for']}): {e['effect']:+.3f} SD/SD, "
                     f"95% CI [{e['ci_low']:+.3f}, {e['ci_high']:+.3f}]; random common cause "
                     f"{e['random_common_cause_effect']:+.3f} (p {e['random_common_cause_p']:.2f}), data subset "
                     f"{e['data_subset_effect']:+.3f} (p {e['data_subset_p']:.2f}): "
                     f"{v if e['factor'] != 'acc_gap' else 'for comparison'}")
    if not verdicts:
        return "not tested", lines
    overall = verdicts[0] if len(set(verdicts)) == 1 else f"partly holds ({verdicts.count('holds')} of {len(verdicts)})"
    return overall, lines
