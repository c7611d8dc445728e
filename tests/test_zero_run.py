"""Zero-run causal estimators (overconf/analysis/zero_run.py): on synthetic data with a known
confounder the naive AUC is biased and IPW / AIPW recover the true effect; without confounding
all estimators agree; seeded; image statistics."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from overconf.analysis.weighted import weighted_auc
from overconf.analysis.zero_run import image_statistics, zero_run


def simulate(n, gamma, beta, seed):
    """X ~ N(0, 1) confounds both: T ~ Bernoulli(sigmoid(gamma X)), S(0) = X + N(0, 1), S(1) = S(0) + beta."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = rng.random(n) < 1 / (1 + np.exp(-gamma * x))
    s0 = x + rng.normal(size=n)
    return x, t, s0, s0 + beta


def true_att_auc(gamma, beta, n=400_000):
    """P(S_I(1) > S_J(0)), I, J independent members (Monte Carlo on independent halves)."""
    x, t, s0, s1 = simulate(n, gamma, beta, seed=99)
    s1t, s0t = s1[t], s0[t]
    h = len(s1t) // 2
    return weighted_auc(s1t[:h], s0t[h: 2 * h])


def misspecified(t_logit, s0_mean, effect=0.5):
    """(true ATT AUC, zero-run estimates) when T ~ Bernoulli(sigmoid(t_logit(X))) and
    S(0) = s0_mean(X) + N(0, 1), S(1) = S(0) + effect: the truth by Monte Carlo on independent
    halves of 400,000 draws, the estimates on 6,000."""
    def sim(n, seed):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=n)
        t = rng.random(n) < 1 / (1 + np.exp(-t_logit(x)))
        s0 = s0_mean(x) + rng.normal(size=n)
        return x, t, s0, s0 + effect

    x, t, s0, s1 = sim(400_000, 99)
    h = int(t.sum()) // 2
    truth = weighted_auc(s1[t][:h], s0[t][h: 2 * h])
    x, t, s0, s1 = sim(6000, 1)
    s = np.where(t, s1, s0)
    return truth, zero_run(s[t], s[~t], x[t, None], x[~t, None], n_boot=0).estimates


def run(gamma, beta, seed=1, n=5000, **kw):
    x, t, s0, s1 = simulate(n, gamma, beta, seed)
    s = np.where(t, s1, s0)
    return zero_run(s[t], s[~t], x[t, None], x[~t, None], n_boot=kw.pop("n_boot", 0), seed=0, **kw)


def test_known_confounder_naive_is_biased_and_ipw_aipw_recover_the_effect():
    truth = true_att_auc(1.5, 0.5)
    r = run(1.5, 0.5).estimates
    assert r["naive_auc"] > truth + 0.1  # confounding inflates the naive "leakage"
    assert r["ipw_auc"] == pytest.approx(truth, abs=0.035)
    assert r["aipw_auc"] == pytest.approx(truth, abs=0.03)
    assert r["gformula_auc"] == pytest.approx(truth, abs=0.03)  # the outcome model (S(0) = X + noise) is right
    # ATE: S(1) - S(0) = beta for everyone, X ~ N(0, 1) pooled: AUC = Phi(beta / sqrt(4))
    assert r["ipw_ate_auc"] == pytest.approx(norm.cdf(0.5 / 2), abs=0.035)
    assert r["confounded_share"] > 0.4
    assert 0.5 < r["propensity_auc"] < 0.95 and r["frac_trimmed"] == 0


def test_no_confounding_all_estimators_agree():
    r = run(0.0, 0.5).estimates
    truth = norm.cdf(0.5 / np.sqrt(4))
    for est in ("naive", "ipw", "gformula", "aipw", "ipw_ate"):
        assert r[f"{est}_auc"] == pytest.approx(truth, abs=0.025), est
        assert r[f"{est}_tpr_at_0.1"] == pytest.approx(r["naive_tpr_at_0.1"], abs=0.04), est
    assert abs(r["propensity_auc"] - 0.5) < 0.05


def test_no_effect_and_confounding_corrected_auc_is_chance():
    r = run(1.5, 0.0, n=6000).estimates
    assert r["naive_auc"] > 0.65
    assert r["aipw_auc"] == pytest.approx(0.5, abs=0.03) and r["ipw_auc"] == pytest.approx(0.5, abs=0.04)


def test_seeded_bootstrap_intervals_and_trimming():
    a, b = run(1.0, 0.5, n=1500, n_boot=30), run(1.0, 0.5, n=1500, n_boot=30)
    assert a.estimates == b.estimates and a.low == b.low and a.high == b.high
    for k in ("naive_auc", "ipw_auc", "aipw_auc"):
        assert a.low[k] <= a.estimates[k] <= a.high[k]
    trimmed = run(2.5, 0.5, n=1500, trim=0.1).estimates
    assert 0 < trimmed["frac_trimmed"] < 1


def test_separable_groups_are_flagged():
    """OOD-like: the covariate separates members from non-members (no overlap)."""
    rng = np.random.default_rng(0)
    x_in, x_out = rng.normal(3, 0.3, (400, 1)), rng.normal(-3, 0.3, (400, 1))
    r = zero_run(x_in[:, 0] + 1, x_out[:, 0], x_in, x_out, n_boot=0).estimates
    assert r["propensity_auc"] > 0.99 and r["frac_clipped"] > 0.5


def test_image_statistics():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 8, 8, generator=g)
    st = image_statistics(x)
    assert st.shape == (5, 6)
    assert np.allclose(st[:, 0], x.double().flatten(1).mean(1).numpy())
    assert np.allclose(st[:, 1], x.double().flatten(1).std(1).numpy())
    flat = image_statistics(torch.full((2, 1, 4, 4), 0.3))
    assert np.allclose(flat[:, 2], 0) and np.allclose(flat[:, 5], 0)  # no entropy, no edges


def test_aipw_is_doubly_robust_to_a_misspecified_propensity():
    """Propensity non-monotone in X (the logistic model in X is wrong), outcome model right:
    IPW is far off, AIPW stays near the truth."""
    truth, r = misspecified(lambda x: 2 * x - x ** 2 + 1, lambda x: x)
    assert abs(r["ipw_auc"] - truth) > 0.15
    assert r["aipw_auc"] == pytest.approx(truth, abs=0.05)


def test_one_hot_release_gives_finite_scores():
    from overconf.analysis.causal_analysis import max_score_logit

    lp = torch.log(torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.5, 0.3]], dtype=torch.float64))
    s = max_score_logit(lp)
    assert torch.isfinite(s).all() and s[0] == 1e6 and s[1] == pytest.approx(np.log(0.5 / 0.5))


def test_gformula_is_the_outcome_model_average_over_members():
    """G-formula FPR_att(t) = mean over members of mu0(X_i; t): checked by a direct loop over the
    members with the same cross-fitted ridge fits and residuals (one fold structure, 2 folds)."""
    from overconf.analysis.zero_run import _folds, cross_fit_outcome

    x, t, s0, s1 = simulate(600, 1.0, 0.5, seed=3)
    s = np.where(t, s1, s0)
    xs = np.r_[x[t], x[~t]][:, None]
    ss, tt = np.r_[s[t], s[~t]], np.r_[np.ones(t.sum(), int), np.zeros((~t).sum(), int)]
    fold = _folds(tt, 2, 0)
    m, residuals = cross_fit_outcome(xs, tt, ss, fold)
    members = np.flatnonzero(tt == 1)
    fpr_at = lambda thr: np.mean([np.mean(m[i] + residuals[fold[i]] >= thr) for i in members])
    auc = 1 - np.mean([fpr_at(ss[i]) for i in members])
    r = zero_run(s[t], s[~t], x[t, None], x[~t, None], folds=2, n_boot=0, seed=0).estimates
    assert r["gformula_auc"] == pytest.approx(auc, abs=1e-9)


def test_gformula_is_biased_by_a_wrong_outcome_model_where_aipw_is_not():
    """S(0) depends on X non-linearly (the linear location-shift model is wrong), propensity right:
    the G-formula misses, AIPW (doubly robust) stays near the truth."""
    truth, r = misspecified(lambda x: 1.5 * x, lambda x: 2 * x ** 2)
    assert abs(r["gformula_auc"] - truth) > 0.05
    assert abs(r["aipw_auc"] - truth) < abs(r["gformula_auc"] - truth)
