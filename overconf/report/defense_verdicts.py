"""Verdicts with numbers on the seeds' defense claims (issue 13; seed 003, Jia et al. 2019):

1. DP-SGD gives the strongest protection (lowest AUROC and TPR at 1% FPR against ``test`` of any
   defense setting) at a large accuracy cost (test accuracy >= ``ACC_COST`` below the baseline)
   and time cost (training >= ``TIME_COST`` x the baseline's);
2. L2 / dropout give a favourable compromise: privacy gain per accuracy lost, (AUROC_base -
   AUROC) / max(acc_base - acc, ``MIN_LOSS``), is larger than DP-SGD's;
3. logit reweighting lowers the attack AUROC and advantage without changing the test accuracy;
4. MemGuard does nothing against label-only attacks (their scores equal the baseline's).

Intervals: a paired bootstrap over samples, which exists with one seed. Members (the ``test``
source's member set), ``test`` non-members and the test images scored for accuracy are resampled
``N_BOOT`` times with the same indices for every setting of a model (the settings are evaluated on
the same samples), so a difference between two settings gets a percentile interval; with several
seeds a replicate is the mean over seeds of per-seed replicates. It is conditional on the trained
models: it captures sampling noise of the evaluation sets, not training randomness (that needs
seeds). A claim 'x < 0' holds when the whole 95% interval is below 0, does not hold when it is
wholly above, and is inconclusive otherwise (:func:`overconf.report.intervals.decide`); a ratio
comparison (claim 2) holds when the setting's ratio is larger in >= 97.5% of the replicates.
The time cost is one measurement (no interval). Pure functions of a StudyResult's per-sample scores
and rows (attacks and metrics never run a network).
"""
from __future__ import annotations

import math

import torch

from overconf.core.seeding import generator
from .defense_report import TEST, baseline_setting, setting_info, setting_label
from .tables import Table, ordered
from .intervals import FAILS, HOLDS, INCONCLUSIVE, NOT_TESTED, Interval, combine, decide

N_BOOT = 1000
ACC_COST = 0.05
TIME_COST = 2.0
MIN_LOSS = 0.001
LABEL_ONLY = ("label_only", "gap")
"""attack label prefixes of attacks that read only predicted labels"""


def label_only(attack: str) -> bool:
    return attack.startswith(LABEL_ONLY)


# ---------------------------------------------------------------- statistics on bootstrap indices
def auroc(s_in: torch.Tensor, s_out: torch.Tensor) -> torch.Tensor:
    """[B] P(in > out) + P(tie) / 2 for rows of member / non-member scores [B, n], [B, m]."""
    out = s_out.sort(-1).values.contiguous()
    lt = torch.searchsorted(out, s_in.contiguous(), right=False).double()
    le = torch.searchsorted(out, s_in.contiguous(), right=True).double()
    return (lt + 0.5 * (le - lt)).mean(-1) / s_out.shape[-1]


def tpr_at_fpr(s_in: torch.Tensor, s_out: torch.Tensor, max_fpr: float = 0.01) -> torch.Tensor:
    """[B] best TPR of 'score >= t' over thresholds with FPR <= max_fpr: the fraction of members
    above the (floor(max_fpr m) + 1)-th largest non-member score."""
    m = s_out.shape[-1]
    k = int(math.floor(max_fpr * m + 1e-9))
    if k >= m:
        return torch.ones(s_in.shape[0], dtype=torch.float64)
    v = s_out.sort(-1, descending=True).values[:, k: k + 1]
    return (s_in > v).double().mean(-1)


def advantage(s_in: torch.Tensor, s_out: torch.Tensor) -> torch.Tensor:
    """[B] max over thresholds t (every score, and +inf) of TPR(t) - FPR(t), rule score >= t."""
    t = torch.cat([s_in, s_out], -1)
    a, b = s_in.sort(-1).values.contiguous(), s_out.sort(-1).values.contiguous()
    tpr = 1 - torch.searchsorted(a, t.contiguous(), right=False).double() / a.shape[-1]
    fpr = 1 - torch.searchsorted(b, t.contiguous(), right=False).double() / b.shape[-1]
    return (tpr - fpr).max(-1).values.clamp_min(0.0)


STATS = {"auroc": auroc, "tpr_at_fpr_0.01": tpr_at_fpr, "advantage": advantage}


class Samples:
    """Per-sample data of one model's settings over seeds, and shared bootstrap indices."""

    def __init__(self, result, model: str, n_boot: int = N_BOOT):
        self.model = model
        self.cells = {(c.setting, c.seed): c for c in result.cells if c.model == model}
        self.seeds = sorted({s for _, s in self.cells})
        self.idx = {}
        for seed in self.seeds:
            cell = next(c for (_, s), c in self.cells.items() if s == seed)
            n_in, n_out = len(cell.member_index[TEST]), len(cell.sources[TEST].labels)
            g = generator(seed, "defense_verdicts", model)
            self.idx[seed] = (torch.arange(n_in)[None], torch.arange(n_out)[None],
                              torch.randint(n_in, (n_boot, n_in), generator=g),
                              torch.randint(n_out, (n_boot, n_out), generator=g))

    def has(self, setting: str, attack: str | None = None) -> bool:
        return all((setting, s) in self.cells and (attack is None or attack in self.cells[(setting, s)].scores)
                   for s in self.seeds)

    def _stat(self, setting: str, what: str, attack: str | None, boot: bool) -> torch.Tensor:
        vals = []
        for seed in self.seeds:
            cell = self.cells[(setting, seed)]
            i_id, j_id, i_b, j_b = self.idx[seed]
            i, j = (i_b, j_b) if boot else (i_id, j_id)
            if what == "accuracy":
                src = cell.sources[TEST]
                correct = (src.log_probs.argmax(1) == src.labels).double()
                vals.append(correct[j].mean(-1))
            else:
                sc = cell.scores[attack]
                s_in = sc["members"][cell.member_index[TEST]].double()
                vals.append(STATS[what](s_in[i], sc[TEST].double()[j]))
        return torch.stack(vals).mean(0)

    def point(self, setting: str, what: str, attack: str | None = None) -> float:
        return float(self._stat(setting, what, attack, False)[0])

    def boot(self, setting: str, what: str, attack: str | None = None) -> torch.Tensor:
        return self._stat(setting, what, attack, True)


def diff_interval(s: Samples, a: str, b: str, what: str, attack: str | None = None) -> Interval:
    """Point difference a - b and its 95% paired-bootstrap percentile interval (n = replicates)."""
    d = s.boot(a, what, attack) - s.boot(b, what, attack)
    lo, hi = torch.quantile(d, torch.tensor([0.025, 0.975], dtype=d.dtype)).tolist()
    return Interval(s.point(a, what, attack) - s.point(b, what, attack), lo, hi, len(d))


def _iv(iv: Interval) -> str:
    return f"{iv.mean:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}]"


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
            iv = diff_interval(s, dp, other, what, attack)
            st = decide(iv, 0.0, "below", strict=True)
            parts.append(st)
            lines.append(f"`{attack}` {what}: best DP-SGD `{setting_label(rows, s.model, dp)}` "
                         f"{s.point(dp, what, attack):.3f} vs best other "
                         f"`{other}` {s.point(other, what, attack):.3f}, difference {_iv(iv)}: {st}")
        statuses.append(HOLDS if all(p == HOLDS for p in parts) else FAILS if FAILS in parts else INCONCLUSIVE)
    protection = combine(statuses).replace(" settings", " cases")
    t = Table(rows)
    costs = []
    for dp in dps:
        acc = diff_interval(s, base, dp, "accuracy")
        ratio = time_ratio(t, s.model, dp, base)
        acc_st = decide(acc, ACC_COST, "above")
        time_st = INCONCLUSIVE if math.isnan(ratio) else HOLDS if ratio >= TIME_COST else FAILS
        costs += [acc_st, time_st]
        gn = [v for v in t.get(s.model, dp, "-", "defense", "dp_accuracy_cost_vs_groupnorm") if not math.isnan(v)]
        alone = (f" (DP alone, against the same GroupNorm model without DP: {sum(gn) / len(gn):+.3f})"
                 if gn else "")
        lines.append(f"cost of `{setting_label(t, s.model, dp)}`: test accuracy drop {_iv(acc)}{alone} (large: >= "
                     f"{ACC_COST}): {acc_st}; training CPU time x{ratio:.2f} of the baseline's (large: >= "
                     f"{TIME_COST}, one measurement): {time_st}")
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
            statuses.append(st)
            lines.append(f"`{attack}` `{x}`: AUROC gain {g:+.3f} per accuracy lost {l:+.3f} = {r:.2f} vs "
                         f"`{setting_label(rows, s.model, dp)}` {g_dp:+.3f} / {l_dp:+.3f} = {r_dp:.2f}; larger in {p:.1%} of {len(rd)} paired "
                         f"bootstrap replicates: {st}")
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
                iv = diff_interval(s, x, base, what, attack)
                parts.append(decide(iv, 0.0, "below", strict=True))
                lines.append(f"`{x}` `{attack}` {what} {s.point(base, what, attack):.3f} -> "
                             f"{s.point(x, what, attack):.3f}, difference {_iv(iv)}: {parts[-1]}")
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
            iv = diff_interval(s, x, base, "auroc", attack)
            st = HOLDS if same else (INCONCLUSIVE if iv.low <= 0 <= iv.high else FAILS)
            statuses.append(st)
            lines.append(f"`{x}` `{attack}` AUROC {s.point(base, 'auroc', attack):.3f} -> "
                         f"{s.point(x, 'auroc', attack):.3f} ({'identical per-sample scores on every set' if same else 'difference ' + _iv(iv)}): {st}")
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
    out = ["#" * level + " Verdicts: the seeds' defense claims", "",
           f"Against the `test` source; intervals: 95% paired bootstrap over samples ({N_BOOT} replicates of "
           f"members, test non-members and test images, the same for every setting; exists with one seed, "
           f"but conditional on the trained models: training randomness needs more seeds).", ""]
    for model in models:
        for i, (claim, status, lines) in enumerate(defense_verdicts(result, model), 1):
            out.append(f"{i}. **{claim} ({model}): {status}**")
            out += [f"   - {line}" for line in lines]
    return "\n".join(out) + "\n"
