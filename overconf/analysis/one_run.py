"""Causal memorization, one-run estimators and the interference bias (seed 001's "one-run"
regime; the design is Steinke et al. 2023's randomised audit set, the estimator forms are
standard causal inference, not seed 001's text).

One model is trained with m audit points drawn from the reference data, each included with
probability 1/2 (seeded draw); ``base = "rest"`` (default): every other reference point is
always in; ``base = "half"``: a fixed seeded half of the other points is in (the reference
models' expected training-set size at every m). From that single model the included audit points
give S(1), the excluded ones S(0):

    AUC_1run = Mann-Whitney of included vs excluded audit scores,
    TPR_1run(t), FPR_1run(t) = fraction of included / excluded audit points with score >= t,
    delta_1run = mean included score - mean excluded score (the average memorization).

Multi-run on the same audit points (the reference models' scores and keep matrix, where every
reference point is in for half of the models) estimates the same quantities with every point's
inclusion randomised independently. The difference, one-run - multi-run, is the interference
bias: the score of a point depends on which other points are in (under no interference both
designs estimate the same numbers; at m = all reference points with ``base = "rest"`` the one-run
design is the multi-run design, so the bias there is sampling noise). One-run intervals:
percentile bootstrap over audit points (included and excluded resampled separately).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..attacks.scores import scaled_logit
from overconf.core.cache import Cache
from overconf.signals.outputs import cached_outputs
from overconf.core.seeding import derive_seed, generator
from ..training.jobs import ClassifierJob, load_or_train
from .causal_memorization import multi_run
from .weighted import as_np, percentile_interval, weighted_auc

METRICS = ("auc", "tpr", "fpr", "delta")
BASES = ("rest", "half")


def design(n: int, m: int, seed: int, base: str = "rest") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(audit indices [m], included bool [m], training mask bool [n]) of the one-run model with m
    audit points among n reference points (seeded by ``seed`` and m)."""
    if not 2 <= m <= n:
        raise ValueError(f"the audit set needs 2 <= m <= {n} points, got m = {m}")
    if base not in BASES:
        raise ValueError(f"base must be one of {BASES}, got {base!r}")
    perm = torch.randperm(n, generator=generator(seed, "one_run", "audit", m)).numpy()
    audit = np.sort(perm[:m])
    included = torch.rand(m, generator=generator(seed, "one_run", "include", m)).numpy() < 0.5
    mask = np.ones(n, dtype=bool)
    if base == "half":
        rest = np.sort(perm[m:])
        mask[rest[torch.randperm(len(rest), generator=generator(seed, "one_run", "base", m)).numpy()[len(rest) // 2:]]] = False
    mask[audit[~included]] = False
    return audit, included, mask


def estimates(scores, included, threshold: float = 0.0) -> dict[str, float]:
    """The one-run estimates of :data:`METRICS` from the audit scores of one model."""
    s, inc = as_np(scores), as_np(included, bool)
    s1, s0 = s[inc], s[~inc]
    nan = float("nan")
    return {"auc": weighted_auc(s1, s0),
            "tpr": float((s1 >= threshold).mean()) if len(s1) else nan,
            "fpr": float((s0 >= threshold).mean()) if len(s0) else nan,
            "delta": float(s1.mean() - s0.mean()) if len(s1) and len(s0) else nan}


def bootstrap(scores, included, threshold: float, n_boot: int, seed: int,
              confidence: float = 0.95) -> tuple[dict[str, float], dict[str, float]]:
    """Percentile intervals of :func:`estimates` over audit points (stratified resampling)."""
    s, inc = as_np(scores), as_np(included, bool)
    if n_boot <= 0:
        return {m: float("nan") for m in METRICS}, {m: float("nan") for m in METRICS}
    rng = np.random.default_rng(seed)
    i1, i0 = np.flatnonzero(inc), np.flatnonzero(~inc)
    reps = []
    for _ in range(n_boot):
        idx = np.r_[rng.choice(i1, len(i1)), rng.choice(i0, len(i0))]
        e = estimates(s[idx], inc[idx], threshold)
        reps.append([e[m] for m in METRICS])
    lo, hi = percentile_interval(np.array(reps), confidence)
    return dict(zip(METRICS, map(float, lo))), dict(zip(METRICS, map(float, hi)))


def multi_run_on(scores, keep, audit: np.ndarray, threshold: float, n_boot: int, seed: int) -> dict[str, tuple]:
    """Multi-run (value, low, high) of :data:`METRICS` on the audit points' columns."""
    mr = multi_run(as_np(scores)[:, audit], as_np(keep, bool)[:, audit], threshold, tpr_at=(), n_boot=n_boot,
                   seed=seed)
    names = {"auc": "causal_auc", "tpr": "causal_tpr", "fpr": "causal_fpr", "delta": "mean_delta"}
    return {m: (mr.estimates[n], mr.low[n], mr.high[n]) for m, n in names.items()}


def reference_scores(rs, cache: Cache, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [K, n], keep [K, n]): scaled-logit scores phi = log p_y - log sum_{k != y} p_k of
    every reference model on every reference point (cached reference outputs)."""
    logits = rs.logits(rs.inputs(), cache, device)  # [n, K, C]
    lp = torch.log_softmax(logits.double(), -1)
    return scaled_logit(lp, rs.labels[:, None].expand(-1, rs.num_models)).T, rs.keep.T


@dataclass
class OneRunPoint:
    m: int
    one_run: dict[str, float]
    low: dict[str, float]
    high: dict[str, float]
    multi: dict[str, tuple]
    model_key: str

    def rows(self, **extra) -> list[dict]:
        out = []
        for metric in METRICS:
            mv, ml, mh = self.multi[metric]
            out += [{**extra, "m": self.m, "metric": f"one_run_{metric}", "value": self.one_run[metric],
                     "ci_low": self.low[metric], "ci_high": self.high[metric]},
                    {**extra, "m": self.m, "metric": f"multi_run_{metric}", "value": mv, "ci_low": ml, "ci_high": mh},
                    {**extra, "m": self.m, "metric": f"bias_{metric}", "value": self.one_run[metric] - mv,
                     "ci_low": float("nan"), "ci_high": float("nan")}]
        return out


def one_run_curve(rs, cache: Cache, device: torch.device, ms, *, seed: int, base: str = "rest",
                  threshold: float = 0.0, n_boot: int = 200, progress: bool = False) -> list[OneRunPoint]:
    """Train (or load) one model per m in ``ms`` on the reference set ``rs``'s data (its
    architecture, recipe and training hooks) and compare its one-run estimates with the
    multi-run ones on the same audit points."""
    scores, keep = reference_scores(rs, cache, device)
    n, x = len(rs.labels), rs.inputs()
    out = []
    for m in ms:
        audit, included, mask = design(n, int(m), seed, base)
        job = ClassifierJob(rs.arch, rs.recipe, derive_seed(seed, "one_run", "model", int(m), base),
                            rs.images[torch.from_numpy(mask)], rs.labels[torch.from_numpy(mask)], rs.mean, rs.std,
                            rs.num_classes, params=rs.params, name=f"one-run model m={m}", hooks=rs.hooks)
        trained = load_or_train(job, cache, device, progress=progress)
        idx = torch.from_numpy(audit)
        o = cached_outputs(cache, trained.key, trained.model, x[idx], rs.labels[idx], device)
        s = scaled_logit(torch.log_softmax(o.logits.double(), -1), rs.labels[idx])
        low, high = bootstrap(s, included, threshold, n_boot, derive_seed(seed, "one_run", "boot", int(m)))
        multi = multi_run_on(scores, keep, audit, threshold, n_boot, derive_seed(seed, "multi_run", "boot", int(m)))
        out.append(OneRunPoint(int(m), estimates(s, included, threshold), low, high, multi, trained.key))
    return out


def bias_figure(points: list[OneRunPoint], metric: str = "auc", title: str = ""):
    """One-run vs multi-run estimate (with intervals) against the audit-set size m."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ms = [p.m for p in points]
    one = np.array([[p.one_run[metric], p.low[metric], p.high[metric]] for p in points])
    multi = np.array([p.multi[metric] for p in points])
    for vals, label, style in ((one, "one-run (1 model)", "o-"), (multi, "multi-run (K models)", "s--")):
        ax.errorbar(ms, vals[:, 0], yerr=np.abs(vals[:, 1:].T - vals[:, 0]), fmt=style, capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("audit-set size m (randomised points in the one run)")
    ax.set_ylabel(f"causal {metric.upper() if metric != 'delta' else 'mean score difference'}")
    ax.set_title(title or f"one-run interference bias ({metric})")
    ax.legend()
    fig.tight_layout()
    return fig
