"""Verdicts of the causal-factors study, with numbers.

1. The paper's claims (Baluta et al. 2022, abstract), per attack: predictive power >= 0.90 on
   held-out configurations; the accuracy gap alone does not explain attack accuracy (another
   factor keeps an effect with the gap adjusted for); generalization and the attacks share causal
   factors. (No verdict on "the gap has the largest effect": the paper does not claim it.)
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


PREDICTIVE_MIN = 0.90


def _attacks(analysis: dict) -> list[tuple[str, dict]]:
    return [(o, r) for o, r in analysis["outcomes"].items() if o.startswith("attack_") and "effects" in r]


def _overall(holds: int, n: int) -> str:
    if n == 0:
        return "not tested"
    return "holds" if holds == n else "does not hold" if holds == 0 else f"partly holds ({holds} of {n} attacks)"


def predictive_verdict(analysis: dict) -> tuple[str, list[str]]:
    """Claim 1 (abstract): "Our causal models have high predictive power (0.90), i.e., their analytical
    predictions match with observations in unseen experiments": per attack, Pearson r of the
    held-out predictions >= 0.90 (overconf's K-fold over configurations)."""
    lines, holds, n = [], 0, 0
    for outcome, res in _attacks(analysis):
        r = res.get("predictive", {}).get("r", float("nan"))
        n += 1
        ok = r >= PREDICTIVE_MIN
        holds += ok
        lines.append(f"- {outcome}: r = {r:.3f}: {'holds' if ok else 'does not hold'}")
    return _overall(holds, n), lines


def gap_not_alone_verdict(analysis: dict) -> tuple[str, list[str]]:
    """Claim 2 (abstract): MI attacks are not "a natural consequence of imperfect generalization
    only"; the paper refutes hypotheses "that over-simplify": per attack, holds when a factor with a
    causal path to it keeps an effect (95% interval excluding 0) with the accuracy gap adjusted for."""
    lines, holds, n = [], 0, 0
    for outcome, res in _attacks(analysis):
        n += 1
        kept = [e for e in res.get("beside_gap", []) if e["ci_low"] > 0 or e["ci_high"] < 0]
        holds += bool(kept)
        text = ", ".join(f"{e['factor']} {e['effect']:+.3f} [{e['ci_low']:+.3f}, {e['ci_high']:+.3f}]" for e in kept)
        lines.append(f"- {outcome}: {text or 'no factor keeps an effect beside the gap'}: "
                     f"{'holds' if kept else 'does not hold'}")
    return _overall(holds, n), lines


def shared_factors_verdict(analysis: dict) -> tuple[str, list[str]]:
    """Claim 3 (abstract): "a new connection between generalization and MI attacks via their shared
    causal factors": per attack (and per graph of ``analysis.graph_by``), the learned graph's ancestors of the attack and of the accuracy gap
    (generalization) share at least one factor."""
    import networkx as nx

    lines, holds, n = [], 0, 0
    for outcome, res in _attacks(analysis):
        n += 1
        g = nx.DiGraph(res["edges"])
        g.add_nodes_from([res["outcome"], "acc_gap"])
        shared = sorted((nx.ancestors(g, res["outcome"]) & nx.ancestors(g, "acc_gap")) - {"acc_gap"})
        holds += bool(shared)
        lines.append(f"- {outcome}: shared causes {', '.join(shared) or 'none'}: {'holds' if shared else 'does not hold'}")
    return _overall(holds, n), lines


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
