"""Epsilon lower bounds (overconf/metrics/epsilon_bounds.py) against published worked examples and
independent oracles: TF-Privacy's epsilon_lower_bound docstring / tests (Katz-log and Bailey ratio
bounds; Clopper-Pearson 4.54 from Jagielski et al. 2020), statsmodels' exact interval, the
closed form of the one-run audit with all guesses right (Steinke et al. 2023) and a direct
fraction-arithmetic evaluation of their Theorem 3."""
import math
from fractions import Fraction

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from overconf.metrics.epsilon_bounds import (clopper_pearson, epsilon_lower_bound, heldout_threshold_bound,
                                       one_run_audit, one_run_epsilon, one_run_p_value, ratio_lower_bound)


def test_ratio_bounds_match_tf_privacy_docstring_example():
    tp, fp = np.array([100, 90]), np.array([10, 5])
    np.testing.assert_allclose(ratio_lower_bound(tp, fp, 110, 80, 0.05, "bailey"), [4.61953896, 6.87647915], atol=1e-7)
    np.testing.assert_allclose(ratio_lower_bound(tp, fp, 110, 80, 0.05, "katz-log"), [4.45958661, 6.39712581],
                               atol=1e-7)


@pytest.mark.parametrize("tp,fn,fp,tn,method,expected", [
    (473, 511, 755, 950, "katz-log", 1.01166194), (473, 511, 755, 950, "bailey", 1.01148934),
    (2, 697, 0, 313, "katz-log", 0.13325535), (2, 697, 0, 313, "bailey", 0.18481008),
    (1000, 10, 10, 10000, "bailey", 613.58766147), (0, 511, 755, 950, "katz-log", 0.0)])
def test_ratio_bounds_match_published_asbio_values(tp, fn, fp, tn, method, expected):
    assert ratio_lower_bound(tp, fp, tp + fn, fp + tn, 0.05, method)[0] == pytest.approx(expected, abs=1e-7)


def test_clopper_pearson_matches_statsmodels():
    for k, n in ((0, 50), (3, 50), (50, 50), (17, 300)):
        lo, hi = clopper_pearson(k, n, 0.05)
        ref = proportion_confint(k, n, 0.05, method="beta")
        assert (float(lo), float(hi)) == pytest.approx((ref[0], ref[1]), abs=1e-10)


def test_clopper_pearson_epsilon_matches_jagielski_worked_example():
    # 500 / 500 members flagged, 0 / 500 non-members, alpha = 0.01, delta = 0: eps_lb = 4.54
    assert float(epsilon_lower_bound(500, 0, 500, 500, 0.01)) == pytest.approx(4.54, abs=5e-3)
    # and it is log(TPR_lo / FPR_hi), the ratio bound
    assert float(epsilon_lower_bound(500, 0, 500, 500, 0.01)) == pytest.approx(
        math.log(ratio_lower_bound(500, 0, 500, 500, 0.01)[0]), abs=1e-12)


def test_epsilon_with_delta_is_the_formula_at_the_upper_limits():
    tp, fp, pos, neg, a, d = 420, 37, 500, 600, 0.05, 1e-3
    fpr_hi = proportion_confint(fp, neg, a, method="beta")[1]
    fnr_hi = proportion_confint(pos - tp, pos, a, method="beta")[1]
    want = max(math.log((1 - d - fpr_hi) / fnr_hi), math.log((1 - d - fnr_hi) / fpr_hi))
    assert float(epsilon_lower_bound(tp, fp, pos, neg, a, d)) == pytest.approx(want, rel=1e-10)
    assert float(epsilon_lower_bound(tp, fp, pos, neg, a, 0.2)) < float(epsilon_lower_bound(tp, fp, pos, neg, a, d))
    assert float(epsilon_lower_bound(250, 300, 500, 600, a)) == 0.0  # a useless attack bounds nothing


def test_heldout_bound_is_zero_without_signal_and_positive_with_it():
    rng = np.random.default_rng(0)
    same = heldout_threshold_bound(rng.normal(size=2000), rng.normal(size=2000), n_thresholds=4,
                                   rng=np.random.default_rng(1))
    assert same["eps_lb"] < 0.15
    sep = heldout_threshold_bound(rng.normal(3, 1, 2000), rng.normal(size=2000), rng=np.random.default_rng(1))
    assert sep["eps_lb"] > 1.0 and sep["n_in"] == 1000
    with pytest.raises(ValueError, match="n_thresholds"):
        heldout_threshold_bound([1, 2, 3, 4], [1, 2, 3, 4], n_thresholds=0, rng=np.random.default_rng(0))


@pytest.mark.parametrize("r", [10, 100, 1000])
def test_one_run_all_correct_is_the_closed_form(r):
    # delta = 0, v = r: P[Bin(r, q) >= r] = q^r < beta  <=>  eps < logit(beta^(1/r))
    b = 0.05 ** (1 / r)
    assert one_run_epsilon(10 ** 4, r, r, 0.0, 0.95) == pytest.approx(math.log(b / (1 - b)), abs=1e-9)


def _p_value_exact(m, r, v, eps, delta):
    """Theorem 3 term by term with exact binomial coefficients (floats only for q's powers)."""
    q = Fraction(1 / (1 + math.exp(-eps)))
    pmf = [math.comb(r, j) * q ** j * (1 - q) ** (r - j) for j in range(r + 1)]
    tail = sum(pmf[v:])
    worst = max(sum(pmf[v - i: v]) / i for i in range(1, v + 1))
    return float(min(tail + 2 * m * Fraction(delta) * worst, 1))


@pytest.mark.parametrize("m,r,v,eps,delta", [(1000, 100, 100, 2.0, 1e-5), (1000, 60, 52, 1.0, 1e-5),
                                             (10 ** 5, 200, 190, 2.5, 1e-5), (500, 40, 30, 0.5, 0.0)])
def test_one_run_p_value_matches_direct_sum(m, r, v, eps, delta):
    assert one_run_p_value(m, r, v, eps, delta) == pytest.approx(_p_value_exact(m, r, v, eps, delta), rel=1e-9)


def test_one_run_bound_shrinks_with_delta_and_m_and_audit_guesses():
    e0 = one_run_epsilon(1000, 100, 100, 0.0)
    e5 = one_run_epsilon(1000, 100, 100, 1e-5)
    e5_big_m = one_run_epsilon(10 ** 4, 100, 100, 1e-5)
    assert e0 > e5 > e5_big_m > 0
    assert one_run_epsilon(10 ** 6, 100, 100, 1e-5) == 0.0  # 2 m delta = 20: the delta term swamps the test
    # the p-value at the bound is beta (the bisection stops at the boundary)
    assert one_run_p_value(1000, 100, 100, e5, 1e-5) == pytest.approx(0.05, abs=1e-6)
    s = np.r_[np.full(50, 5.0), np.zeros(100), np.full(50, -5.0)]
    inc = np.r_[np.ones(50, bool), np.arange(100) % 2 == 0, np.zeros(50, bool)]
    out = one_run_audit(s, inc, guesses=[25, 50])
    assert out["k"] == 50 and out["v"] == 100
    assert out["eps_lb"] == pytest.approx(one_run_epsilon(200, 100, 100, 0.0, 1 - 0.05 / 2))
    rng = np.random.default_rng(0)  # scores independent of inclusion: nothing to bound
    assert one_run_audit(rng.normal(size=1000), rng.random(1000) < 0.5, guesses=[50, 100])["eps_lb"] < 0.5


def test_the_threshold_is_chosen_without_the_evaluation_half():
    rng = np.random.default_rng(3)
    s1, s0 = rng.normal(1.5, 1, 400), rng.normal(0, 1, 400)
    first = heldout_threshold_bound(s1, s0, n_thresholds=2, rng=np.random.default_rng(7))
    r = np.random.default_rng(7)  # the same split: members' permutation, then non-members'
    ev1, ev0 = r.permutation(400)[200:], r.permutation(400)[200:]
    s1b, s0b = s1.copy(), s0.copy()
    s1b[ev1] += 10.0  # the evaluation half's members become perfectly separable ...
    s0b[ev0] -= 10.0
    second = heldout_threshold_bound(s1b, s0b, n_thresholds=2, rng=np.random.default_rng(7))
    assert second["threshold"] == first["threshold"]  # ... and the threshold does not move
    assert second["eps_lb"] > first["eps_lb"]  # only the evaluated counts do
