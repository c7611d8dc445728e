"""Verdicts with numbers on the seeds' defense claims (issue 13; seed 003, Jia et al. 2019):

1. DP-SGD gives the strongest protection (lowest AUROC and TPR at 1% FPR against ``test`` of any
   defense setting) at a large accuracy cost (test accuracy >= ``ACC_COST`` below the baseline)
   and time cost (training >= ``TIME_COST`` x the baseline's);
2. L2 / dropout give a favourable compromise: privacy gain per accuracy lost, (AUROC_base -
   AUROC) / max(acc_base - acc, ``MIN_LOSS``), is larger than DP-SGD's;
3. logit reweighting lowers the attack AUROC and advantage without changing the test accuracy;
4. MemGuard does nothing against label-only attacks (their scores equal the baseline's).

Intervals (:mod:`overconf.report.defense_samples`): every difference between two settings gets a
95% paired sample bootstrap (members, ``test`` non-members and test images resampled with the same
indices for every setting; conditional on the trained models) and, with two seeds or more, a 95%
Student-t interval over the per-seed differences (seeds paired; training randomness included),
which then decides; with one seed the bootstrap decides. A claim 'x < 0' holds when the deciding
interval is wholly below 0, does not hold when it is wholly above, and is inconclusive otherwise
(:func:`overconf.report.intervals.decide`); a ratio comparison (claim 2) decides on the per-seed
ratio differences (one seed: larger in >= 97.5% of the bootstrap replicates). The time cost is a
mean over seeds (no interval). DP-SGD settings are named with epsilon, its delta and the epsilon at
delta = 1/n (issue 21). Pure functions of a StudyResult's per-sample scores and rows (attacks and
metrics never run a network).
"""
from __future__ import annotations

import math

import torch

from .defense_report import TEST, baseline_setting, epsilon_text, setting_info, setting_label
from .defense_samples import N_BOOT, Samples, judge
from .defense_samples import advantage, auroc, tpr_at_fpr  # noqa: F401  (re-exported: the statistics)
from .intervals import FAILS, HOLDS, INCONCLUSIVE, NOT_TESTED, combine, decide, t_interval
from .tables import Table, ordered

ACC_COST = 0.05
TIME_COST = 2.0
MIN_LOSS = 0.001
LABEL_ONLY = ("label_only", "gap")
"""attack label prefixes of attacks that read only predicted labels"""


def label_only(attack: str) -> bool:
    return attack.startswith(LABEL_ONLY)


def _settings(rows: list[dict], name: str) -> list[str]:
    return [s for s, i in setting_info(rows).items() if i["defense"] == name]


# ---------------------------------------------------------------- the claims
def dp_strongest(s: Samples, rows, base, attacks) -> tuple[str, list[str]]:
    dps = [x for x in _settings(rows, "dp_sgd") if s.has(x)]
    others = [x for x in ordered(rows, "setting") if x not in dps and x != base and s.has(x)]
    if not dps or not others or not s.has(base):
        return NOT_TESTED, ["needs a dp_sgd setting, another defense setting and the baseline"]
    statuses, lines = [], []
    for attack in attacks:
        parts = []
        for what in ("auroc", "tpr_at_fpr_0.01"):
            dp = min(dps, key=lambda x: s.point(x, what, attack))
            other = min(others, key=lambda x: s.point(x, what, attack))
            st, diff = judge(s, dp, other, what, attack, 0.0, "below", strict=True)
            parts.append(st)
            lines.append(f"`{attack}` {what}: best DP-SGD `{setting_label(rows, s.model, dp)}` "
                         f"{s.point(dp, what, attack):.3f} vs best other "
                         f"`{other}` {s.point(other, what, attack):.3f}, {diff}: {st}")
        statuses.append(HOLDS if all(p == HOLDS for p in parts) else FAILS if FAILS in parts else INCONCLUSIVE)
    protection = combine(statuses).replace(" settings", " cases")
    t = Table(rows)
    costs = []
    for dp in dps:
        acc_st, acc = judge(s, base, dp, "accuracy", None, ACC_COST, "above")
        ratio = time_ratio(t, s.model, dp, base)
        time_st = INCONCLUSIVE if math.isnan(ratio) else HOLDS if ratio >= TIME_COST else FAILS
        costs += [acc_st, time_st]
        gn = [v for v in t.get(s.model, dp, "-", "defense", "dp_accuracy_cost_vs_groupnorm") if not math.isnan(v)]
        alone = (f" (DP alone, against the same GroupNorm model without DP: {sum(gn) / len(gn):+.3f})"
                 if gn else "")
        lines.append(f"cost of `{dp}`, {epsilon_text(t, s.model, dp)}: test accuracy drop, {acc}{alone} "
                     f"(large: >= {ACC_COST}): {acc_st}; training CPU time x{ratio:.2f} of the baseline's (large: >= "
                     f"{TIME_COST}, mean over seeds, no interval): {time_st}")
    cost = HOLDS if all(c == HOLDS for c in costs) else FAILS if FAILS in costs else INCONCLUSIVE
    lines.insert(0, f"protection: {protection}; cost: {cost}")
    if protection == cost:
        return protection, lines
    if FAILS in (protection, cost):
        return FAILS, lines
    return f"protection {protection}, cost {cost}", lines


def time_ratio(t: Table, model: str, setting: str, base: str) -> float:
    """The setting's training time over the baseline's: CPU seconds (robust to a shared CPU), else
    wall seconds where CPU seconds were not recorded; NaN without either."""
    for metric in ("train_cpu_seconds", "train_seconds"):
        a, b = (_finite(t.get(model, x, "-", "train", metric)) for x in (setting, base))
        if a and b:
            return (sum(a) / len(a)) / (sum(b) / len(b))
    return float("nan")


def _finite(vals: list[float]) -> list[float]:
    return [v for v in vals if not math.isnan(v)]


def _ratio(s: Samples, setting: str, base: str, attack: str, boot: bool):
    f = s.boot if boot else s.point
    gain = f(base, "auroc", attack) - f(setting, "auroc", attack)
    loss = f(base, "accuracy") - f(setting, "accuracy")
    if boot:
        return gain / loss.clamp_min(MIN_LOSS)
    return gain, loss, gain / max(loss, MIN_LOSS)


def _seed_ratios(s: Samples, setting: str, base: str, attack: str) -> list[float]:
    """Per seed: (AUROC_base - AUROC) / max(acc_base - acc, MIN_LOSS)."""
    gain = [b - x for b, x in zip(s.per_seed(base, "auroc", attack), s.per_seed(setting, "auroc", attack))]
    loss = [b - x for b, x in zip(s.per_seed(base, "accuracy"), s.per_seed(setting, "accuracy"))]
    return [g / max(lo, MIN_LOSS) for g, lo in zip(gain, loss)]


def compromise(s: Samples, rows, base, attacks) -> tuple[str, list[str]]:
    cands = [x for x in _settings(rows, "l2") + _settings(rows, "dropout") if s.has(x)]
    dps = [x for x in _settings(rows, "dp_sgd") if s.has(x)]
    if not cands or not dps or not s.has(base):
        return NOT_TESTED, ["needs an l2 or dropout setting, a dp_sgd setting and the baseline"]
    statuses, lines = [], []
    for attack in attacks:
        dp = min(dps, key=lambda x: s.point(x, "auroc", attack))
        rd = _ratio(s, dp, base, attack, True)
        g_dp, l_dp, r_dp = _ratio(s, dp, base, attack, False)
        for x in cands:
            g, l, r = _ratio(s, x, base, attack, False)
            p = float((_ratio(s, x, base, attack, True) > rd).double().mean())
            st = HOLDS if p >= 0.975 else FAILS if p <= 0.025 else INCONCLUSIVE
            text = f"larger in {p:.1%} of {len(rd)} paired sample-bootstrap replicates"
            if len(s.seeds) >= 2:  # the seed level decides: per-seed ratio differences, Student-t
                iv = t_interval([a - b for a, b in zip(_seed_ratios(s, x, base, attack),
                                                       _seed_ratios(s, dp, base, attack))])
                st = decide(iv, 0.0, "above", strict=True)
                text += f"; ratio difference at seed level: {iv.text(digits=2, signed=True)}"
            else:
                text += ", 1 seed: no seed-level interval"
            statuses.append(st)
            lines.append(f"`{attack}` `{x}`: AUROC gain {g:+.3f} per accuracy lost {l:+.3f} = {r:.2f} vs "
                         f"`{setting_label(rows, s.model, dp)}` {g_dp:+.3f} / {l_dp:+.3f} = {r_dp:.2f}; {text}: {st}")
    return combine(statuses).replace(" settings", " cases"), lines


def reweighting(s: Samples, rows, base, attacks) -> tuple[str, list[str]]:
    settings = [x for x in _settings(rows, "logit_reweighting") if s.has(x)]
    scored = [a for a in attacks if not label_only(a)]
    if not settings or not s.has(base) or not scored:
        return NOT_TESTED, ["needs a logit_reweighting setting, the baseline and a score-based attack"]
    statuses, lines = [], []
    for x in settings:
        acc = s.point(x, "accuracy") - s.point(base, "accuracy")
        acc_st = HOLDS if acc == 0 else FAILS
        swapped = [r["value"] for r in rows if r.get("setting") == x and r.get("source") == "defense"
                   and r.get("metric") == "label_swapped_fraction"]
        if swapped:  # keep_label: true swaps the label back: the accuracy is unchanged by construction
            acc_st = INCONCLUSIVE
            lines.append(f"`{x}` keeps the label by a fix-up (keep_label: true, label_swapped_fraction "
                         f"{max(swapped):.4f}): accuracy unchanged by construction, not measured: {acc_st}")
        else:
            lines.append(f"`{x}` test accuracy change {acc:+.4f} on the released argmax (must be 0): {acc_st}")
        for attack in scored:
            parts = []
            for what in ("auroc", "advantage"):
                st, diff = judge(s, x, base, what, attack, 0.0, "below", strict=True)
                parts.append(st)
                lines.append(f"`{x}` `{attack}` {what} {s.point(base, what, attack):.3f} -> "
                             f"{s.point(x, what, attack):.3f}, {diff}: {st}")
            p = parts + [acc_st]
            statuses.append(HOLDS if all(q == HOLDS for q in p) else FAILS if FAILS in p else INCONCLUSIVE)
    return combine(statuses).replace(" settings", " cases"), lines


def memguard_label_only(s: Samples, rows, base, attacks) -> tuple[str, list[str]]:
    settings = [x for x in _settings(rows, "memguard") if s.has(x)]
    lo = [a for a in attacks if label_only(a)]
    if not settings or not lo or not s.has(base):
        return NOT_TESTED, ["needs a memguard setting, the baseline and a label-only attack"]
    statuses, lines = [], []
    for x in settings:
        for attack in lo:
            same = all(torch.equal(s.cells[(x, seed)].scores[attack][k], s.cells[(base, seed)].scores[attack][k])
                       for seed in s.seeds for k in s.cells[(base, seed)].scores[attack])
            below, diff = judge(s, x, base, "auroc", attack, 0.0, "below")
            above, _ = judge(s, x, base, "auroc", attack, 0.0, "above")
            st = HOLDS if same else (INCONCLUSIVE if below != FAILS and above != FAILS else FAILS)
            statuses.append(st)
            lines.append(f"`{x}` `{attack}` AUROC {s.point(base, 'auroc', attack):.3f} -> "
                         f"{s.point(x, 'auroc', attack):.3f} ({'identical per-sample scores on every set' if same else diff}): {st}")
    return combine(statuses).replace(" settings", " cases"), lines


CLAIMS = (("DP-SGD gives the strongest protection at a large accuracy and time cost", dp_strongest),
          ("L2 / dropout give a favourable privacy-utility compromise (better than DP-SGD's)", compromise),
          ("logit reweighting lowers attack AUROC and advantage without changing accuracy", reweighting),
          ("MemGuard does nothing against label-only attacks", memguard_label_only))


def defense_verdicts(result, model: str) -> list[tuple[str, str, list[str]]]:
    """(claim, status, evidence lines) for each claim, for one model."""
    rows = result.rows
    base = baseline_setting(rows)
    s = Samples(result, model)
    attacks = [a for a in ordered([r for r in rows if r["attack"] != "-"], "attack") if s.has(base, a)]
    if not s.seeds or base is None or not s.has(base) or TEST not in next(iter(s.cells.values())).sources:
        return [(claim, NOT_TESTED, ["needs the baseline and the test source"]) for claim, _ in CLAIMS]
    return [(claim, *fn(s, rows, base, attacks)) for claim, fn in CLAIMS]


def defense_verdicts_markdown(result, level: int = 2) -> str:
    models = ordered(result.rows, "model")
    seeds = sorted({c.seed for c in result.cells})
    decides = (f"with {len(seeds)} seeds ({', '.join(map(str, seeds))}) the seed-level interval decides: a 95% "
               f"Student-t interval over the per-seed differences (seeds paired; training randomness included)"
               if len(seeds) >= 2 else "with 1 seed the bootstrap decides (no seed-level interval: training "
               "randomness needs more seeds)")
    intro = (f"Against the `test` source; intervals: 95% paired bootstrap over samples ({N_BOOT} replicates of "
             f"members, test non-members and test images, the same for every setting; conditional on the trained "
             f"models) and {decides}.")
    out = ["#" * level + " Verdicts: the seeds' defense claims", "", intro, ""]
    for model in models:
        for i, (claim, status, lines) in enumerate(defense_verdicts(result, model), 1):
            out.append(f"{i}. **{claim} ({model}): {status}**")
            out += [f"   - {line}" for line in lines]
    return "\n".join(out) + "\n"
