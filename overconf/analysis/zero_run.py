"""Causal memorization, zero-run estimators (seed 001's "zero-run" regime: membership given, not
randomised). The estimator forms are standard causal inference (inverse probability weighting,
the G-formula / outcome regression, augmented IPW, cross-fitting), named as such: seed 001's full
text is public but could not be read here, so they are not taken from it.

Members (T = 1: the target's training points) and non-members (T = 0: one non-member source)
differ in distribution, so the naive AUC mixes the effect of training on a point with how
different the two groups are (confounding: OOD, GAN or transformed non-members are the extreme
case). With covariates X that are not affected by the target's training (image statistics, or
penultimate features of a model that never trained on these points, e.g. the shadow or a
reference model), a propensity e(X) = P(T = 1 | X) (logistic regression, K-fold cross-fitted:
each point's e from the folds it is not in) reweights the non-members:

* ATT (default estimand; population = the members' covariate distribution, what "memorization
  of these members" asks): non-member j gets weight w_j = e_j / (1 - e_j), members weight 1.
  FPR_att(t) = sum_j w_j 1[S_j >= t] / sum_j w_j (IPW, Hajek), TPR_att(t) = the members' TPR;
  AUC_att = weighted Mann-Whitney (:func:`.weighted.weighted_auc`) = P(S_I(1) > S_J(0)), I, J
  drawn from the members' covariate distribution.
  AIPW (doubly robust) FPR_att(t) = [sum_{T=1} mu0(X_i; t) + sum_{T=0} w_j (1[S_j >= t] -
  mu0(X_j; t))] / n_1 with the outcome model mu0(x; t) = P(S >= t | T = 0, X = x): a ridge
  regression of S on X among non-members with its empirical (cross-fitted) residuals (a
  location-shift model); AUC_att(AIPW) = 1 - mean_{T=1} FPR_att(S_i) (ties counted 1/2). DR
  estimates are not clipped to [0, 1].
  G-formula (outcome regression, Robins 1986) FPR_att(t) = mean_{T=1} mu0(X_i; t): the outcome
  model alone, no weights (consistent when mu0 is right; AIPW adds the weighted residual term
  that also makes it consistent when only the propensity is right);
  AUC_att(G) = 1 - mean_{T=1} FPR_att(S_i).
* ATE (the reference protocol's form, analyses.md; population = members and non-members pooled):
  members weighted 1 / e, non-members 1 / (1 - e) (IPW only).

Positivity: propensities are clipped to [clip, 1 - clip] (``frac_clipped``) and, with
``trim > 0``, points with e outside [trim, 1 - trim] are dropped (Crump et al. 2009; the estimand
becomes the overlap population; ``frac_trimmed``). ``propensity_auc`` near 1 means members and
non-members are separable on X: there is no overlap and the corrected numbers rest on
extrapolation (OOD sources): they are not identified, only the naive ones are measured.
Intervals: percentile bootstrap over points (members and non-members resampled separately) with
the cross-fitted nuisances held fixed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .weighted import as_np, below_mass, kish_ess, percentile_interval, weighted_auc

ESTIMATORS = ("naive", "ipw", "gformula", "aipw", "ipw_ate")


def image_statistics(x) -> np.ndarray:
    """Covariates [N, 6] of images [N, C, H, W] (as given to the model): mean, std, entropy of a
    32-bin intensity histogram over the image's own range, fraction of pixels at the image's
    minimum / maximum (saturation), mean absolute horizontal + vertical difference (edges)."""
    x = torch.as_tensor(x).double()
    flat = x.reshape(len(x), -1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    span = (hi - lo).clamp_min(1e-12)
    bins = ((flat - lo) / span * 31.999).long().clamp(0, 31)
    counts = torch.zeros(len(x), 32, dtype=torch.float64).scatter_add_(1, bins, torch.ones_like(flat))
    p = counts / flat.shape[1]
    entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(1)
    edges = (x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3)) + (x[..., 1:] - x[..., :-1]).abs().mean((1, 2, 3))
    feats = [flat.mean(1), flat.std(1), entropy, (flat <= lo + 1e-9).double().mean(1),
             (flat >= hi - 1e-9).double().mean(1), edges]
    return torch.stack(feats, 1).numpy()


def _folds(t: np.ndarray, folds: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    fold = np.empty(len(t), dtype=int)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed % 2 ** 32)
    for f, (_, test) in enumerate(splitter.split(np.zeros(len(t)), t)):
        fold[test] = f
    return fold


def cross_fit_propensity(x, t, fold: np.ndarray, C: float = 1.0) -> np.ndarray:
    """Out-of-fold e(X) = P(T = 1 | X): standardised logistic regression (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, t = as_np(x), as_np(t, int)
    e = np.empty(len(t))
    for f in np.unique(fold):
        test = fold == f
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
        model.fit(x[~test], t[~test])
        e[test] = model.predict_proba(x[test])[:, 1]
    return e


def cross_fit_outcome(x, t, s, fold: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Location-shift model of S | T = 0, X: ridge mean m0 (fitted on the non-members of the other
    folds) and those fits' sorted residuals per fold; mu0(x_i; t) = P(m0(x_i) + r >= t)."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, t, s = as_np(x), as_np(t, int), as_np(s)
    m, residuals = np.empty(len(t)), []
    for f in range(fold.max() + 1):
        train = (fold != f) & (t == 0)
        model = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(x[train], s[train])
        residuals.append(np.sort(s[train] - model.predict(x[train])))
        m[fold == f] = model.predict(x[fold == f])
    return m, residuals


def mu0_sums(weights: np.ndarray, m: np.ndarray, fold: np.ndarray, residuals: list[np.ndarray],
             thr: np.ndarray, chunk: int = 256) -> np.ndarray:
    """weights [R, n] @ M [n, len(thr)] with M[i, k] = mu0(x_i; thr_k), without storing M."""
    out = np.zeros((len(weights), len(thr)))
    for f, res in enumerate(residuals):
        rows = np.flatnonzero(fold == f)
        for c in range(0, len(rows), chunk):
            r = rows[c: c + chunk]
            mu = 1 - np.searchsorted(res, thr[None, :] - m[r, None], "left") / len(res)
            out += weights[:, r] @ mu
    return out


def _above(s: np.ndarray, w: np.ndarray, thr: np.ndarray, mid: bool) -> np.ndarray:
    """sum_j w_j 1[s_j >= t] (mid: 1[s_j > t] + 1[s_j = t] / 2) for every t."""
    if mid:
        return w.sum() - below_mass(s, w, thr)
    order = np.argsort(s, kind="stable")
    cs = np.r_[0.0, np.cumsum(w[order])]
    return cs[-1] - cs[np.searchsorted(s[order], thr, "left")]


def _tpr_at(s_in, w_in, thr, fpr, x) -> float:
    """Best TPR over thresholds (member scores, and +inf) whose FPR <= x."""
    tpr = _above(s_in, w_in, thr, False) / w_in.sum()
    ok = fpr <= x + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def _share(naive: float, corrected: float, margin: float = 0.05) -> float:
    """(naive - corrected) / (naive - 1/2): the part of the naive AUC's distance from chance that
    the correction removes; nan when the naive AUC is within ``margin`` of 1/2 (an unstable ratio)."""
    return (naive - corrected) / (naive - 0.5) if abs(naive - 0.5) > margin else float("nan")


@dataclass
class ZeroRun:
    estimates: dict[str, float]
    low: dict[str, float]
    high: dict[str, float]
    propensity: np.ndarray
    """cross-fitted, clipped e(X) of members then non-members"""

    def rows(self, **extra) -> list[dict]:
        return [{**extra, "metric": k, "value": v, "ci_low": self.low.get(k, float("nan")),
                 "ci_high": self.high.get(k, float("nan"))} for k, v in self.estimates.items()]


def zero_run(s_in, s_out, x_in, x_out, *, folds: int = 5, clip: float = 0.01, trim: float = 0.0,
             tpr_at: tuple[float, ...] = (0.01, 0.1), n_boot: int = 200, seed: int = 0,
             confidence: float = 0.95, C: float = 1.0, alpha: float = 1.0) -> ZeroRun:
    """Naive, IPW (ATT), AIPW (ATT) and IPW (ATE) AUC and TPR at each FPR of ``tpr_at`` for member
    scores ``s_in`` vs non-member scores ``s_out`` with covariates ``x_in`` / ``x_out`` (see the
    module docstring), plus diagnostics, with bootstrap intervals (``n_boot`` resamples, numpy
    generator seeded by ``seed``; folds are seeded by it too)."""
    s = np.r_[as_np(s_in), as_np(s_out)]
    x = np.r_[as_np(x_in).reshape(len(s_in), -1), as_np(x_out).reshape(len(s_out), -1)]
    t = np.r_[np.ones(len(s_in), int), np.zeros(len(s_out), int)]
    fold = _folds(t, folds, seed)
    e_raw = cross_fit_propensity(x, t, fold, C)
    e = np.clip(e_raw, clip, 1 - clip)
    diag = {"propensity_auc": weighted_auc(e_raw[t == 1], e_raw[t == 0]),
            "frac_clipped": float(np.mean((e_raw < clip) | (e_raw > 1 - clip)))}
    keep = (e >= trim) & (e <= 1 - trim) if trim > 0 else np.ones(len(t), bool)
    diag["frac_trimmed"] = float(1 - keep.mean())
    m, residuals = cross_fit_outcome(x, t, s, fold, alpha)
    s, t, e, m, fold = s[keep], t[keep], e[keep], m[keep], fold[keep]
    ins, outs = np.flatnonzero(t == 1), np.flatnonzero(t == 0)
    w_att = e / (1 - e)
    diag["ess_out"] = kish_ess(w_att[outs])
    diag["ess_out_fraction"] = diag["ess_out"] / max(len(outs), 1)
    if len(ins) == 0 or len(outs) == 0:
        nan = {f"{est}_{q}": float("nan") for est in ESTIMATORS for q in ["auc", *(f"tpr_at_{a:g}" for a in tpr_at)]}
        return ZeroRun({**nan, **diag}, {}, {}, e)
    order_in = np.argsort(s[ins], kind="stable")
    thr = s[ins][order_in]  # every threshold where the members' TPR changes
    thr_roc = np.r_[thr, np.inf]

    rng = np.random.default_rng(seed)
    counts = [np.ones(len(s))]
    for _ in range(n_boot):
        c = np.zeros(len(s))
        for group in (ins, outs):
            np.add.at(c, group[rng.integers(0, len(group), len(group))], 1.0)
        counts.append(c)
    counts = np.array(counts)
    a_in = counts.copy(); a_in[:, outs] = 0
    b_out = counts * w_att; b_out[:, ins] = 0
    mu_in = mu0_sums(a_in, m, fold, residuals, thr_roc)
    mu_out = mu0_sums(b_out, m, fold, residuals, thr_roc)

    reps = []
    for r, c in enumerate(counts):
        ci, co = c[ins], c[outs]
        n1, est = ci.sum(), {}
        for name, wi, wo in (("naive", ci, co), ("ipw", ci, co * w_att[outs]),
                             ("ipw_ate", ci / e[ins], co / (1 - e[outs]))):
            est[f"{name}_auc"] = weighted_auc(s[ins], s[outs], wi, wo)
            fpr = _above(s[outs], wo, thr_roc, False) / wo.sum()
            for a in tpr_at:
                est[f"{name}_tpr_at_{a:g}"] = _tpr_at(s[ins], wi, thr_roc, fpr, a)
        wo = co * w_att[outs]
        dr = mu_in[r] - mu_out[r]
        fpr_mid = (dr + _above(s[outs], wo, thr_roc, True)) / n1
        fpr_ge = (dr + _above(s[outs], wo, thr_roc, False)) / n1
        est["aipw_auc"] = float(1 - (ci[order_in] * fpr_mid[:-1]).sum() / n1)
        fpr_g = mu_in[r] / n1
        est["gformula_auc"] = float(1 - (ci[order_in] * fpr_g[:-1]).sum() / n1)
        for a in tpr_at:
            est[f"aipw_tpr_at_{a:g}"] = _tpr_at(s[ins], ci, thr_roc, fpr_ge, a)
            est[f"gformula_tpr_at_{a:g}"] = _tpr_at(s[ins], ci, thr_roc, fpr_g, a)
        reps.append(est)
    first = reps[0]
    order = [f"{est}_{q}" for q in ["auc", *(f"tpr_at_{a:g}" for a in tpr_at)] for est in ESTIMATORS]
    estimates = {k: first[k] for k in order}
    naive, aipw = estimates["naive_auc"], estimates["aipw_auc"]
    estimates["confounded_share"] = _share(naive, aipw)
    low, high = {}, {}
    if n_boot > 0:
        boot = np.array([[rep[k] for k in order] for rep in reps[1:]])
        share = [_share(b[order.index("naive_auc")], b[order.index("aipw_auc")]) for b in boot]
        lo, hi = percentile_interval(np.c_[boot, share], confidence)
        low, high = dict(zip([*order, "confounded_share"], map(float, lo))), dict(zip([*order, "confounded_share"], map(float, hi)))
    return ZeroRun({**estimates, **diag}, low, high, np.clip(e_raw, clip, 1 - clip))
