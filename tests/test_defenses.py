"""Release-time defenses (overconf.defenses): formulas on hand examples, MemGuard's guarantees,
and a tiny study with defense settings next to the baseline (no retraining, unchanged accuracy)."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from overconf.config import Component, Setting
from overconf.defenses import DEFENSES, DefenseContext
from overconf.defenses.memguard import MemGuard
from overconf.core.errors import ConfigError


def _lp(p):
    return torch.tensor(p, dtype=torch.float64).log()


# ---------------------------------------------------------------- logit reweighting
def _reweighted_by_hand(z, c, w=0.1):
    """The published formula, one row at a time (the authors' notebook loop, written from its
    description): k = argmax z, s = w cos(z, c_k), z' = s z + (1 - s) c_k, then log-softmax."""
    out = []
    for zi in z:
        k = int(np.argmax(zi))
        s = w * float(zi @ c[k] / (np.linalg.norm(zi) * np.linalg.norm(c[k])))
        zp = s * zi + (1 - s) * c[k]
        out.append(zp - math.log(np.exp(zp).sum()))
    return np.array(out)


def _ctx(train_z, labels, logits=True):
    z = torch.tensor(train_z, dtype=torch.float64)
    return DefenseContext(torch.log_softmax(z, 1), torch.tensor(labels), torch.empty(0, z.shape[1], dtype=torch.float64),
                          torch.empty(0, dtype=torch.long), 0, train_logits=z if logits else None)


def test_logit_reweighting_matches_a_hand_computed_example():
    # zero-mean logits, two training points per class: raw and centred coincide here
    train_z = np.array([[2., -1., -1.], [4., -2., -2.], [-1., 3., -2.], [-1., 1., 0.], [0., -1., 1.], [-2., -1., 3.]])
    labels = [0, 0, 1, 1, 2, 2]
    c = np.array([[3., -1.5, -1.5], [-1., 2., -1.], [-1., -1., 2.]])  # class means by hand
    z = np.array([[1., 0.5, -1.5], [-0.5, -1., 1.5]])
    for logits in (True, False):
        d = DEFENSES["logit_reweighting"](w=0.1).fit(_ctx(train_z, labels, logits))
        assert np.allclose(d.centroids.numpy(), c)
        zt = torch.tensor(z)
        out = d.release_outputs(torch.log_softmax(zt, 1), zt if logits else None).numpy()
        assert np.allclose(out, _reweighted_by_hand(z, c))
        assert (out.argmax(1) == z.argmax(1)).all()


def test_logit_reweighting_works_on_raw_non_centred_logits_as_published():
    # raw logits with a per-row offset (as a real model's are): the defense must reweight these
    # vectors themselves; the cosine of the centred ones is a different quantity
    train_z = np.array([[6., 2., 1.], [8., 3., 2.], [4., 9., 3.], [5., 7., 3.], [3., 2., 7.], [2., 3., 9.]])
    labels = [0, 0, 1, 1, 2, 2]
    c = np.array([[7., 2.5, 1.5], [4.5, 8., 3.], [2.5, 2.5, 8.]])  # class means of the raw logits, by hand
    z = np.array([[5., 4., 1.], [10., 2., 9.5], [1., 3., 2.]]) + np.array([[3.], [-2.], [0.5]])
    d = DEFENSES["logit_reweighting"](w=0.1).fit(_ctx(train_z, labels))
    assert d.on_logits and np.allclose(d.centroids.numpy(), c)
    zt = torch.tensor(z)
    out = d.release_outputs(torch.log_softmax(zt, 1), zt).numpy()
    assert np.allclose(out, _reweighted_by_hand(z, c), atol=1e-12)
    centred = z - z.mean(1, keepdims=True)
    by_centred = _reweighted_by_hand(centred, c - c.mean(1, keepdims=True))
    assert not np.allclose(out, by_centred, atol=1e-3)  # not the centred-log-probability variant
    assert d.describe()["on_logits"] == 1.0
    # where the release has no logits (a probabilities-only calibration) the centred representative runs, and says so
    f = DEFENSES["logit_reweighting"](w=0.1).fit(_ctx(train_z, labels, logits=False))
    assert np.allclose(f.release(torch.log_softmax(zt, 1)).numpy(), by_centred, atol=1e-12)
    assert f.describe()["on_logits"] == 0.0
    with pytest.raises(ValueError, match="handed only log-probabilities"):
        d.release(torch.log_softmax(zt, 1))


def test_logit_reweighting_changes_labels_as_published_and_keep_label_is_an_option():
    # raw logits, offset by +5: class 1's centroid points at class 0, so z' ~ c_1 has argmax 0
    train = [[8., 3.5, 3.5], [7., 6., 2.], [4., 4., 7.]]
    q = torch.tensor([[5.1, 5.5, 4.4], [9., 1., 1.]], dtype=torch.float64)
    c = np.array(train)  # one training point per class: the centroids are the points
    d = DEFENSES["logit_reweighting"]().fit(_ctx(train, [0, 1, 2]))
    assert d.keep_label is False  # the published defense has no label fix-up
    raw = d.release_outputs(q.log_softmax(1), q)
    assert np.allclose(raw.numpy(), _reweighted_by_hand(q.numpy(), c))
    assert raw.argmax(1).tolist() == [0, 0]  # row 0: the released label changed from 1 to 0
    assert d.describe()["label_changed_fraction"] == 0.5 and "label_swapped_fraction" not in d.describe()
    kept = DEFENSES["logit_reweighting"](keep_label=True).fit(_ctx(train, [0, 1, 2]))
    out = kept.release_outputs(q.log_softmax(1), q)
    assert out.argmax(1).tolist() == [1, 0]
    assert torch.allclose(out.sort(1).values, raw.sort(1).values)  # the same values, two swapped
    assert kept.describe()["label_swapped_fraction"] == 0.5


def test_logit_reweighting_through_a_calibration_uses_the_release_logits():
    from overconf.calibrations import CALIBRATIONS
    from overconf.defenses.release import defend
    from overconf.signals.outputs import Outputs

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(60, 4, generator=g) * 3 + 7  # an offset: raw logits are not centred
    labels = torch.arange(60) % 4
    out = Outputs(logits, torch.zeros(60, 2), labels)
    for cal, scale in ((CALIBRATIONS["none"](), 1.0), (CALIBRATIONS["temperature"](T=4), 4.0)):
        defended = defend(cal, Component("logit_reweighting"), out, out, 0)
        z = (logits.double() / scale).numpy()
        c = np.stack([z[labels.numpy() == k].mean(0) for k in range(4)])
        assert np.allclose(defended.log_probs(out).numpy(), _reweighted_by_hand(z, c), atol=1e-10)
        assert defended.defense.describe()["on_logits"] == 1.0


def test_logit_reweighting_rejects_a_bad_weight():
    with pytest.raises(ConfigError, match="w must be"):
        DEFENSES["logit_reweighting"](w=2)


# ---------------------------------------------------------------- post-processing
def test_top_k_zero_and_spread_on_a_hand_example():
    lp = _lp([[0.1, 0.6, 0.3, 0.0 + 1e-9], [0.26, 0.24, 0.2, 0.3]])
    p = DEFENSES["top_k"](k=2).release(lp).exp()
    assert torch.allclose(p[0], torch.tensor([0, 0.6, 0.3, 0], dtype=torch.float64), atol=1e-9)
    assert torch.allclose(p[1], torch.tensor([0.26, 0, 0, 0.3], dtype=torch.float64), atol=1e-9)
    q = DEFENSES["top_k"](k=1, rest="spread").release(lp).exp()
    assert torch.allclose(q[0], torch.tensor([0.4 / 3, 0.6, 0.4 / 3, 0.4 / 3], dtype=torch.float64), atol=1e-9)
    assert (q.argmax(1) == lp.argmax(1)).all()


def test_rounding_on_a_hand_example_keeps_the_label_on_ties():
    lp = _lp([[0.123, 0.456, 0.421], [0.52, 0.48, 0.0 + 1e-12]])
    p = DEFENSES["rounding"](d=1).release(lp).exp()
    assert torch.allclose(p[0], torch.tensor([0.1, 0.5, 0.4], dtype=torch.float64), atol=1e-9)
    assert torch.allclose(p[1], torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64), atol=1e-9)
    assert (p.argmax(1) == lp.argmax(1)).all()  # the tie 0.5 / 0.5 keeps class 0
    lp2 = _lp([[0.48, 0.52, 1e-12]])  # the tie with the predicted class second
    assert DEFENSES["rounding"](d=1).release(lp2).argmax(1).item() == 1


def test_label_only_is_the_one_hot_of_the_prediction():
    lp = _lp([[0.2, 0.5, 0.3], [0.7, 0.1, 0.2]])
    p = DEFENSES["label_only"]().release(lp).exp()
    assert torch.allclose(p, torch.tensor([[0, 1, 0], [1, 0, 0]], dtype=torch.float64), atol=1e-12)


# ---------------------------------------------------------------- MemGuard
def _confidences(n: int, k: int, sharp: float, g: torch.Generator) -> torch.Tensor:
    z = torch.randn(n, k, generator=g, dtype=torch.float64)
    z[:, 0] += sharp * torch.rand(n, generator=g, dtype=torch.float64)
    return torch.log_softmax(z, 1)


@pytest.fixture(scope="module")
def guard():
    g = torch.Generator().manual_seed(0)
    members, held_out = _confidences(400, 5, 6.0, g), _confidences(400, 5, 2.0, g)
    queries = torch.cat([_confidences(200, 5, 6.0, g), _confidences(200, 5, 2.0, g)])
    ctx = DefenseContext(members, torch.zeros(400, dtype=torch.long), held_out, torch.zeros(400, dtype=torch.long), 3)
    return ctx, queries


def test_memguard_keeps_labels_and_moves_the_defender_output_to_one_half(guard):
    ctx, queries = guard
    mg = MemGuard(budget=10.0, steps=300, release_rule="budget").fit(ctx)
    before = mg.defender_scores(queries)
    assert (before - 0.5).abs().mean() > 0.1  # the defender separates the two groups at all
    s, noisy, released = mg.noisy(queries)
    out = mg.release(queries)
    assert (out.argmax(1) == queries.argmax(1)).all()
    # budget 10 > any L1 distance (<= 2): every phase-I success is released, the rest unchanged
    assert released.float().mean() > 0.5 and mg.stats["released_noisy"] == mg.stats["phase1_success"]
    assert torch.equal(out[~released], queries[~released])
    after = mg.defender_scores(out)
    moved = released
    assert (after[moved] - 0.5).abs().max() < 0.1  # one normalised step of 0.1 past 0.5 at most
    assert (after[moved] - 0.5).abs().mean() < 0.05 < (before[moved] - 0.5).abs().mean()
    # the decision crossed 0.5 for every released noisy vector
    assert ((after[moved] >= 0.5) != (before[moved] >= 0.5)).all()


def test_memguard_authors_release_rule_releases_only_noise_that_moves_towards_one_half(guard):
    """The authors' phase II (evaluate_nn_attack.py): p = 0 when the noisy vector is not closer to
    the defender's 0.5 than the original; with a budget above every L1 distance, exactly the
    phase-I successes that are closer are released."""
    ctx, queries = guard
    mg = MemGuard(budget=10.0).fit(ctx)
    assert mg.release_rule == "authors"
    before = mg.defender_scores(queries)
    s, noisy, released = mg.noisy(queries)
    after = mg.defender_scores(noisy.log())
    closer = (after - 0.5).abs() < (before - 0.5).abs()
    assert torch.equal(released, closer & (noisy != s).any(1))
    assert mg.stats["released_noisy"] == int(released.sum()) <= mg.stats["phase1_success"]


def test_memguard_release_probability_and_budget(guard):
    ctx, queries = guard
    budget = 0.05
    mg = MemGuard(budget=budget, steps=300, release_rule="budget").fit(ctx)
    s, noisy, released = mg.noisy(queries)
    l1 = (noisy - s).abs().sum(1)
    ok = l1 > 0
    assert ok.sum() > 100
    prob = (budget / l1[ok]).clamp(max=1)
    n = int(ok.sum())
    # the release fraction follows p = min(budget / ||s' - s||_1, 1) (binomial 4-sigma band)
    sd = math.sqrt(float((prob * (1 - prob)).sum())) / n
    assert abs(released[ok].float().mean() - prob.mean()) < 4 * sd + 1e-9
    # the expected L1 distortion of the release is at most the budget
    assert float(torch.where(released, l1, torch.zeros_like(l1)).mean()) <= budget * 1.2
    assert mg.stats["queries"] == len(queries)
    # seeded: the same queries get the same release
    assert torch.equal(mg.release(queries), mg.release(queries))
    with pytest.raises(ConfigError, match="budget"):
        MemGuard(budget=-1)


# ---------------------------------------------------------------- attacker views
def test_unaware_shadow_gets_no_defense_and_aware_the_same():
    s = Setting("mg", defense=Component("memguard", {"budget": 0.1}), attacker="unaware")
    assert s.for_shadow().defense.name == "none" and s.for_shadow().calibration == s.calibration
    aware = Setting("mg", defense=Component("memguard"), attacker="aware")
    assert aware.for_shadow() is aware
    assert Setting("x", defense=Component("top_k"), attacker="uncalibrated").for_shadow().defense.name == "none"


# ---------------------------------------------------------------- a tiny study
SETTINGS = {"baseline": {},
            "lr": {"defense": {"name": "logit_reweighting", "keep_label": True}},
            "lr_published": {"defense": "logit_reweighting"},
            "mg": {"defense": {"name": "memguard", "budget": 0.5, "steps": 50}},
            "top1": {"defense": {"name": "top_k", "k": 1}},
            "round": {"defense": {"name": "rounding", "d": 1}},
            "label": {"defense": "label_only"},
            "mg_unaware": {"defense": {"name": "memguard", "budget": 0.5, "steps": 50}, "attacker": "unaware"}}


def test_release_defenses_retrain_nothing_keep_accuracy_and_label_only_attacks(tiny_raw, tmp_path):
    from overconf.report.tables import Table
    from overconf.runner.study import Study
    from overconf.runner.validation import config_from_dict
    import overconf.training.jobs as jobs

    raw = copy.deepcopy(tiny_raw)
    raw["sources"] = ["test"]
    raw["attacks"] = ["max_score", "loss", {"name": "label_only_noise", "queries": 4}]
    Study(config_from_dict(raw), tmp_path / "base").run(report=False)
    raw["settings"] = SETTINGS
    trained, real = [], jobs.train_classifier
    jobs.train_classifier = lambda *a, **kw: trained.append(1) or real(*a, **kw)
    try:
        result = Study(config_from_dict(raw), tmp_path / "def").run(report=False)
    finally:
        jobs.train_classifier = real
    assert trained == []  # no model trained for a release-time defense
    t = Table(result.rows)
    m = "small_resnet"
    for name in set(SETTINGS) - {"lr_published"}:  # the published reweighting may change labels
        for metric in ("accuracy", "shadow_accuracy"):
            for split in ("train", "test"):
                assert t.get(m, name, "-", split, metric) == t.get(m, "baseline", "-", split, metric), (name, metric)
        # label-only attacks query the model: a label-preserving defense changes nothing
        assert t.get(m, name, "label_only_noise", "test", "auroc") == t.get(m, "baseline", "label_only_noise",
                                                                          "test", "auroc")
    assert t.get(m, "top1", "-", "test", "mean_max_score") == [pytest.approx(t.get(m, "baseline", "-", "test",
                                                                                 "mean_max_score")[0])]
    assert t.get(m, "top1", "loss", "test", "auroc") != t.get(m, "baseline", "loss", "test", "auroc")
    assert t.get(m, "label", "-", "test", "mean_max_score") == [pytest.approx(1.0)]
    lr = {s: {r["metric"]: r["value"] for r in result.rows if r["setting"] == s and r["source"] == "defense"}
          for s in ("lr", "lr_published")}
    assert lr["lr"]["on_logits"] == lr["lr_published"]["on_logits"] == 1.0  # uncalibrated: the raw logits
    assert 0 <= lr["lr"]["label_swapped_fraction"] == lr["lr_published"]["label_changed_fraction"] <= 1
    assert "label_swapped_fraction" not in lr["lr_published"]
    rows = {r["metric"]: r["value"] for r in result.rows if r["setting"] == "mg" and r["source"] == "defense"}
    assert {"mean_l1_distortion", "released_noisy_fraction", "shadow_mean_l1_distortion"} <= set(rows)
    assert 0 < rows["released_noisy_fraction"] <= 1
    unaware = {r["metric"] for r in result.rows if r["setting"] == "mg_unaware" and r["source"] == "defense"}
    assert unaware and not any(k.startswith("shadow_") for k in unaware)
    # the unaware attacker's shadow is released undefended: its fitted thresholds equal the baseline's
    cells = {c.setting: c for c in result.cells}
    assert cells["mg_unaware"].thresholds == cells["baseline"].thresholds
    assert cells["mg"].thresholds != cells["baseline"].thresholds
    row = next(r for r in result.rows if r["setting"] == "mg")
    assert row["defense"] == "memguard" and row["defense.budget"] == 0.5
    assert next(r for r in result.rows if r["setting"] == "baseline")["defense"] == "none"


def test_defense_config_errors_and_round_trip(tiny_raw):
    from overconf.config import parse_config
    from overconf.runner.validation import config_from_dict

    raw = copy.deepcopy(tiny_raw)
    raw["settings"] = {"x": {"defense": "memgaurd"}}
    with pytest.raises(ConfigError, match=r"unknown defense 'memgaurd'.*allowed: .*memguard"):
        parse_config(copy.deepcopy(raw))
    raw["settings"] = {"x": {"defense": {"name": "top_k", "k": 0}}}
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        config_from_dict(copy.deepcopy(raw))
    raw["settings"] = {"x": {"defense": "memguard"}}
    raw["data"]["splits"]["calibration"] = 0
    with pytest.raises(ConfigError, match="data.splits.calibration > 0"):
        config_from_dict(copy.deepcopy(raw))
    raw["data"]["splits"]["calibration"] = 200
    raw["settings"] = {"base": {}, "x": {"defense": {"name": "memguard", "budget": 0.3}, "attacker": "unaware"}}
    cfg = config_from_dict(copy.deepcopy(raw))
    d = cfg.to_dict()
    assert "defense" not in d["settings"]["base"]  # existing configs resolve as before
    assert d["settings"]["x"]["defense"] == {"name": "memguard", "budget": 0.3}
    again = config_from_dict(d)
    assert again.settings[1].defense == Component("memguard", {"budget": 0.3})
    assert again.settings[1].attacker == "unaware"
