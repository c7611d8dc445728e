"""Causal memorization, multi-run and one-run (seed 001; overconf/analysis/causal_memorization.py,
one_run.py): every estimate equals a direct loop over the formula on a fixed score / keep matrix."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from overconf.analysis import one_run
from overconf.analysis.causal_memorization import causal_auc, causal_rates, causal_tpr_at_fpr, multi_run, per_point
from overconf.analysis.weighted import weighted_auc, weighted_tpr_at_fpr
from overconf.core.cache import Cache
from overconf.config import Recipe
from overconf.metrics.functional import binary_tpr_at_fpr
from overconf.reference.keep import balanced_keep
from overconf.reference.manager import ReferenceSet


def fixed(k=6, n=9, seed=0):
    rng = np.random.default_rng(seed)
    keep = rng.random((k, n)) < 0.5
    keep[0], keep[1] = True, False  # every point IN and OUT at least once
    scores = np.round(rng.normal(size=(k, n)) + keep, 1)  # rounded: ties occur
    return scores, keep


def direct_auc(s_in, s_out):
    total = sum((a > b) + 0.5 * (a == b) for a in s_in for b in s_out)
    return total / (len(s_in) * len(s_out))


def test_multi_run_equals_the_direct_formula():
    s, keep = fixed()
    k, n = s.shape
    ins = [s[i, j] for i in range(k) for j in range(n) if keep[i, j]]
    outs = [s[i, j] for i in range(k) for j in range(n) if not keep[i, j]]
    t = 0.3
    tpr, fpr = causal_rates(s, keep, t)
    assert tpr == pytest.approx(sum(v >= t for v in ins) / len(ins))
    assert fpr == pytest.approx(sum(v >= t for v in outs) / len(outs))
    assert causal_auc(s, keep) == pytest.approx(direct_auc(ins, outs))
    pp = per_point(s, keep, correct=(s > 0.5).astype(float))
    for j in range(n):
        a = [s[i, j] for i in range(k) if keep[i, j]]
        b = [s[i, j] for i in range(k) if not keep[i, j]]
        assert pp["auc"][j] == pytest.approx(direct_auc(a, b))
        assert pp["delta"][j] == pytest.approx(np.mean(a) - np.mean(b))
        sd = np.sqrt((np.sum((np.array(a) - np.mean(a)) ** 2) + np.sum((np.array(b) - np.mean(b)) ** 2)) / (k - 2))
        assert pp["standardized"][j] == pytest.approx((np.mean(a) - np.mean(b)) / sd)
        assert pp["feldman"][j] == pytest.approx(np.mean(np.array(a) > 0.5) - np.mean(np.array(b) > 0.5))
        assert (pp["n_in"][j], pp["n_out"][j]) == (len(a), len(b))
    # TPR at a fixed causal FPR: the study's ROC convention (FPR <= x counts)
    assert causal_tpr_at_fpr(s, keep, 0.2) == pytest.approx(binary_tpr_at_fpr(ins, outs, 0.2))


def test_point_without_an_out_model_is_nan():
    s, keep = fixed()
    keep[:, 3] = True
    pp = per_point(s, keep)
    assert np.isnan(pp["auc"][3]) and np.isnan(pp["delta"][3]) and np.isfinite(pp["auc"][2])


def test_weighted_statistics_match_scikit_learn_and_replication():
    rng = np.random.default_rng(1)
    a, b = np.round(rng.normal(1, 1, 40), 1), np.round(rng.normal(0, 1, 30), 1)
    y = np.r_[np.ones(40), np.zeros(30)]
    assert weighted_auc(a, b) == pytest.approx(roc_auc_score(y, np.r_[a, b]))
    wa, wb = rng.integers(1, 4, 40), rng.integers(1, 4, 30)
    assert weighted_auc(a, b, wa, wb) == pytest.approx(direct_auc(np.repeat(a, wa), np.repeat(b, wb)))
    assert weighted_tpr_at_fpr(a, b, 0.1) == pytest.approx(binary_tpr_at_fpr(a, b, 0.1))
    assert weighted_tpr_at_fpr(a, b, 0.1, wa, wb) == pytest.approx(
        binary_tpr_at_fpr(np.repeat(a, wa), np.repeat(b, wb), 0.1))


def test_bootstrap_over_runs_is_seeded_and_resamples_models():
    s, keep = fixed(k=12, n=30)
    r1, r2 = multi_run(s, keep, n_boot=50, seed=3), multi_run(s, keep, n_boot=50, seed=3)
    assert r1.low == r2.low and r1.high == r2.high
    assert multi_run(s, keep, n_boot=50, seed=4).low != r1.low
    for m, v in r1.estimates.items():
        assert r1.low[m] <= v + 1e-12 <= r1.high[m] + 2e-12 or np.isnan(v), m
    # one replicate by hand: the same seeded draw of K model indices
    idx = np.random.default_rng(3).integers(0, 12, 12)
    assert causal_auc(s[idx], keep[idx]) == pytest.approx(
        multi_run(s[idx], keep[idx], n_boot=0).estimates["causal_auc"])
    assert r1.points_low["auc"].shape == (30,)
    assert multi_run(s, keep, n_boot=0).low["causal_auc"] != multi_run(s, keep, n_boot=0).low["causal_auc"]  # nan


# ----------------------------------------------------------------------------- one run

@pytest.mark.parametrize("base", ["rest", "half"])
def test_one_run_design(base):
    audit, included, mask = one_run.design(100, 20, seed=5, base=base)
    assert len(audit) == 20 == len(set(audit.tolist())) and included.dtype == bool
    assert mask[audit[included]].all() and not mask[audit[~included]].any()
    rest = np.setdiff1d(np.arange(100), audit)
    assert mask[rest].sum() == (80 if base == "rest" else 40)
    again = one_run.design(100, 20, seed=5, base=base)
    assert all(np.array_equal(x, y) for x, y in zip((audit, included, mask), again))
    assert not np.array_equal(one_run.design(100, 20, seed=6, base=base)[0], audit)
    with pytest.raises(ValueError):
        one_run.design(100, 101, seed=5)


def test_one_run_estimates_equal_the_direct_formula():
    rng = np.random.default_rng(2)
    s, inc = rng.normal(size=50), rng.random(50) < 0.5
    e = one_run.estimates(s, inc, threshold=0.2)
    assert e["auc"] == pytest.approx(direct_auc(s[inc], s[~inc]))
    assert e["tpr"] == pytest.approx(np.mean(s[inc] >= 0.2)) and e["fpr"] == pytest.approx(np.mean(s[~inc] >= 0.2))
    assert e["delta"] == pytest.approx(s[inc].mean() - s[~inc].mean())
    lo, hi = one_run.bootstrap(s, inc, 0.2, 100, seed=1)
    assert lo == one_run.bootstrap(s, inc, 0.2, 100, seed=1)[0]
    assert all(lo[m] <= e[m] <= hi[m] for m in one_run.METRICS)


def tiny_reference_set(k=4, n=96):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 12, 12), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 3, (n,), generator=g)
    return ReferenceSet("salem_cnn", {"width": 4, "hidden": 16}, Recipe(epochs=2, batch_size=16, lr=3e-3),
                        images, labels, torch.zeros(n, dtype=torch.long), torch.arange(n),
                        balanced_keep(n, k, torch.Generator().manual_seed(0)), [100 + i for i in range(k)],
                        torch.tensor([[[0.5]]]), torch.tensor([[[0.25]]]), 3, "sequential", 32,
                        torch.randn(10, 1, 12, 12), torch.zeros(10, dtype=torch.long))


def test_one_run_curve_trains_once_per_m_and_is_cached(tmp_path):
    rs, cache = tiny_reference_set(), Cache(tmp_path / "cache")
    cpu = torch.device("cpu")
    points = one_run.one_run_curve(rs, cache, cpu, [16, 96], seed=0, n_boot=20)
    assert [p.m for p in points] == [16, 96] and len({p.model_key for p in points}) == 2
    scores, keep = one_run.reference_scores(rs, cache, cpu)
    assert scores.shape == keep.shape == (4, 96)
    audit = one_run.design(96, 16, 0)[0]
    assert points[0].multi["auc"][0] == pytest.approx(causal_auc(scores[:, audit], keep[:, audit]))
    rows = points[0].rows(source="x")
    bias = {r["metric"]: r["value"] for r in rows}
    assert bias["bias_auc"] == pytest.approx(bias["one_run_auc"] - bias["multi_run_auc"])
    misses = cache.misses
    again = one_run.one_run_curve(rs, cache, cpu, [16, 96], seed=0, n_boot=20)
    assert cache.misses == misses  # models and outputs from the cache
    assert [p.one_run for p in again] == [p.one_run for p in points]
    fig = one_run.bias_figure(points)
    assert len(fig.axes) == 1


# ----------------------------------------------------------------------------- the analysis, end to end

def test_causal_memorization_analysis_on_a_tiny_study(tiny_raw, tmp_path):
    import copy

    import overconf
    from overconf.core.errors import ConfigError
    from overconf.runner.study import Study
    from overconf.runner.validation import config_from_dict

    raw = copy.deepcopy(tiny_raw)
    raw["models"] = [{"arch": "salem_cnn", "params": {"width": 4, "hidden": 16}}]
    raw["recipe"] = {"epochs": 2, "lr": 0.003, "batch_size": 64}
    raw["data"]["eval_size"] = raw["data"]["fit_size"] = 100
    raw["sources"], raw["attacks"] = ["test", "gaussian"], ["max_score", "lira"]
    raw["reference"] = {"num_models": 4, "population": 50}
    raw["analysis"] = {"causal_memorization": {"one_run_m": [40, 400], "bootstrap": 20, "folds": 3,
                                               "one_run_models": 2, "one_run_base": ["half", "rest"]}}
    raw["settings"] = {"baseline": {}, "t10": {"calibration": {"name": "temperature", "T": 10}}}
    run_dir = tmp_path / "run"
    calls, real = [], one_run.one_run_curve
    one_run.one_run_curve = lambda *a, **kw: calls.append(1) or real(*a, **kw)
    try:
        Study(config_from_dict(raw), run_dir).run()
    finally:
        one_run.one_run_curve = real
    assert len(calls) == 2  # once per base; both settings share the attacker's reference set: computed once
    assert (run_dir / "analysis" / "analysis.md").exists()
    run = overconf.analyze(run_dir, only="causal_memorization", cache_dir=raw["cache_dir"])
    assert run.cache_misses == 0  # reference, one-run and shadow outputs all from the cache
    table = run.results["causal_memorization"][(0, "salem_cnn", "baseline")].tables["memorization"]
    assert {"auc", "delta", "standardized", "feldman", "feldman_ci_low"} <= set(table.columns) and len(table) == 400
    frame = run.frame
    by_setting = [frame[(frame.part == "multi_run") & (frame.setting == s)].value.tolist() for s in ("baseline", "t10")]
    assert by_setting[0] == by_setting[1]
    frame = frame[frame.setting == "baseline"]
    multi = frame[frame.part == "multi_run"].set_index("metric")
    assert 0 <= multi.loc["causal_auc", "value"] <= 1
    assert multi.loc["causal_auc", "ci_low"] <= multi.loc["causal_auc", "value"] <= multi.loc["causal_auc", "ci_high"]
    one = frame[(frame.part == "one_run") & (frame.base == "half")]
    assert set(frame[frame.part == "one_run"].base) == {"half", "rest"}  # both protocols, side by side
    assert sorted(one.m.dropna().unique()) == [40, 400]
    assert sorted(one.replicate.dropna().unique()) == [0, 1]  # two one-run models per m
    for m in (40, 400):  # the bias summary is the mean over the two models' one-run - multi-run
        at = one[one.m == m].set_index(["replicate", "metric"]).value
        mean = one[(one.m == m) & (one.metric == "bias_mean_auc")]
        assert mean.value.iloc[0] == pytest.approx((at[(0, "bias_auc")] + at[(1, "bias_auc")]) / 2)
        assert mean.ci_low.iloc[0] <= mean.value.iloc[0] <= mean.ci_high.iloc[0]
    zero = frame[frame.part == "zero_run"]
    assert set(zero.source) == {"test", "gaussian"}
    # the loss score log p_y exists for labelled sources only (test), never for unlabelled noise
    assert set(zero[zero.score == "loss"].source) == {"test"}
    assert {"gformula_auc", "aipw_auc", "ipw_auc"} <= set(zero.metric)
    z = zero[zero.score == "max_score"].set_index(["source", "metric"]).value
    assert z[("gaussian", "propensity_auc")] > 0.95  # noise vs clothing: no overlap, flagged
    # the naive zero-run AUC is the study's max_score AUROC (same ROC: monotone score, same sets)
    import pandas as pd

    study = pd.read_csv(run_dir / "results.csv")
    auroc = study[(study.attack == "max_score") & (study.source == "test") & (study.metric == "auroc")].value
    assert z[("test", "naive_auc")] == pytest.approx(float(auroc.iloc[0]), abs=1e-9)
    files = {p.name for p in (run_dir / "analysis" / "causal_memorization").iterdir()}
    tag = "salem_cnn_baseline_s0"
    assert {f"{tag}_memorization.csv", f"{tag}_memorization.parquet", f"{tag}_one_run_bias_half.png", f"{tag}_one_run_bias_rest.png",
            f"{tag}_zero_run.csv", f"{tag}_zero_run_auc.png"} <= files, files
    md = (run_dir / "analysis" / "analysis.md").read_text()
    assert "Causal memorization" in md and "Zero-run" in md and "no overlap" in md
    assert "Checks with known truth" in md and "G-formula" in md
    truth = frame[frame.part == "known_truth"]
    assert {"multi_run", "zero_run", "dp_bound"} <= set(truth.source)
    assert z[("test", "naive_auc_minus_test")] == 0 and z[("gaussian", "naive_auc_minus_test")] == pytest.approx(
        z[("gaussian", "naive_auc")] - z[("test", "naive_auc")])
    with pytest.raises(ConfigError, match="one_run_m"):
        overconf.analyze(run_dir, only="causal_memorization", cache_dir=raw["cache_dir"],
                         analysis__causal_memorization__one_run_m=[1000])


@pytest.mark.parametrize("params, match", [
    ({"one_run_m": [1]}, "one_run_m"), ({"one_run_base": "all"}, "one_run_base"),
    ({"covariates": "pixels"}, "covariates"), ({"folds": 1}, "folds"), ({"clip": 0.7}, "clip"),
    ({"tpr_at": [0]}, "tpr_at"), ({"bootstrap": -1}, "bootstrap"), ({"nonsense": 1}, "nonsense"),
    ({"one_run_models": 0}, "one_run_models"), ({"known_truth": "yes"}, "known_truth"), ({"dp_delta": 1}, "dp_delta")])
def test_bad_parameters_are_one_clear_error(params, match):
    from overconf.analysis import ANALYSES
    from overconf.core.errors import ConfigError

    analysis = ANALYSES["causal_memorization"]()
    with pytest.raises(ConfigError, match=match):
        analysis.check(analysis.params(params))


def test_dp_bound_on_a_dp_sgd_setting_with_aware_reference_models(tiny_raw, tmp_path):
    """The reference models of an aware attacker of a dp_sgd setting are DP-SGD models: the analysis
    checks TPR_c <= e^eps FPR_c + delta on their multi-run curves, eps from opacus' accountant."""
    import copy

    import overconf
    from overconf.defenses.dp_sgd import epsilon_reached, sample_rate, steps_per_epoch
    from overconf.runner.study import Study
    from overconf.runner.validation import config_from_dict

    raw = copy.deepcopy(tiny_raw)
    raw["models"] = [{"arch": "salem_cnn", "params": {"width": 4, "hidden": 16}}]
    raw["recipe"] = {"epochs": 2, "lr": 0.003, "batch_size": 64}
    raw["sources"], raw["attacks"] = ["test"], ["lira"]
    raw["reference"] = {"num_models": 4, "population": 50}
    raw["settings"] = {"dp": {"defense": {"name": "dp_sgd", "noise_multiplier": 1.0}, "attacker": "aware"}}
    raw["analysis"] = {"causal_memorization": {"one_run_m": [], "bootstrap": 0, "folds": 3, "known_truth": False}}
    run_dir = tmp_path / "run"
    Study(config_from_dict(raw), run_dir).run()
    frame = overconf.analyze(run_dir, only="causal_memorization", cache_dir=raw["cache_dir"]).frame
    dp = frame[frame.part == "dp_bound"].set_index("metric").value
    run = overconf.analyze(run_dir, only="causal_memorization", cache_dir=raw["cache_dir"])
    n_points = len(run.results["causal_memorization"][(0, "salem_cnn", "dp")].tables["memorization"])
    n = int(dp["dp_train_size"])
    assert n == n_points // 2  # each reference model trains on half of the reference points
    want = epsilon_reached(1.0, sample_rate(n, 64), 2 * steps_per_epoch(n, 64), 1e-5)
    assert dp["dp_epsilon"] == pytest.approx(want) and dp["dp_delta"] == 1e-5
    assert dp["dp_bound_violated"] == 0 and dp["dp_bound_conservative_violation"] <= dp["dp_bound_max_violation"]
