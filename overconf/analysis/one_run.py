"""Causal memorization, one-run estimators and the interference bias (seed 001's "one-run"
regime; the design is Steinke et al. 2023's randomised audit set, the estimator forms are
standard causal inference, not seed 001's text).

One model is trained with m audit points drawn from the reference data, each included with
probability 1/2 (seeded draw); ``base = "half"`` (default): a fixed seeded half of the other
points is in, so the one-run model's training set has the reference models' expected size at
every m (the difference to multi-run is then interference, not data size); ``base = "rest"``:
every other reference point is always in (a larger training set: the difference mixes a
data-size effect into the bias). From that single model the included audit points
give S(1), the excluded ones S(0):

    AUC_1run = Mann-Whitney of included vs excluded audit scores,
    TPR_1run(t), FPR_1run(t) = fraction of included / excluded audit points with score >= t,
    delta_1run = mean included score - mean excluded score (the average memorization).

Multi-run on the same audit points (the reference models' scores and keep matrix, where every
reference point is in for half of the models) estimates the same quantities with every point's
inclusion randomised independently. The difference, one-run - multi-run, is the interference
bias: the score of a point depends on which other points are in (under no interference both
designs estimate the same numbers; at m = all reference points with ``base = "rest"`` the one-run
design is the multi-run design, so the bias there is sampling noise). ``models`` one-run models
per m (independent audit draws, inclusions and training seeds; replicate 0 is the design of a
single one-run model) give the bias an interval: mean over replicates with a Student-t interval
(:func:`bias_summary`). Per-model intervals:
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


def design(n: int, m: int, seed: int, base: str = "half") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    replicate: int = 0
    """which of the one-run models at this m (0: the single model of earlier versions)"""

    def rows(self, **extra) -> list[dict]:
        out = []
        extra = {**extra, "replicate": self.replicate}
        for metric in METRICS:
            mv, ml, mh = self.multi[metric]
            out += [{**extra, "m": self.m, "metric": f"one_run_{metric}", "value": self.one_run[metric],
                     "ci_low": self.low[metric], "ci_high": self.high[metric]},
                    {**extra, "m": self.m, "metric": f"multi_run_{metric}", "value": mv, "ci_low": ml, "ci_high": mh},
                    {**extra, "m": self.m, "metric": f"bias_{metric}", "value": self.one_run[metric] - mv,
                     "ci_low": float("nan"), "ci_high": float("nan")}]
        return out


def replicate_seed(seed: int, r: int) -> int:
    """The design seed of one-run replicate r (replicate 0 keeps ``seed``: its model is the one a
    single-model run trained, so its cache entry is reused)."""
    return seed if r == 0 else derive_seed(seed, "one_run", "replicate", r)


def one_run_curve(rs, cache: Cache, device: torch.device, ms, *, seed: int, base: str = "half",
                  threshold: float = 0.0, n_boot: int = 200, progress: bool = False,
                  models: int = 1) -> list[OneRunPoint]:
    """Train (or load) ``models`` one-run models per m in ``ms`` on the reference set ``rs``'s data
    (its architecture, recipe and training hooks) and compare each one's estimates with the
    multi-run ones on its audit points."""
    scores, keep = reference_scores(rs, cache, device)
    n, x = len(rs.labels), rs.inputs()
    out = []
    for m, r in ((m, r) for m in ms for r in range(models)):
        seed_r = replicate_seed(seed, r)
        audit, included, mask = design(n, int(m), seed_r, base)
        job = ClassifierJob(rs.arch, rs.recipe, derive_seed(seed_r, "one_run", "model", int(m), base),
                            rs.images[torch.from_numpy(mask)], rs.labels[torch.from_numpy(mask)], rs.mean, rs.std,
                            rs.num_classes, params=rs.params, name=f"one-run model m={m}", hooks=rs.hooks)
        trained = load_or_train(job, cache, device, progress=progress)
        idx = torch.from_numpy(audit)
        o = cached_outputs(cache, trained.key, trained.model, x[idx], rs.labels[idx], device)
        s = scaled_logit(torch.log_softmax(o.logits.double(), -1), rs.labels[idx])
        low, high = bootstrap(s, included, threshold, n_boot, derive_seed(seed_r, "one_run", "boot", int(m)))
        multi = multi_run_on(scores, keep, audit, threshold, n_boot, derive_seed(seed_r, "multi_run", "boot", int(m)))
        out.append(OneRunPoint(int(m), estimates(s, included, threshold), low, high, multi, trained.key, r))
    return out


def bias_summary(points: list[OneRunPoint], confidence: float = 0.95) -> list[dict]:
    """Per m and metric: the interference bias (one-run - multi-run on the same audit points)
    averaged over the one-run models, with a Student-t interval over them (nan with one model)."""
    from scipy import stats

    rows = []
    for m in sorted({p.m for p in points}):
        at = [p for p in points if p.m == m]
        for metric in METRICS:
            b = np.array([p.one_run[metric] - p.multi[metric][0] for p in at], dtype=float)
            b = b[np.isfinite(b)]
            mean = float(b.mean()) if len(b) else float("nan")
            half = (float(stats.t.ppf(0.5 + confidence / 2, len(b) - 1) * b.std(ddof=1) / np.sqrt(len(b)))
                    if len(b) > 1 else float("nan"))
            rows.append({"m": m, "metric": f"bias_mean_{metric}", "value": mean, "ci_low": mean - half,
                         "ci_high": mean + half, "models": len(b)})
    return rows


def bias_figure(points: list[OneRunPoint], metric: str = "auc", title: str = ""):
    """One-run vs multi-run estimate against the audit-set size m: the one-run models' mean with a
    Student-t interval over them (one model: its bootstrap interval), multi-run with its own."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    ms = sorted({p.m for p in points})
    one, multi = [], []
    for m in ms:
        at = [p for p in points if p.m == m]
        v = np.array([p.one_run[metric] for p in at], dtype=float)
        if len(v) > 1:
            half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
            one.append([v.mean(), v.mean() - half, v.mean() + half])
        else:
            one.append([v[0], at[0].low[metric], at[0].high[metric]])
        multi.append(np.nanmean([p.multi[metric] for p in at], axis=0))
    one, multi = np.array(one), np.array(multi)
    n_models = max(p.replicate for p in points) + 1
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for vals, label, style in ((one, f"one-run (mean of {n_models} model(s))", "o-"), (multi, "multi-run (K models)", "s--")):
        ax.errorbar(ms, vals[:, 0], yerr=np.nan_to_num(np.abs(vals[:, 1:].T - vals[:, 0])), fmt=style, capsize=3,
                    label=label)
    ax.set_xscale("log")
    ax.set_xlabel("audit-set size m (randomised points in the one run)")
    ax.set_ylabel(f"causal {metric.upper() if metric != 'delta' else 'mean score difference'}")
    ax.set_title(title or f"one-run interference bias ({metric})")
    ax.legend()
    fig.tight_layout()
    return fig
