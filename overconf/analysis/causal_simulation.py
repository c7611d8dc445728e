"""Known-truth checks of the causal memorization estimators (seed 001 validates its estimators
"on a synthetic linear-regression task with known ground truth"; the tasks below are ours, the
estimators are the standard ones of :mod:`.causal_memorization`, :mod:`.one_run` and
:mod:`.zero_run`).

Ridge task: x ~ N(0, I_d), y = x . beta + sigma(x) noise with sigma(x) = exp(hetero * x_0 / 2);
the model is ridge regression (penalty ``lam``) on the included points and the score of a point
is S = -(y - x . w)^2 (higher = "member"). For ONE training set both potential outcomes of every
point are exact (no refit): an included point's S(0) is its leave-one-out residual
r / (1 - h), an excluded point's S(1) its add-one residual r / (1 + h), h = x^T (X^T X + lam I)^-1 x
(Sherman-Morrison). So:

* the multi-run estimands (Bernoulli(1/2) inclusion of every point) are Monte-Carlo averages of
  exact counterfactuals over many draws (:func:`ridge_truth`; the Monte-Carlo error is reported);
* a confounded training set (inclusion ~ Bernoulli(sigmoid(gamma x_0)), the zero-run regime) has
  an exactly known ATT AUC = P(S_I(1) > S_J(0)) over distinct members I != J (:func:`zero_run_truth`).

Gaussian-mechanism task (the DP bound): the released model is the sum of the included unit
vectors times s = 2 / n (the sensitivity), plus N(0, (noise_multiplier s)^2 I); the attacker's
score of point i is x_i . release minus the other included points' part (the strongest attacker:
the DP definition holds for every configuration of the others). Then S_i(1) ~ N(s, sd^2) and
S_i(0) ~ N(0, sd^2) exactly, the rate curves are analytic, and the mechanism is exactly
(eps, delta)-DP by the Gaussian privacy profile (:func:`.dp_bound.gaussian_epsilon`): the bound
is tight on the truth and fails for any smaller eps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .causal_memorization import multi_run
from .dp_bound import bound_violation, check_multi_run, gaussian_epsilon
from .one_run import design, estimates as one_run_estimates
from .weighted import weighted_auc
from .zero_run import zero_run


@dataclass(frozen=True)
class RidgeTask:
    x: np.ndarray
    y: np.ndarray
    lam: float = 1.0


def ridge_task(n: int = 400, d: int = 8, hetero: float = 0.8, lam: float = 1.0, seed: int = 0) -> RidgeTask:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    beta = rng.normal(size=d)
    y = x @ beta + np.exp(hetero * x[:, 0] / 2) * rng.normal(size=n)
    return RidgeTask(x, y, lam)


def counterfactual_scores(task: RidgeTask, include: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S(1), S(0)) [n] of every point for the ridge fit on ``include``, exact (Sherman-Morrison)."""
    x, y, inc = task.x, task.y, np.asarray(include, bool)
    a_inv = np.linalg.inv(x[inc].T @ x[inc] + task.lam * np.eye(x.shape[1]))
    r = y - x @ (a_inv @ x[inc].T @ y[inc])
    h = np.einsum("ij,jk,ik->i", x, a_inv, x)
    r1 = np.where(inc, r, r / (1 + h))
    r0 = np.where(inc, r / (1 - h), r)
    return -r1 ** 2, -r0 ** 2


def observed(task: RidgeTask, include: np.ndarray) -> np.ndarray:
    s1, s0 = counterfactual_scores(task, include)
    return np.where(include, s1, s0)


def ridge_truth(task: RidgeTask, threshold: float, draws: int = 2000, seed: int = 1) -> dict[str, float]:
    """Multi-run estimands under Bernoulli(1/2) inclusion, by Monte Carlo over ``draws`` training
    sets of exact counterfactuals: causal AUC (pooled over draws, so I, J and their trainings are
    independent), TPR_c / FPR_c at ``threshold``, mean S(1) - S(0); ``mc_se_auc`` its error."""
    rng = np.random.default_rng(seed)
    s1, s0 = zip(*(counterfactual_scores(task, rng.random(len(task.y)) < 0.5) for _ in range(draws)))
    s1, s0 = np.concatenate(s1), np.concatenate(s0)
    half = len(s1) // 2
    auc = weighted_auc(s1[:half], s0[half:])  # disjoint halves: independent draws
    return {"causal_auc": auc, "causal_tpr": float((s1 >= threshold).mean()),
            "causal_fpr": float((s0 >= threshold).mean()), "mean_delta": float((s1 - s0).mean()),
            "mc_se_auc": float(np.sqrt(auc * (1 - auc) / half))}


def zero_run_truth(task: RidgeTask, include: np.ndarray) -> float:
    """ATT AUC of one (confounded) training set: P(S_I(1) > S_J(0)) over members I != J, exact."""
    s1, s0 = counterfactual_scores(task, include)
    a, b = s1[include], s0[include]
    wins = (a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])
    n = len(a)
    return float((wins.sum() - np.trace(wins)) / (n * n - n))


def ridge_report(n: int = 300, models: int = 32, m: int = 150, gamma: float = 1.5, seed: int = 0,
                 draws: int = 2000, n_zero: int = 2000, one_runs: int = 20) -> list[dict]:
    """Truth next to the multi-run (``models`` trainings, balanced keep), one-run (m audit points,
    half base; the mean over ``one_runs`` one-run trainings with a Student-t interval, and the
    first alone) and zero-run (confounded membership: naive, IPW, G-formula, AIPW) estimates."""
    task = ridge_task(n, d=30, seed=seed)
    rng = np.random.default_rng(seed + 1)
    threshold = float(np.median(observed(task, rng.random(n) < 0.5)))
    truth = ridge_truth(task, threshold, draws, seed + 2)
    keep = np.array([rng.permutation(n) < n // 2 for _ in range(models)])
    mr = multi_run(np.array([observed(task, k) for k in keep]), keep, threshold, tpr_at=(), n_boot=0).estimates
    rows = [{"check": "multi_run", "metric": k, "truth": truth[k], "estimate": mr[k]}
            for k in ("causal_auc", "causal_tpr", "causal_fpr", "mean_delta")]
    ones = []
    for r in range(one_runs):
        audit, included, mask = design(n, m, seed + 3 + r, "half")
        ones.append(one_run_estimates(observed(task, mask)[audit], included, threshold))
    for k in ("auc", "tpr", "fpr", "delta"):
        name = f"causal_{k}" if k != "delta" else "mean_delta"
        v = np.array([o[k] for o in ones])
        half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
        rows += [{"check": "one_run (1 model)", "metric": name, "truth": truth[name], "estimate": float(v[0])},
                 {"check": f"one_run (mean of {len(v)})", "metric": name, "truth": truth[name],
                  "estimate": float(v.mean()), "ci_low": float(v.mean() - half), "ci_high": float(v.mean() + half)}]
    big = ridge_task(n_zero, d=30, seed=seed + 4)
    member = rng.random(n_zero) < 1 / (1 + np.exp(-gamma * big.x[:, 0]))
    s = observed(big, member)
    zr = zero_run(s[member], s[~member], big.x[member], big.x[~member], n_boot=0, seed=seed).estimates
    att = zero_run_truth(big, member)
    rows += [{"check": "zero_run", "metric": f"{e}_auc", "truth": att, "estimate": zr[f"{e}_auc"]}
             for e in ("naive", "ipw", "gformula", "aipw")]
    for r in rows:
        r["error"] = r["estimate"] - r["truth"]
    rows.append({"check": "multi_run", "metric": "mc_se_auc", "truth": truth["mc_se_auc"], "estimate": float("nan"),
                 "error": float("nan")})
    return rows


def gaussian_scores(n: int, d: int, noise_multiplier: float, keep: np.ndarray, seed: int) -> np.ndarray:
    """Observed scores [K, n] of K releases: S_i = x_i . release - (the other included points'
    part), the strongest attacker's score (it knows the others, as the DP definition allows)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sens = 2.0 / n
    noise = rng.normal(size=(len(keep), d)) * noise_multiplier * sens
    return keep * sens + noise @ x.T  # x_i . (sens x_i [if in] + noise), |x_i| = 1


def gaussian_truth_curves(noise_multiplier: float, n: int, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Causal TPR_c(t), FPR_c(t) of :func:`gaussian_scores`: S(1) ~ N(s, (nm s)^2), S(0) ~ N(0, (nm s)^2)
    with s = 2 / n, for every point and every configuration of the others (exact)."""
    sens = 2.0 / n
    sd = noise_multiplier * sens
    return stats.norm.sf((thresholds - sens) / sd), stats.norm.sf(thresholds / sd)


def dp_report(n: int = 200, d: int = 4, noise_multiplier: float = 1.0, delta: float = 1e-5, models: int = 64,
              seed: int = 0) -> list[dict]:
    """The DP bound on the exact rate curves (at the mechanism's exact eps the region holds and is
    tight: the largest violation is ~0), with an understated eps (eps / 4: the check must fail),
    and on a multi-run estimate from ``models`` releases (balanced keep)."""
    eps = gaussian_epsilon(delta, noise_multiplier)
    sd = noise_multiplier * 2.0 / n
    thr = np.linspace(-12, 12, 4801) * sd
    tpr, fpr = gaussian_truth_curves(noise_multiplier, n, thr)
    keep = np.array([np.random.default_rng(seed + 10 + k).permutation(n) < n // 2 for k in range(models)])
    est = check_multi_run(gaussian_scores(n, d, noise_multiplier, keep, seed), keep, eps, delta)
    return [{"check": "dp_bound", "metric": "truth_violation_at_eps", "eps": eps, "delta": delta,
             "value": bound_violation(tpr, fpr, eps, delta)},
            {"check": "dp_bound", "metric": "truth_violation_at_eps_over_4", "eps": eps / 4, "delta": delta,
             "value": bound_violation(tpr, fpr, eps / 4, delta)},
            {"check": "dp_bound", "metric": "estimate_max_violation", "eps": eps, "delta": delta,
             "value": est["dp_bound_max_violation"]},
            {"check": "dp_bound", "metric": "estimate_violated", "eps": eps, "delta": delta,
             "value": est["dp_bound_violated"]}]
