"""LiRA / RMIA options checked against direct implementations: the label-free statistic for
inputs without a task label (``unlabelled``), and LiRA's reference-code variants (``center``,
``variance: pooled``, ``ddof``, ``offline_test``) against Carlini et al.'s ``fig_fpr_tpr.py``."""
import math

import numpy as np
import pytest
import scipy.stats
import torch

from overconf.attacks import ATTACKS, Signals
from overconf.runner.validation import config_from_dict
from overconf.core.errors import ConfigError
from overconf.reference import balanced_keep

G = torch.Generator


# ----------------------------------------------------------------------------- hand-made logits

def hand_made(n=24, k=8, c=4, seed=0, queries=()):
    """Random logits of a target and K reference models (plus augmented queries); the first third
    of the points are unlabelled (label -1), the keep matrix is balanced."""
    g = G().manual_seed(seed)
    target = torch.randn(n, c, generator=g, dtype=torch.float64) * 2
    ref = torch.randn(n, k, c, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, c, (n,), generator=g)
    labels[: n // 3] = -1
    keep = balanced_keep(n, k, g)
    extra = {"reference_logits": ref, "reference_keep": keep}
    for q in queries:
        extra[f"logits:{q}"] = (torch.randn(n, c, generator=g, dtype=torch.float64) * 2).log_softmax(1)
        extra[f"reference_logits:{q}"] = torch.randn(n, k, c, generator=g, dtype=torch.float64) * 2
    return Signals(target.log_softmax(1), labels, extra)


def phi_loop(logits, cls):
    """phi_c = log p_c - log sum_{j != c} p_j, straight from the definition (plain floats)."""
    p = [math.exp(v) for v in logits]
    return math.log(p[cls] / sum(p)) - math.log(sum(p[j] for j in range(len(p)) if j != cls) / sum(p))


def argmax(row):
    return max(range(len(row)), key=lambda j: row[j])


def classes_loop(target_row, ref_rows, label, unlabelled):
    """(class of the target, class of each reference model) for one point."""
    if label >= 0:
        return label, [label] * len(ref_rows)
    if unlabelled == "target_class":
        return argmax(target_row), [argmax(target_row)] * len(ref_rows)
    return argmax(target_row), [argmax(r) for r in ref_rows]  # own_class


@pytest.mark.parametrize("unlabelled", ["own_class", "target_class"])
def test_lira_unlabelled_statistic_equals_a_direct_loop(unlabelled):
    s = hand_made()
    lira = ATTACKS["lira"](unlabelled=unlabelled)
    phi_t, phi_r, _ = lira.scaled_logits(s)
    z_t, z_r = s.log_probs.tolist(), s.extra["reference_logits"].tolist()
    for i, label in enumerate(s.labels.tolist()):
        ct, cr = classes_loop(z_t[i], z_r[i], label, unlabelled)
        assert float(phi_t[i, 0]) == pytest.approx(phi_loop(z_t[i], ct), abs=1e-10)
        for j in range(len(cr)):
            assert float(phi_r[i, 0, j]) == pytest.approx(phi_loop(z_r[i][j], cr[j]), abs=1e-10)
            if label < 0 and unlabelled == "own_class":  # = the max over classes of phi
                best = max(phi_loop(z_r[i][j], c) for c in range(len(z_r[i][j])))
                assert float(phi_r[i, 0, j]) == pytest.approx(best, abs=1e-10)
    # the two options differ on unlabelled points only, and there for some reference models
    other = ATTACKS["lira"](unlabelled="own_class" if unlabelled == "target_class" else "target_class")
    _, phi_r2, _ = other.scaled_logits(s)
    unl = s.labels < 0
    assert torch.equal(phi_r[~unl], phi_r2[~unl]) and not torch.equal(phi_r[unl], phi_r2[unl])


@pytest.mark.parametrize("unlabelled", ["own_class", "target_class"])
def test_lira_online_score_equals_a_direct_loop(unlabelled):
    """Default online LiRA (mean, unbiased per-point variance) on the hand-made logits, scored by
    a loop over points and models: log N(phi_t; mu_in, s_in^2) - log N(phi_t; mu_out, s_out^2)."""
    s = hand_made(n=30)
    fitted = ATTACKS["lira"](unlabelled=unlabelled).fit(s.subset(slice(0, 15)), s.subset(slice(15, 30)),
                                                          generator=G())
    got = fitted.score(s)
    z_t, z_r, keep = s.log_probs.tolist(), s.extra["reference_logits"].tolist(), s.extra["reference_keep"].tolist()
    for i, label in enumerate(s.labels.tolist()):
        ct, cr = classes_loop(z_t[i], z_r[i], label, unlabelled)
        phi = phi_loop(z_t[i], ct)
        side = {True: [], False: []}
        for j in range(len(cr)):
            side[keep[i][j]].append(phi_loop(z_r[i][j], cr[j]))
        ll = {}
        for is_in, v in side.items():
            mu = sum(v) / len(v)
            var = sum((x - mu) ** 2 for x in v) / (len(v) - 1)
            ll[is_in] = -0.5 * ((phi - mu) ** 2 / var + math.log(2 * math.pi * var))
        assert float(got[i]) == pytest.approx(ll[True] - ll[False], rel=1e-9, abs=1e-9)


def rmia_score_loop(s, online, a, gamma, unlabelled):
    """RMIA with p(x | theta) at the classes of :func:`classes_loop` (population: labelled)."""
    def probs(row):
        e = [math.exp(v) for v in row]
        return [v / sum(e) for v in e]

    def pr_ref(ref_rows, keep_row, classes):
        vals = [probs(ref_rows[j])[classes[j]] for j in range(len(ref_rows)) if online or not keep_row[j]]
        mean = sum(vals) / len(vals)
        return mean if online else (1 + a) / 2 * mean + (1 - a) / 2

    e = s.extra
    zt, zl, zr = e["population_log_probs"].tolist(), e["population_labels"].tolist(), \
        e["population_reference_logits"].tolist()
    lr_z = [probs(zt[j])[zl[j]] / pr_ref(zr[j], [False] * len(zr[j]), [zl[j]] * len(zr[j])) for j in range(len(zl))]
    z_t, z_r, keep = s.log_probs.tolist(), e["reference_logits"].tolist(), e["reference_keep"].tolist()
    out = []
    for i, label in enumerate(s.labels.tolist()):
        ct, cr = classes_loop(z_t[i], z_r[i], label, unlabelled)
        lr_x = probs(z_t[i])[ct] / pr_ref(z_r[i], keep[i], cr)
        out.append(sum(1 for v in lr_z if lr_x / v > gamma) / len(lr_z))
    return out


@pytest.mark.parametrize("unlabelled", ["own_class", "target_class"])
@pytest.mark.parametrize("online", [True, False])
def test_rmia_unlabelled_statistic_equals_a_direct_loop(unlabelled, online):
    s = hand_made(n=30, seed=1)
    g = G().manual_seed(2)
    s.extra |= {"population_log_probs": (torch.randn(20, 4, generator=g, dtype=torch.float64) * 2).log_softmax(1),
                "population_labels": torch.randint(0, 4, (20,), generator=g),
                "population_reference_logits": torch.randn(20, 8, 4, generator=g, dtype=torch.float64) * 2}
    got = ATTACKS["rmia"](online=online, unlabelled=unlabelled).score(s)
    expected = rmia_score_loop(s, online, 0.3, 1.0, unlabelled)
    assert got.tolist() == pytest.approx(expected, abs=1e-12)
    assert len(set(expected)) > 5


def test_own_class_removes_the_target_class_advantage_on_unlabelled_inputs():
    """References that agree with each other but not with the target's argmax: at the target's
    class they give that class a low probability, so LR_x is large (a false member); at their own
    class the comparison is like for like."""
    n, k, c = 40, 8, 3
    g = G().manual_seed(0)
    target = torch.tensor([[3.0, 0.0, 0.0]], dtype=torch.float64).expand(n, c)  # predicts class 0
    ref = torch.tensor([0.0, 3.5, 0.0], dtype=torch.float64).expand(n, k, c) \
        + 0.1 * torch.randn(n, k, c, generator=g, dtype=torch.float64)  # predict class 1, surer
    pop = torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64).expand(30, c)
    s = Signals(target.log_softmax(1), torch.full((n,), -1), {
        "reference_logits": ref, "reference_keep": torch.zeros(n, k, dtype=torch.bool),
        "population_log_probs": pop.log_softmax(1), "population_labels": torch.zeros(30, dtype=torch.long),
        "population_reference_logits": pop[:, None, :].expand(30, k, c).clone()})
    old = ATTACKS["rmia"](unlabelled="target_class").score(s)
    new = ATTACKS["rmia"](unlabelled="own_class").score(s)
    assert bool((old == 1).all())  # every noise input beats the whole population
    assert bool((new == 0).all())  # the references are surer of their class than the target of its


def test_unlabelled_labels_and_config_errors(tiny_raw):
    assert ATTACKS["lira"]().label == "lira_online"
    assert ATTACKS["lira"](unlabelled="target_class").label == "lira_online_target_class"
    assert ATTACKS["rmia"](online=False, unlabelled="target_class").label == "rmia_offline_target_class"
    assert ATTACKS["lira"](online=False, center="median", variance="pooled", ddof=0,
                           offline_test="two_sided").label == "lira_offline_pooled_median_ddof0_two_sided"
    for attack, bad, match in (("lira", {"unlabelled": "label"}, "unlabelled"),
                               ("rmia", {"unlabelled": "max"}, "unlabelled"),
                               ("lira", {"center": "mode"}, "center"), ("lira", {"variance": "pool"}, "variance"),
                               ("lira", {"ddof": 2}, "ddof"), ("lira", {"offline_test": "both"}, "offline_test")):
        raw = dict(tiny_raw, attacks=[{"name": attack, **bad}])
        with pytest.raises(ConfigError, match=match):
            config_from_dict(raw)


def test_attacks_config_shows_both_labelling_choices():
    from pathlib import Path

    from overconf.runner.validation import load_config

    cfg = load_config(Path(__file__).parents[1] / "experiments" / "attacks_fashion_mnist.yaml")
    labels = {ATTACKS[c.name](**c.params).label: c.params for c in cfg.attacks}
    for name in ("lira", "rmia"):
        chosen = {ATTACKS[name](**p).unlabelled for lab, p in labels.items() if lab.startswith(name)}
        assert chosen == {"own_class", "target_class"}, name


# ----------------------------------------------------------------------------- Carlini et al.'s code
# fig_fpr_tpr.py, written out again: keep [M, N] (models x examples), scores [M, N, A], one target
# model's scores check [N, A]; returned as "higher = member" (their sweep ranks by -prediction).

def reference_phi(logits, labels):
    """score.py of the LiRA code: predictions = softmax; y_true = p[label]; p[label] = 0;
    y_wrong = sum(p); logit = log(y_true + 1e-45) - log(y_wrong + 1e-45). logits [..., N, C]."""
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    p = p / p.sum(-1, keepdims=True)
    idx = np.broadcast_to(np.asarray(labels)[:, None], p.shape[:-1] + (1,))
    y_true = np.take_along_axis(p, idx, -1)[..., 0]
    np.put_along_axis(p, idx, 0.0, -1)
    y_wrong = p.sum(-1)
    return np.log(y_true + 1e-45) - np.log(y_wrong + 1e-45)


def generate_ours(keep, scores, check_scores, fix_variance=False):
    dat_in, dat_out = [], []
    for j in range(scores.shape[1]):
        dat_in.append(scores[keep[:, j], j, :])
        dat_out.append(scores[~keep[:, j], j, :])
    in_size, out_size = min(map(len, dat_in)), min(map(len, dat_out))
    dat_in = np.array([x[:in_size] for x in dat_in])
    dat_out = np.array([x[:out_size] for x in dat_out])
    mean_in, mean_out = np.median(dat_in, 1), np.median(dat_out, 1)
    if fix_variance:
        std_in = np.std(dat_in)
        std_out = np.std(dat_in)
    else:
        std_in, std_out = np.std(dat_in, 1), np.std(dat_out, 1)
    pr_in = -scipy.stats.norm.logpdf(check_scores, mean_in, std_in + 1e-30)
    pr_out = -scipy.stats.norm.logpdf(check_scores, mean_out, std_out + 1e-30)
    return -(pr_in - pr_out).mean(1)


def generate_ours_offline(keep, scores, check_scores, fix_variance=False):
    dat_out = [scores[~keep[:, j], j, :] for j in range(scores.shape[1])]
    out_size = min(map(len, dat_out))
    dat_out = np.array([x[:out_size] for x in dat_out])
    mean_out = np.median(dat_out, 1)
    std_out = np.std(dat_out) if fix_variance else np.std(dat_out, 1)
    score = scipy.stats.norm.logpdf(check_scores, mean_out, std_out + 1e-30)
    return -score.mean(1)


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("fix_variance", [False, True])
@pytest.mark.parametrize("augment", [[], ["flip"]])
def test_lira_reference_settings_equal_carlini_et_al(online, fix_variance, augment):
    n, k, c = 60, 16, 5
    g = G().manual_seed(4)
    base = torch.randn(n, 1, c, generator=g, dtype=torch.float64) * 2  # per-point structure
    keep = balanced_keep(n, k, g)
    labels = torch.randint(0, c, (n,), generator=g)
    boost = torch.nn.functional.one_hot(labels, c).double()[:, None, :] * keep[..., None] * 1.5  # IN: higher p_y
    queries = [""] + [f":{q}" for q in augment]
    ref = {q: base + boost + torch.randn(n, k, c, generator=g, dtype=torch.float64) for q in queries}
    target = {q: (base[:, 0] + 0.7 * torch.nn.functional.one_hot(labels, c)
                  + torch.randn(n, c, generator=g, dtype=torch.float64)) for q in queries}
    extra = {"reference_keep": keep, **{f"reference_logits{q}": ref[q] for q in queries},
             **{f"logits{q}": target[q].log_softmax(1) for q in queries if q}}
    s = Signals(target[""].log_softmax(1), labels, extra)
    params = dict(online=online, center="median", variance="pooled" if fix_variance else "per_example", ddof=0,
                  offline_test="two_sided", augment=augment)
    fitted = ATTACKS["lira"](**params).fit(s.subset(slice(0, n // 2)), s.subset(slice(n // 2, n)), generator=G())
    got = fitted.score(s).numpy()
    # their layout: models first; scores [M, N, A]; the target's scores [N, A]
    scores = np.stack([reference_phi(ref[q].numpy().transpose(1, 0, 2), labels.numpy()) for q in queries], -1)
    check = np.stack([reference_phi(target[q].numpy(), labels.numpy()) for q in queries], -1)
    fn = generate_ours if online else generate_ours_offline
    expected = fn(keep.numpy().T, scores, check, fix_variance=fix_variance)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert len(np.unique(np.round(expected, 6))) == n  # not degenerate
    # and overconf's defaults are a different statistic on the same data
    default = ATTACKS["lira"](online=online, augment=augment).fit(s.subset(slice(0, n // 2)),
                                                                    s.subset(slice(n // 2, n)), generator=G())
    assert not np.allclose(default.score(s).numpy(), expected)


def test_median_of_an_even_count_is_the_mean_of_the_two_middle_values():
    from overconf.attacks.lira import masked_median

    v = torch.tensor([[[5.0, 1.0, 4.0, 2.0, 100.0]]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True, True, False]])
    assert float(masked_median(v, mask)) == pytest.approx(3.0)  # median of 1, 2, 4, 5
    mask = torch.tensor([[True, True, True, False, True]])
    assert float(masked_median(v, mask)) == pytest.approx(4.5)  # median of 1, 4, 5, 100
    assert float(masked_median(v, torch.tensor([[True, False, True, False, True]]))) == 5.0


def test_summary_names_the_labelling_choice_and_the_interval_method(tiny_raw):
    from overconf.report.summary import summary_markdown

    raw = dict(tiny_raw, attacks=["max_score", "lira", {"name": "rmia", "unlabelled": "target_class"}])
    cfg = config_from_dict(raw)
    rows = [{"model": "m", "seed": 0, "setting": "baseline", "attack": a, "source": src, "metric": "fpr", "value": 0.5}
            for a in ("max_score", "lira_online", "rmia_online_target_class") for src in ("test", "digits")]
    text = summary_markdown(rows, cfg)
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].endswith("| unlabelled |")
    assert table[1].startswith("| max_score |") and table[1].endswith("| – |")
    assert table[2].startswith("| lira_online |") and table[2].endswith("| own_class |")
    assert table[3].endswith("| target_class |")
    assert "Clopper-Pearson" in text and "FPR <= x" in text
