"""The blind baseline (overconf.metrics.blind, overconf.metrics.delong, overconf.runner.blind_baseline,
overconf.report.blind_report): independent oracles (scikit-learn's AUROC, direct loops over DeLong's
formulas) and the two synthetic cases of issue 22: a source that differs only in brightness (blind
AUROC near 1) and a held-out copy of the member distribution (near 0.5)."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from overconf.core.cache import Cache
from overconf.data import load_dataset, make_splits
from overconf.config import SplitSizes
from overconf.metrics.blind import fit_blind, load_or_fit_blind
from overconf.metrics.delong import components, delong_auc, delong_difference
from overconf.runner.validation import config_from_dict
from overconf.runner import blind_baseline
from overconf.runner.study import Study
from overconf.runner.run_folder import RUN_FILES


def _loop_components(x, y):
    psi = lambda a, b: 1.0 if a > b else 0.5 if a == b else 0.0  # noqa: E731
    v10 = np.array([np.mean([psi(a, b) for b in y]) for a in x])
    v01 = np.array([np.mean([psi(a, b) for a in x]) for b in y])
    return v10, v01


def test_delong_matches_sklearn_and_a_direct_loop_with_ties():
    g = np.random.default_rng(0)
    x, y = g.integers(0, 12, 40).astype(float), g.integers(-3, 9, 30).astype(float)  # many ties
    v10, v01 = _loop_components(x, y)
    c10, c01 = components(torch.tensor(x), torch.tensor(y))
    assert np.allclose(c10, v10) and np.allclose(c01, v01)
    auc, lo, hi = delong_auc(torch.tensor(x), torch.tensor(y), 0.9)
    assert auc == pytest.approx(roc_auc_score(np.r_[np.ones(40), np.zeros(30)], np.r_[x, y]))
    sd = np.sqrt(v10.var(ddof=1) / 40 + v01.var(ddof=1) / 30)
    assert hi - auc == pytest.approx(1.6448536 * sd, rel=1e-6) and auc - lo == pytest.approx(1.6448536 * sd, rel=1e-6)
    # the paired difference: Var(a) + Var(b) - 2 Cov(a, b) from the loops' components
    x2, y2 = x + g.normal(0, 2, 40), y + g.normal(0, 2, 30)
    w10, w01 = _loop_components(x2, y2)
    d, dlo, dhi = delong_difference(torch.tensor(x), torch.tensor(y), torch.tensor(x2), torch.tensor(y2))
    var = np.var(v10 - w10, ddof=1) / 40 + np.var(v01 - w01, ddof=1) / 30
    assert d == pytest.approx(v10.mean() - w10.mean())
    assert dhi - d == pytest.approx(1.959964 * np.sqrt(var), rel=1e-5)
    assert delong_difference(torch.tensor(x), torch.tensor(y), torch.tensor(x), torch.tensor(y)) == (0.0, 0.0, 0.0)


@pytest.fixture(scope="module")
def fashion():
    ds = load_dataset("fashion_mnist")
    splits = make_splits(ds, SplitSizes(target_train=400, shadow_train=400, calibration=200, target_test=300,
                                        shadow_test=300), seed=0)
    return ds, splits


def _blind_auc(ds, members_fit, members_eval, source_fit, source_eval):
    clf = fit_blind(ds.normalize(members_fit), ds.normalize(source_fit))
    s_in, s_out = clf.score(ds.normalize(members_eval)), clf.score(ds.normalize(source_eval))
    auc, lo, hi = delong_auc(s_in, s_out)
    assert auc == pytest.approx(roc_auc_score(np.r_[np.ones(len(s_in)), np.zeros(len(s_out))],
                                              np.r_[s_in.numpy(), s_out.numpy()]))
    return auc, lo, hi


def test_a_brightness_only_source_is_told_apart(fashion):
    ds, splits = fashion
    reserve = ds.train_x[splits.reserve[-2000:]]
    brighter = lambda im: (im.int() + 40).clamp(0, 255).to(torch.uint8)  # noqa: E731  the same images, +40 grey levels
    other = ds.test_x[:1600]  # any images: their brightness is what differs from the members
    auc, lo, _ = _blind_auc(ds, reserve[:1000], ds.train_x[splits.target_train], brighter(other[:1000]),
                            brighter(other[1000:]))
    assert auc > 0.95 and lo > 0.9


def test_a_held_out_copy_of_the_member_distribution_is_not(fashion):
    ds, splits = fashion
    reserve = ds.train_x[splits.reserve[-2000:]]
    members = ds.train_x[splits.target_train]
    copy = ds.test_x[splits.target_test]  # same distribution, other images
    outside = torch.from_numpy(np.setdiff1d(np.arange(len(ds.test_x)), splits.target_test.numpy()))
    fresh = ds.test_x[outside[:1000]]  # disjoint from the evaluated copy, as in the study
    auc, lo, hi = _blind_auc(ds, reserve[:1000], members, fresh, copy)
    assert abs(auc - 0.5) < 0.06 and lo < 0.5 < hi


def test_the_classifier_is_cached_by_content(tmp_path):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 1, 4, 4, generator=g), torch.randn(50, 1, 4, 4, generator=g) + 1
    cache = Cache(tmp_path)
    first = load_or_fit_blind(a, b, cache)
    again = load_or_fit_blind(a, b, cache)
    assert cache.hits == 1 and cache.misses == 1 and torch.equal(first.w, again.w)
    load_or_fit_blind(a, b + 0.5, cache)
    assert cache.misses == 2


def test_fresh_source_images_are_disjoint_from_the_evaluated_ones(tiny_cfg, tmp_path):
    study = Study(tiny_cfg, tmp_path / "run")
    ds = load_dataset("fashion_mnist")
    study.dataset = ds
    jobs = study.build_jobs(0)
    sources = jobs.build_sources()
    comp = next(c for c in tiny_cfg.sources if c.name == "test")
    fresh = blind_baseline.fresh_source(jobs, comp, 500, sources["test"])
    from overconf.data.sources import image_digests
    assert len(fresh) == 500
    assert not set(image_digests(fresh.images)) & set(image_digests(sources["test"].images))
    fit_x, hold_x = blind_baseline.member_distribution(jobs)
    reserve_tail = set(jobs.splits.reserve[-len(fit_x) - len(hold_x):].tolist())
    assert not reserve_tail & set(jobs.splits.target_train.tolist()) and len(fit_x) == 2000


def test_in_a_study(tiny_raw, monkeypatch):
    tiny_raw["metrics"]["blind_baseline"] = True
    tiny_raw["sources"] = ["test", "digits", "gaussian"]
    monkeypatch.setattr(blind_baseline, "BLIND_FIT", 3400)  # digits: 1,597 fresh images < 3400 / 2: cross-fitted
    result = Study(config_from_dict(tiny_raw)).run()
    rows = {(r["attack"], r["source"], r["metric"]): r["value"] for r in result.rows}
    assert abs(rows[("-", "test", "blind_auc")] - 0.5) < 0.1            # a copy of the member distribution
    assert rows[("-", "gaussian", "blind_auc")] > 0.99                   # noise
    assert rows[("-", "digits", "blind_crossfit")] == 1.0 and rows[("-", "test", "blind_crossfit")] == 0.0
    assert rows[("-", "digits", "blind_auc")] > 0.95
    for source in ("test", "digits", "gaussian"):
        assert 0 <= rows[("-", source, "propensity_auc")] <= 1
        # attack - blind is the attack's own AUROC row minus the blind one
        assert rows[("max_score", source, "auc_minus_blind")] == pytest.approx(
            rows[("max_score", source, "auroc")] - rows[("-", source, "blind_auc")], abs=1e-9)
    with open(result.run_dir / "blind_baseline.csv") as f:
        recs = list(csv.DictReader(f))
    assert len(recs) == 3 * 3 and {r["explained"] for r in recs} <= {"0.0", "1.0"}
    assert "blind_baseline.csv" in RUN_FILES
    assert "## Memorised or different?" in (result.run_dir / "summary.md").read_text()
