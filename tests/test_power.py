"""Many verdicts at once: the power planner against statsmodels' power functions, the verdicts'
t-test p-values against scipy and their duality with the interval decision, Benjamini-Hochberg
and the power plan in the verdicts' Markdown."""
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower, TTestPower
from statsmodels.stats.proportion import proportion_effectsize

from overconf.report.comparison import Comparison, Entry, SettingInfo
from overconf.report.intervals import HOLDS, INCONCLUSIVE, decide, t_interval
from overconf.report.power import plan, points_needed, seeds_needed, two_proportion_power
from overconf.report.verdicts import verdicts, verdicts_markdown


@pytest.mark.parametrize("p0", [0.0, 0.01, 0.1, 0.3, 0.5, 0.97, 1.0])
def test_points_per_source_match_statsmodels(p0):
    p1 = p0 + 0.05 if p0 + 0.05 <= 1 else p0 - 0.05
    sm = NormalIndPower().solve_power(effect_size=proportion_effectsize(p1, p0), alpha=0.05, power=0.8, ratio=1)
    n = points_needed(p0)
    assert n == math.ceil(sm)
    assert two_proportion_power(n, p0, p1) >= 0.8 > two_proportion_power(n - 1, p0, p1)


@pytest.mark.parametrize("sd", [0.01, 0.03, 0.05, 0.1, 0.3, 1.0])
def test_seeds_match_statsmodels_t_test_power(sd):
    assert seeds_needed(sd) == math.ceil(TTestPower().solve_power(effect_size=0.05 / sd, alpha=0.05, power=0.8))


def test_plan_reads_the_per_seed_spread_or_the_binomial_one():
    assert "1376 non-members and 1376 members per source (this run: 2500)" in plan(0.3, 2500, [0.3])
    assert "34 seeds (sd over this run's 3 seeds 0.100)" in plan(0.3, None, [0.2, 0.4, 0.3])
    assert "at least 2 seeds (binomial sd 0.009 at 2500 points; 1 seed)" in plan(0.3, 2500, [0.3])


@pytest.mark.parametrize("values, bound", [([0.01, 0.02, 0.015], 0.05), ([0.3, 0.4, 0.35], 0.05),
                                           ([0.0, 0.1, 0.02], 0.05), ([0.45, 0.7, 0.6, 0.5], 0.5)])
def test_p_value_is_scipy_t_test_and_dual_to_the_interval(values, bound):
    iv = t_interval(values)
    assert iv.p_value(bound) == pytest.approx(stats.ttest_1samp(values, bound).pvalue)
    decided = decide(iv, bound, "below") != INCONCLUSIVE
    assert decided == (iv.p_value(bound) < 0.05)
    assert math.isnan(t_interval([0.3]).p_value(0.05))


def _entry(name, calibration=None, scaled=None, recipe=None):
    values = {"auroc": 0.7, "mean_ood_fpr": 0.5, "fake_fpr": math.nan, "fpr:scaled": float(np.mean(scaled or [1.0]))}
    per_seed = {k: {s: v for s in range(3)} for k, v in values.items()}
    if scaled:
        per_seed["fpr:scaled"] = dict(enumerate(scaled))
    return Entry("run", "m", SettingInfo(name, recipe or {}, calibration or {"name": "none"}), values, {}, per_seed)


def test_verdicts_carry_p_values_bh_and_a_power_plan_when_inconclusive():
    llla = {"name": "llla"}
    entries = [_entry("baseline"), _entry("llla_a", llla, [0.0, 0.01, 0.004]),  # holds, p tiny
               _entry("llla_b", llla, [0.0, 0.1, 0.02]),                          # inconclusive
               _entry("llla_c", llla, [0.03, 0.065, 0.05])]                        # inconclusive
    c = Comparison(entries, "max_score", ["scaled"], "baseline", False)
    v = {x.key: x for x in verdicts(c)}["llla_scaled"]
    status = {label.split(" / ")[-1]: st for label, st, *_ in v.evidence}
    assert status["llla_a"] == HOLDS and status["llla_b"] == INCONCLUSIVE
    assert v.p_values["m / llla_a"] == pytest.approx(stats.ttest_1samp([0.0, 0.01, 0.004], 0.05).pvalue)
    assert "m / llla_b" in v.plans and "m / llla_a" not in v.plans and "seeds" in v.plans["m / llla_b"]
    md = verdicts_markdown(c)
    assert "Benjamini-Hochberg adjusted over the 3 lines" in md
    assert "llla_a: FPR scaled" in md and "BH q = " in md
    assert "power plan: to detect an FPR change of 0.05 at 80% power" in md


def test_a_line_decided_alone_but_not_after_bh_says_so():
    llla = {"name": "llla"}
    # llla_a barely holds (p just under 0.05); llla_b and llla_c are far from any decision
    entries = [_entry("baseline"), _entry("llla_a", llla, [0.0, 0.02, 0.04, 0.01]),
               _entry("llla_b", llla, [0.0, 0.3, 0.1]), _entry("llla_c", llla, [0.0, 0.2, 0.05])]
    c = Comparison(entries, "max_score", ["scaled"], "baseline", False)
    v = {x.key: x for x in verdicts(c)}["llla_scaled"]
    assert {label: st for label, st, *_ in v.evidence}["m / llla_a"] == HOLDS  # the status itself stays
    assert 0.05 / 3 < v.p_values["m / llla_a"] < 0.05
    assert "holds (p = 0.0" in verdicts_markdown(c) and "not decided after BH" in verdicts_markdown(c)
