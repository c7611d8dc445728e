"""Known-truth checks of the causal memorization estimators (overconf/analysis/causal_simulation.py)
and the DP bound (overconf/analysis/dp_bound.py), each against an independent oracle: refits
from scratch, numerical integration of the Gaussian privacy profile, analytic rate curves."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from overconf.analysis import causal_simulation as sim
from overconf.analysis.dp_bound import bound_violation, check_multi_run, gaussian_delta, gaussian_epsilon


def test_counterfactual_scores_equal_refits_from_scratch():
    task = sim.ridge_task(40, d=6, seed=3)
    include = np.random.default_rng(0).random(40) < 0.5
    s1, s0 = sim.counterfactual_scores(task, include)

    def refit_score(i, inside):
        mask = include.copy()
        mask[i] = inside
        x = task.x[mask]
        w = np.linalg.solve(x.T @ x + task.lam * np.eye(6), x.T @ task.y[mask])
        return -(task.y[i] - task.x[i] @ w) ** 2

    for i in range(40):
        assert s1[i] == pytest.approx(refit_score(i, True), rel=1e-9, abs=1e-12)
        assert s0[i] == pytest.approx(refit_score(i, False), rel=1e-9, abs=1e-12)


def test_zero_run_truth_is_the_off_diagonal_mann_whitney():
    task = sim.ridge_task(30, d=4, seed=1)
    member = np.random.default_rng(2).random(30) < 0.6
    s1, s0 = sim.counterfactual_scores(task, member)
    a, b = s1[member], s0[member]
    pairs = [(1.0 if a[i] > b[j] else 0.5 if a[i] == b[j] else 0.0)
             for i in range(len(a)) for j in range(len(b)) if i != j]
    assert sim.zero_run_truth(task, member) == pytest.approx(np.mean(pairs))


def test_estimators_against_the_truth():
    rows = sim.ridge_report(seed=0)
    get = {(r["check"], r["metric"]): r for r in rows}
    se = get[("multi_run", "mc_se_auc")]["truth"]
    assert se < 0.002
    multi = get[("multi_run", "causal_auc")]
    assert multi["truth"] > 0.53  # the task memorises: there is an effect to estimate
    assert abs(multi["error"]) < 0.02  # 32 trainings recover the multi-run truth
    one = get[("one_run (mean of 20)", "causal_auc")]
    assert one["ci_low"] <= one["truth"] <= one["ci_high"]  # no detectable interference bias in ridge
    z = {m: get[("zero_run", f"{m}_auc")] for m in ("naive", "ipw", "gformula", "aipw")}
    assert abs(z["naive"]["error"]) > 0.05  # confounding biases the naive AUC
    assert abs(z["aipw"]["error"]) < 0.03 and abs(z["ipw"]["error"]) < 0.03  # the propensity model is right
    assert abs(z["gformula"]["error"]) > abs(z["aipw"]["error"])  # its linear outcome model is wrong on purpose


def test_gaussian_privacy_profile_matches_numerical_hockey_stick_divergence():
    """delta(eps) = integral of max(0, p1 - e^eps p0) for N(1/nm, 1) vs N(0, 1)."""
    for nm, eps in ((0.8, 1.0), (1.0, 2.0), (2.0, 0.3)):
        mu = 1 / nm
        f = lambda x: max(0.0, stats.norm.pdf(x, mu) - math.exp(eps) * stats.norm.pdf(x))  # noqa: E731
        numeric = integrate.quad(f, -20, 20, points=[mu / 2 + eps / mu], limit=200)[0]
        assert gaussian_delta(eps, nm) == pytest.approx(numeric, rel=1e-6, abs=1e-12)
        assert gaussian_delta(gaussian_epsilon(1e-5, nm), nm) == pytest.approx(1e-5, rel=1e-6)


def test_bound_violation_by_a_direct_loop():
    rng = np.random.default_rng(0)
    tpr, fpr = np.sort(rng.random(50)), np.sort(rng.random(50))
    eps, delta = 0.7, 0.01
    direct = max(max(t - math.exp(eps) * f - delta, (1 - f) - math.exp(eps) * (1 - t) - delta)
                 for t, f in zip(tpr, fpr))
    assert bound_violation(tpr, fpr, eps, delta) == pytest.approx(direct)


def test_dp_bound_holds_tightly_at_the_true_epsilon_and_fails_below_it():
    rows = {r["metric"]: r for r in sim.dp_report(seed=0)}
    assert -1e-6 < rows["truth_violation_at_eps"]["value"] <= 1e-9  # tight: touches the region's edge
    assert rows["truth_violation_at_eps_over_4"]["value"] > 0.05
    assert rows["estimate_violated"]["value"] == 0  # 64 releases: no significant violation at the true eps


def test_check_multi_run_detects_an_understated_epsilon():
    n, models, nm = 200, 64, 1.0
    keep = np.array([np.random.default_rng(10 + k).permutation(n) < n // 2 for k in range(models)])
    scores = sim.gaussian_scores(n, 4, nm, keep, seed=0)
    eps = gaussian_epsilon(1e-5, nm)
    assert check_multi_run(scores, keep, eps, 1e-5)["dp_bound_violated"] == 0
    assert check_multi_run(scores, keep, eps / 4, 1e-5)["dp_bound_violated"] == 1
