"""Verdicts with uncertainty: Student-t intervals over seeds, holds / does not hold / inconclusive
from the interval, per architecture."""
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from overconf.config import parse_config
from overconf.report.comparison import Comparison, Entry, RunData, SettingInfo, run_entries
from overconf.report.verdicts import (FAILS, HOLDS, INCONCLUSIVE, NOT_TESTED, decide, t_interval, verdicts,
                                      verdicts_markdown)


@pytest.mark.parametrize("values", [[0.1, 0.3], [0.01, 0.02, 0.015], [0.9, 0.2, 0.5, 0.7, 0.65]])
def test_t_interval_matches_scipy(values):
    iv = t_interval(values)
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert (iv.mean, iv.low, iv.high, iv.n) == pytest.approx((np.mean(values), lo, hi, len(values)))
    iv90 = t_interval(values, 0.9)
    assert (iv90.low, iv90.high) == pytest.approx(stats.t.interval(0.9, len(values) - 1, loc=np.mean(values),
                                                                   scale=stats.sem(values)))


def test_t_interval_one_value_and_nans():
    iv = t_interval([0.3, float("nan")])
    assert iv.n == 1 and iv.mean == 0.3 and math.isnan(iv.low) and math.isnan(iv.high)
    assert "1 seed: no interval" in iv.text()


def test_decide_from_the_interval():
    # claim: value <= 0.05
    assert decide(t_interval([0.01, 0.02, 0.015]), 0.05, "below") == HOLDS
    assert decide(t_interval([0.3, 0.4, 0.35]), 0.05, "below") == FAILS
    assert decide(t_interval([0.0, 0.1, 0.02]), 0.05, "below") == INCONCLUSIVE  # mean 0.04, interval straddles
    # claim: value >= 0.5
    assert decide(t_interval([0.8, 0.9, 0.85]), 0.5, "above") == HOLDS
    assert decide(t_interval([0.1, 0.2, 0.15]), 0.5, "above") == FAILS
    assert decide(t_interval([0.45, 0.7, 0.6]), 0.5, "above") == INCONCLUSIVE
    # one seed: the value decides; strict claims fail at the bound
    assert decide(t_interval([0.05]), 0.05, "below") == HOLDS
    assert decide(t_interval([0.0]), 0.0, "below", strict=True) == FAILS


def _entry(name, model="m", recipe=None, calibration=None, per_seed=None):
    per_seed = per_seed or {}
    values = {"auroc": 0.7, "mean_ood_fpr": 0.5, "fake_fpr": float("nan"), "fpr:scaled": 1.0}
    values |= {k: float(np.mean(list(v.values()))) for k, v in per_seed.items()}
    per_seed = {k: per_seed.get(k, {s: values[k] for s in range(3)}) for k in values}
    return Entry("run", model, SettingInfo(name, recipe or {}, calibration or {"name": "none"}), values, {}, per_seed)


def _scaled(*vals):
    return {"fpr:scaled": dict(enumerate(vals))}


def test_verdicts_per_architecture_from_intervals_over_seeds():
    llla = {"name": "llla"}
    entries = [_entry("baseline", "resnet"), _entry("baseline", "cnn"),
               _entry("llla", "resnet", calibration=llla, per_seed=_scaled(0.0, 0.01, 0.004)),
               _entry("llla", "cnn", calibration=llla, per_seed=_scaled(0.3, 0.5, 0.4)),
               _entry("t10", "resnet", calibration={"name": "temperature", "T": 10}, per_seed=_scaled(0.0, 0.9, 0.7)),
               _entry("t10", "cnn", calibration={"name": "temperature", "T": 10}, per_seed=_scaled(0.9, 0.95, 1.0))]
    c = Comparison(entries, "max_score", ["test", "digits", "scaled"], "baseline", False)
    got = {v.key: v for v in verdicts(c)}
    assert got["llla_scaled"].per_model == {"resnet": HOLDS, "cnn": FAILS}
    assert got["llla_scaled"].status == "resnet: holds; cnn: does not hold"
    assert got["temperature_scaled"].per_model == {"resnet": INCONCLUSIVE, "cnn": HOLDS}
    text = got["llla_scaled"].evidence[0][2]
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean([0.0, 0.01, 0.004]), scale=stats.sem([0.0, 0.01, 0.004]))
    assert f"95% CI [{max(lo, 0.0):.3f}, {hi:.3f}] over 3 seeds" in text  # a rate: cut to [0, 1]
    md = verdicts_markdown(c)
    assert "LLLA drives scaled-input FPR to near 0 (<= 0.05): resnet: holds; cnn: does not hold" in md
    assert "Student-t interval" in md and "resnet / t10: FPR scaled baseline 1.000 -> " in md


def test_label_smoothing_and_l2_use_paired_differences_over_seeds():
    base = _entry("baseline", per_seed={"mean_ood_fpr": {0: 0.5, 1: 0.6, 2: 0.7}, "auroc": {0: 0.7, 1: 0.8, 2: 0.9}})
    # lower in every seed by 0.1 +- 0.01 and AUROC higher in every seed: holds although the seeds vary a lot
    ls_a = _entry("ls_a", recipe={"label_smoothing": 0.1},
                  per_seed={"mean_ood_fpr": {0: 0.39, 1: 0.5, 2: 0.61}, "auroc": {0: 0.72, 1: 0.81, 2: 0.92}})
    # mean lower, but one seed higher: inconclusive (a one-run comparison of the means would say "holds")
    ls_b = _entry("ls_b", recipe={"label_smoothing": 0.05},
                  per_seed={"mean_ood_fpr": {0: 0.3, 1: 0.65, 2: 0.6}, "auroc": {0: 0.72, 1: 0.81, 2: 0.92}})
    wd = _entry("wd", recipe={"weight_decay": 1e-3}, per_seed={"auroc": {0: 0.75, 1: 0.85, 2: 0.95}})
    c = Comparison([base, ls_a, ls_b, wd], "max_score", ["test", "digits"], "baseline", False)
    got = {v.key: v for v in verdicts(c)}
    ls = {label: status for label, status, _, _ in got["label_smoothing"].evidence}
    assert ls == {"m / ls_a": HOLDS, "m / ls_b": INCONCLUSIVE}
    assert got["label_smoothing"].status == "partly holds (1 of 2 settings; 1 inconclusive)"
    assert got["l2_auroc"].status == FAILS  # farther from 0.5 in every seed
    assert "difference -0.100, 95% CI" in got["label_smoothing"].evidence[0][2]


def test_run_entries_keep_per_seed_values():
    rows = []
    for seed, (fpr_s, fpr_d, auroc) in enumerate([(0.1, 0.3, 0.6), (0.2, 0.5, 0.7)]):
        for src, metric, value in (("scaled", "fpr", fpr_s), ("digits", "fpr", fpr_d), ("test", "fpr", 0.4),
                                   ("test", "auroc", auroc), ("fake", "fpr", 0.9)):
            rows.append({"model": "m", "seed": seed, "setting": "baseline", "attack": "max_score", "source": src,
                         "metric": metric, "value": value})
    run = RunData(Path("run"), parse_config({"settings": {"baseline": {}}}), rows, {})
    (e,), sources = run_entries(run, "max_score")
    assert e.per_seed["fpr:scaled"] == {0: 0.1, 1: 0.2}
    assert e.per_seed["mean_ood_fpr"] == pytest.approx({0: 0.2, 1: 0.35})
    assert e.per_seed["fake_fpr"] == {0: 0.9, 1: 0.9}
    assert e.per_seed["auroc"] == {0: 0.6, 1: 0.7}
    assert e.values["fpr:scaled"] == pytest.approx(0.15)


def test_not_tested_is_kept():
    c = Comparison([_entry("baseline")], "max_score", ["test"], "baseline", False)
    assert all(v.status == NOT_TESTED for v in verdicts(c))


def test_tiny_intervals_are_not_rounded_to_zero():
    text = t_interval([-1e-5, -2e-5, -1.5e-5]).text(signed=True)
    assert text.startswith("-1.50e-05, 95% CI [-2.74e-05, -2.58e-06]"), text


def test_rate_intervals_are_cut_to_the_unit_range():
    values = [0.99, 1.0, 0.5]  # mean 0.83, Student-t half-width > 0.17
    raw, cut = t_interval(values), t_interval(values, limits=(0.0, 1.0))
    assert raw.high > 1.0 and cut.high == 1.0
    assert cut.low == pytest.approx(raw.low) and cut.mean == pytest.approx(raw.mean)
    for bound, side in ((0.05, "below"), (0.5, "above"), (0.9, "above")):
        assert decide(raw, bound, side) == decide(cut, bound, side)
