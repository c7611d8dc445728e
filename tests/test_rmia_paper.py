"""RMIA as its authors configure it (``rmia_paper``; overconf/attacks/rmia_signals.py): the
soft-margin Taylor softmax against a direct loop over its formula, the trimmed mean against
scipy.stats.trim_mean, the whole score against a loop over the authors' definition, plain RMIA
unchanged, config errors, and an end-to-end tiny study."""
import copy
import math

import numpy as np
import pytest
import torch
from scipy.stats import trim_mean

from overconf.attacks import ATTACKS, Signals
from overconf.attacks.rmia_signals import soft_margin_probability, taylor_exp, trimmed_mean
from overconf.core.errors import ConfigError
from overconf.reference import balanced_keep
from overconf.runner.validation import config_from_dict


def taylor_softmax_loop(logits, y, temperature, m, n):
    """The authors' signals.py (``convert_signals(metric="taylor-soft-margin")``), literally, on the
    centred logits of one row: e_n(v) = sum_{i<n} v^i / i!, v = z / T,
    p = e_n(v_y - m) / (sum_{k != y} e_n(v_k) + e_n(v_y - m)); n 0: e = exp."""
    mean = sum(logits) / len(logits)
    v = [(z - mean) / temperature for z in logits]

    def e(t):
        return math.exp(t) if n == 0 else sum(t ** i / math.factorial(i) for i in range(n))

    others = sum(e(v[k]) for k in range(len(v)) if k != y)
    return e(v[y] - m) / (others + e(v[y] - m))


@pytest.mark.parametrize("temperature,m,n", [(2.0, 0.6, 4), (1.0, 0.0, 3), (0.5, 1.0, 6), (2.0, 0.6, 0),
                                             (1.0, 0.0, 0)])
def test_soft_margin_taylor_softmax_equals_a_direct_loop(temperature, m, n):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(50, 10, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (50,), generator=g)
    got = soft_margin_probability(z, y, temperature, m, n)
    expected = [taylor_softmax_loop(z[i].tolist(), int(y[i]), temperature, m, n) for i in range(50)]
    assert got.tolist() == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert len(set(expected)) == 50
    # logits and their log-softmax (what a model that releases probabilities gives) agree
    assert torch.allclose(soft_margin_probability(z.log_softmax(1), y, temperature, m, n), got, rtol=1e-9, atol=1e-12)
    # [N, K, C] inputs (reference models) row by row
    stacked = soft_margin_probability(z.view(10, 5, 10), y.view(10, 5), temperature, m, n)
    assert torch.allclose(stacked.reshape(-1), got, rtol=1e-12, atol=1e-14)


def test_taylor_terms_and_the_plain_softmax_limit():
    v = torch.tensor([-2.0, -1.0, 0.0, 0.5, 3.0], dtype=torch.float64)
    assert torch.allclose(taylor_exp(v, 4), 1 + v + v ** 2 / 2 + v ** 3 / 6)  # n = 4 terms: a cubic
    assert float(taylor_exp(torch.tensor(-2.0, dtype=torch.float64), 4)) < 0  # negative below about -1.596
    assert torch.allclose(taylor_exp(v, 30), v.exp(), rtol=1e-9)
    z = torch.randn(20, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 5
    y = torch.arange(20) % 10
    plain = z.div(2).softmax(1).gather(1, y[:, None]).squeeze(1)
    assert torch.allclose(soft_margin_probability(z, y, 2.0, 0.0, 0), plain, rtol=1e-12)


@pytest.mark.parametrize("proportion", [0.0, 0.1, 0.2, 0.25, 0.4])
def test_trimmed_mean_equals_scipy_trim_mean(proportion):
    g = torch.Generator().manual_seed(2)
    for k in (1, 2, 5, 7, 10, 16):
        values = torch.randn(40, k, generator=g, dtype=torch.float64)
        values[:, 0] *= 50  # outliers the trimming removes
        got = trimmed_mean(values, proportion)
        assert got.tolist() == pytest.approx(trim_mean(values.numpy(), proportion, axis=1).tolist(), rel=1e-12)
        include = torch.rand(40, k, generator=g) > 0.4
        include[0] = True
        got = trimmed_mean(values, proportion, include)
        for i in range(40):
            row = values[i][include[i]].numpy()
            expected = trim_mean(row, proportion) if len(row) else 0.0
            assert float(got[i]) == pytest.approx(float(expected), rel=1e-12, abs=1e-15), (k, i)


def rmia_paper_loop(s, online, a, gamma, temperature, m, n, trim):
    """Score(x) = |{z : LR_x / LR_z > gamma}| / |Z|, LR = Pr(y|x; target) / Pr(y|x), Pr(y|x; theta)
    the soft-margin Taylor softmax, Pr(y|x) = scipy's trim_mean over the reference models (online)
    or ((1 + a) / 2) trim_mean over the OUT models + (1 - a) / 2 (offline), as in the authors'
    aggregate_signals (main.py); labelled inputs only."""
    def pr(logits, y):
        return taylor_softmax_loop(logits, y, temperature, m, n)

    def pr_ref(rows, keep_row, y):
        vals = [pr(rows[j], y) for j in range(len(rows)) if online or not keep_row[j]]
        mean = float(trim_mean(np.array(vals), trim))
        return mean if online else (1 + a) / 2 * mean + (1 - a) / 2

    e = s.extra
    zt, zl, zr = e["population_log_probs"].tolist(), e["population_labels"].tolist(), \
        e["population_reference_logits"].tolist()
    lr_z = [pr(zt[j], zl[j]) / pr_ref(zr[j], [False] * len(zr[j]), zl[j]) for j in range(len(zl))]
    xt, xr, keep = s.log_probs.tolist(), e["reference_logits"].tolist(), e["reference_keep"].tolist()
    return [sum(1 for v in lr_z if (pr(xt[i], y) / pr_ref(xr[i], keep[i], y)) / v > gamma) / len(lr_z)
            for i, y in enumerate(s.labels.tolist())]


def hand_made(n=40, k=10, c=5, z=30, seed=3) -> Signals:
    g = torch.Generator().manual_seed(seed)
    return Signals((torch.randn(n, c, generator=g, dtype=torch.float64) * 2).log_softmax(1),
                   torch.randint(0, c, (n,), generator=g), {
                       "reference_logits": torch.randn(n, k, c, generator=g) * 2,
                       "reference_keep": balanced_keep(n, k, g),
                       "population_log_probs": (torch.randn(z, c, generator=g, dtype=torch.float64) * 2).log_softmax(1),
                       "population_labels": torch.randint(0, c, (z,), generator=g),
                       "population_reference_logits": torch.randn(z, k, c, generator=g) * 2})


@pytest.mark.parametrize("online", [True, False])
def test_rmia_paper_equals_a_loop_over_the_authors_definition(online):
    s = hand_made()
    attack = ATTACKS["rmia_paper"](online=online)
    got = attack.score(s)
    expected = rmia_paper_loop(s, online, 0.3, 2.0, 2.0, 0.6, 4, 0.2)
    assert got.tolist() == pytest.approx(expected, abs=1e-12)
    assert len(set(expected)) > 5
    assert bool(torch.isfinite(got).all())
    # the preset is rmia with the authors' options
    same = ATTACKS["rmia"](online=online, gamma=2.0, temperature=2.0, taylor_m=0.6, taylor_n=4, trim=0.2)
    assert torch.equal(same.score(s), got)
    assert attack.label == ("rmia_paper_online" if online else "rmia_paper_offline")
    assert same.label == ("rmia_online" if online else "rmia_offline") + "_T2_m0.6_taylor4_trim0.2"
    # each option changes the score (the fixture is sensitive to all of them)
    for change in ({"temperature": 1.0}, {"taylor_m": 0.0}, {"taylor_n": 0}, {"trim": 0.0}):
        assert not torch.equal(ATTACKS["rmia_paper"](online=online, **change).score(s), got), change


def test_plain_rmia_is_unchanged_by_the_new_options():
    s = hand_made(seed=4)
    for online in (True, False):
        plain = ATTACKS["rmia"](online=online)
        explicit = ATTACKS["rmia"](online=online, temperature=1.0, taylor_m=0.0, taylor_n=0, trim=0.0)
        assert plain.plain_signal and plain.label == explicit.label == ("rmia_online" if online else "rmia_offline")
        assert torch.equal(plain.score(s), explicit.score(s))
        # a plain softmax and mean: the softmax probability of the label, as before
        assert ATTACKS["rmia"](online=online, temperature=1.0).score(s).tolist() == pytest.approx(
            rmia_paper_loop(s, online, 0.3, 1.0, 1.0, 0.0, 0, 0.0), abs=1e-12)


def test_unlabelled_inputs_use_each_models_own_class_under_the_paper_signal():
    s = hand_made(seed=5)
    s.labels[:10] = -1
    got = ATTACKS["rmia_paper"]().score(s)
    assert bool(torch.isfinite(got).all()) and bool(((got >= 0) & (got <= 1)).all())
    # own_class: the target's row at its argmax, each reference model's at its own argmax
    lp = s.log_probs[:10]
    ref = s.extra["reference_logits"][:10].double()
    p_t = soft_margin_probability(lp, lp.argmax(1), 2.0, 0.6, 4)
    p_r = soft_margin_probability(ref, ref.argmax(-1), 2.0, 0.6, 4)
    lr = ATTACKS["rmia_paper"]().likelihood_ratio(lp, s.labels[:10], s.extra["reference_logits"][:10],
                                                   s.extra["reference_keep"][:10])
    assert torch.allclose(lr, p_t / trimmed_mean(p_r, 0.2), rtol=1e-12)


@pytest.mark.parametrize("params,match", [({"taylor_n": 1}, "taylor_n"), ({"taylor_n": -3}, "taylor_n"),
                                          ({"taylor_n": 2.5}, "taylor_n"),
                                          ({"trim": 0.5}, "trim"), ({"temperature": 0}, "temperature"),
                                          ({"temperature": "2"}, "temperature"), ({"taylor_m": math.inf}, "taylor_m")])
def test_bad_options_are_one_clear_config_error(tiny_raw, params, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(tiny_raw | {"attacks": [{"name": "rmia_paper", **params}], "reference": {"num_models": 4}})


def test_rmia_paper_runs_end_to_end_in_a_tiny_study(tmp_path):
    from overconf.runner.study import Study
    from tests.conftest import TINY, one_thread

    raw = copy.deepcopy(TINY) | {
        "models": [{"arch": "salem_cnn", "params": {"width": 4, "hidden": 16}}],
        "recipe": {"epochs": 2, "lr": 0.003, "batch_size": 64},
        "attacks": ["rmia", "rmia_paper", {"name": "rmia_paper", "online": False}],
        "reference": {"num_models": 4, "population": 100},
        "cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "runs")}
    cfg = config_from_dict(raw)
    assert [c.name for c in cfg.attacks] == ["rmia", "rmia_paper", "rmia_paper"]
    with one_thread():
        result = Study(cfg, tmp_path / "run").run(report=False)
    cell = result.cells[0]
    for label in ("rmia_online", "rmia_paper_online", "rmia_paper_offline"):
        scores = cell.scores[label]
        assert scores and all(bool(torch.isfinite(v).all()) for v in scores.values()), label
        for source in ("test", "digits", "scaled", "gaussian"):
            got = {r["metric"]: r["value"] for r in result.rows if r["attack"] == label and r["source"] == source}
            assert 0 <= got["auroc"] <= 1 and 0 <= got["fpr"] <= 1, (label, source)
        shadow = {r["metric"]: r["value"] for r in result.rows if r["attack"] == label and r["source"] == "shadow"}
        assert shadow["gamma"] == (1.0 if label == "rmia_online" else 2.0)
        assert ("trim" in shadow) == (label != "rmia_online")  # rows of the options only where set
    assert not torch.equal(cell.scores["rmia_online"]["members"], cell.scores["rmia_paper_online"]["members"])
