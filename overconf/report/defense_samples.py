"""The defense verdicts' statistics (overconf.report.defense_verdicts): AUROC, TPR at 1% FPR and
advantage on bootstrap indices, one model's per-sample scores over seeds, and the two intervals of a
difference between two settings.

- **Sample bootstrap** (exists with one seed): members (the ``test`` source's member set), ``test``
  non-members and the test images scored for accuracy are resampled ``N_BOOT`` times with the same
  indices for every setting of a model, so a difference gets a paired percentile interval; with
  several seeds a replicate is the mean over seeds of per-seed replicates. Conditional on the
  trained models: sampling noise of the evaluation sets only.
- **Seed level** (two seeds or more): the per-seed differences a - b (seeds paired) and the 95%
  Student-t interval of their mean (:func:`overconf.report.intervals.t_interval`). Each seed trains
  its own models on its own splits, so this interval holds training randomness and sampling noise
  together; with two seeds or more it is the one that decides (:func:`judge`).
"""
from __future__ import annotations

import math

import torch

from overconf.core.seeding import generator

from .defense_report import TEST
from .intervals import Interval, decide, t_interval

N_BOOT = 1000


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
        """[seeds, B] the statistic per seed on the bootstrap indices (B = 1 without ``boot``)."""
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
        return torch.stack(vals)

    def per_seed(self, setting: str, what: str, attack: str | None = None) -> list[float]:
        """The statistic on each seed's full evaluation sets, in ``self.seeds`` order."""
        return self._stat(setting, what, attack, False)[:, 0].tolist()

    def point(self, setting: str, what: str, attack: str | None = None) -> float:
        """The mean over seeds of :meth:`per_seed`."""
        return float(self._stat(setting, what, attack, False).mean(0)[0])

    def boot(self, setting: str, what: str, attack: str | None = None) -> torch.Tensor:
        """[B] bootstrap replicates: the mean over seeds of per-seed replicates."""
        return self._stat(setting, what, attack, True).mean(0)


def diff_interval(s: Samples, a: str, b: str, what: str, attack: str | None = None) -> Interval:
    """Point difference a - b and its 95% paired-bootstrap percentile interval (n = replicates)."""
    d = s.boot(a, what, attack) - s.boot(b, what, attack)
    lo, hi = torch.quantile(d, torch.tensor([0.025, 0.975], dtype=d.dtype)).tolist()
    return Interval(s.point(a, what, attack) - s.point(b, what, attack), lo, hi, len(d))


def seed_interval(s: Samples, a: str, b: str, what: str, attack: str | None = None) -> Interval:
    """The per-seed differences a - b (seeds paired): mean and 95% Student-t interval over seeds
    (n = seeds; no interval with one seed)."""
    return t_interval([x - y for x, y in zip(s.per_seed(a, what, attack), s.per_seed(b, what, attack))])


def boot_text(iv: Interval) -> str:
    return f"{iv.mean:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}]"


def judge(s: Samples, a: str, b: str, what: str, attack: str | None, bound: float, side: str,
          strict: bool = False) -> tuple[str, str]:
    """(status, text) of the claim 'a - b <side> bound': with two seeds or more the seed-level
    Student-t interval decides (training randomness included); with one seed the sample bootstrap
    does. The text gives both intervals and the number of seeds."""
    boot = diff_interval(s, a, b, what, attack)
    text = f"difference {boot_text(boot)} (sample bootstrap)"
    if len(s.seeds) < 2:
        return decide(boot, bound, side, strict), text + ", 1 seed: no seed-level interval"
    seeds = seed_interval(s, a, b, what, attack)
    return decide(seeds, bound, side, strict), f"{text}; seed level: {seeds.text(signed=True)}"
