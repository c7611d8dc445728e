"""The single-model attack suite: stable scores, known answers, white-box probes, label-only
queries, the extended metrics, and every attack on every source of a tiny study."""
import copy
import math

import mpmath
import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, roc_curve
from torch import nn

from overconf.signals.whitebox import local_variation, minimal_adversarial_distance
from overconf.attacks import ATTACKS, Signals
from overconf.attacks.scores import log_complement, modified_entropy, scaled_logit
from overconf.data.augment import flip_shift_views, shift
from overconf.runner.validation import config_from_dict
from overconf.core.errors import ConfigError
from overconf.metrics import membership_metrics
from overconf.metrics.membership import bootstrap_tpr_at_fpr, roc, tpr_at_fpr
from overconf.models import Classifier
from overconf.signals.producers import SIGNALS, SignalContext, SignalRequest

G = torch.Generator


# ------------------------------------------------------------------------------ stable scores
def extreme_logits(n=400, k=10, seed=0):
    g = G().manual_seed(seed)
    scale = 10 ** torch.empty(n, 1, dtype=torch.float64).uniform_(-3, 4, generator=g)  # up to 1e4
    z = torch.randn(n, k, generator=g, dtype=torch.float64) * scale
    y = torch.randint(k, (n,), generator=g)
    return z, y


def test_scaled_logit_is_exact_at_extreme_logits():
    z, y = extreme_logits()
    phi = scaled_logit(torch.log_softmax(z, 1), y)
    # float64 reference straight from the logits: phi = z_y - logsumexp_{k != y} z_k
    ref = z.gather(1, y[:, None]).squeeze(1) - torch.logsumexp(z.scatter(1, y[:, None], -math.inf), 1)
    assert torch.isfinite(phi).all()
    assert torch.allclose(phi, ref, rtol=1e-12, atol=1e-9 * float(z.abs().max()))
    naive = torch.log(torch.softmax(z, 1).gather(1, y[:, None]).squeeze(1)) - torch.log1p(
        -torch.softmax(z, 1).gather(1, y[:, None]).squeeze(1))
    assert not torch.isfinite(naive).all()  # what the stable form avoids


def test_log_complement_and_modified_entropy_match_arbitrary_precision():
    mpmath.mp.dps = 50
    z, y = extreme_logits(n=60, k=5, seed=1)
    z[0] = torch.tensor([60.0, 0.0, -3.0, 1.0, 2.0], dtype=torch.float64)  # 1 - p_0 ~ 1e-26
    y[0] = 0
    lp = torch.log_softmax(z, 1)
    lc, mentr = log_complement(lp), modified_entropy(lp, y)
    for i in range(len(z)):
        e = [mpmath.exp(mpmath.mpf(float(v))) for v in z[i]]
        p = [v / sum(e) for v in e]
        comp = [sum(e[j] for j in range(5) if j != k) / sum(e) for k in range(5)]  # 1 - p_k, no cancellation
        log_comp = [mpmath.log(comp[k]) if p[k] > 0.5 else mpmath.log1p(-p[k]) for k in range(5)]
        for k in range(5):
            assert float(lc[i, k]) == pytest.approx(float(log_comp[k]), rel=1e-9, abs=1e-300)
        c = int(y[i])
        log_pc = mpmath.log1p(-comp[c]) if p[c] > 0.5 else mpmath.log(p[c])
        ref = -comp[c] * log_pc - sum(p[k] * log_comp[k] for k in range(5) if k != c)
        assert float(mentr[i]) == pytest.approx(float(ref), rel=1e-8, abs=1e-300)


def signals_from_logits(z, y):
    return Signals(torch.log_softmax(z.double(), 1), y)


@pytest.mark.parametrize("name", ["loss", "true_class_confidence", "modified_entropy", "scaled_logit"])
def test_threshold_attacks_order_members_first_and_stay_finite(name):
    z, y = extreme_logits(n=300, seed=2)
    s = signals_from_logits(z, y)
    attack = ATTACKS[name]()
    score = attack.score(s)
    assert score.dtype == torch.float64 and torch.isfinite(score).all()
    # raising the true-class logit makes every one of these scores more "member"
    z2 = z.clone()
    z2.scatter_add_(1, y[:, None], torch.ones(len(z), 1, dtype=torch.float64))
    assert bool((attack.score(signals_from_logits(z2, y)) >= score).all())


# ------------------------------------------------------------------------------ known answers
def signals_with_true_class_prob(p_y: torch.Tensor, k: int = 10) -> Signals:
    p = ((1 - p_y) / (k - 1)).unsqueeze(1).repeat(1, k)
    p[:, 0] = p_y
    return Signals(p.log(), torch.zeros(len(p), dtype=torch.long))


def test_loss_mean_train_loss_rule_uses_the_mean_shadow_member_loss():
    g = G().manual_seed(0)
    ce_in = torch.rand(1000, generator=g, dtype=torch.float64) * 0.2      # shadow members: CE in [0, 0.2]
    ce_out = 0.1 + torch.rand(1000, generator=g, dtype=torch.float64) * 2  # non-members
    attack = ATTACKS["loss"](rule="mean_train_loss")
    assert attack.label == "loss_mean_train_loss"
    fitted = attack.fit(signals_with_true_class_prob((-ce_in).exp()), signals_with_true_class_prob((-ce_out).exp()),
                        generator=G().manual_seed(0))
    assert fitted.info["loss_threshold"] == pytest.approx(float(ce_in.mean()), abs=1e-12)
    assert fitted.info["shadow_tpr"] == pytest.approx(float((ce_in <= ce_in.mean()).double().mean()))
    probe = torch.tensor([0.05, 0.099, 0.101, 0.5], dtype=torch.float64)
    mean = float(ce_in.mean())
    assert fitted.decide(signals_with_true_class_prob((-probe).exp())).tolist() == (probe <= mean).tolist()


def test_loss_roc_rule_on_gaussian_losses():
    # -CE ~ N(2, 1) for members and N(0, 1) for non-members (shifted to keep CE > 0): midpoint
    g = G().manual_seed(1)
    s_in, s_out = torch.randn(20000, generator=g, dtype=torch.float64) + 2, torch.randn(20000, generator=g,
                                                                                       dtype=torch.float64)
    to_p = lambda s: (s - 10).exp()  # log p_y = s - 10
    fitted = ATTACKS["loss"]().fit(signals_with_true_class_prob(to_p(s_in)), signals_with_true_class_prob(to_p(s_out)),
                                   generator=G().manual_seed(0))
    assert fitted.threshold + 10 == pytest.approx(1.0, abs=0.08)
    assert fitted.info["shadow_tpr"] == pytest.approx(0.841, abs=0.02)
    assert fitted.info["shadow_fpr"] == pytest.approx(0.159, abs=0.02)


def test_gap_attack_flags_correct_predictions_and_every_unlabelled_input():
    lp = torch.log_softmax(torch.tensor([[3.0, 0.0], [0.0, 3.0], [3.0, 0.0], [0.0, 3.0]], dtype=torch.float64), 1)
    members = Signals(lp, torch.tensor([0, 1, 0, 0]))   # 3 of 4 correct
    nonmembers = Signals(lp, torch.tensor([1, 0, 0, 0]))  # 1 of 4 correct
    fitted = ATTACKS["gap"]().fit(members, nonmembers, generator=G().manual_seed(0))
    assert fitted.info["shadow_tpr"] == 0.75 and fitted.info["shadow_fpr"] == 0.25
    assert fitted.decide(Signals(lp, torch.full((4,), -1))).all()


def test_agreement_attacks_read_the_fraction_of_agreeing_queries():
    attack = ATTACKS["label_only_augmentation"](flip=True, shift=1)
    assert attack.queries == 10
    key = attack.requires[0].key
    lp = torch.log_softmax(torch.tensor([[2.0, 0.0]] * 4, dtype=torch.float64), 1)
    preds_in = torch.tensor([[0] * 10, [0] * 9 + [1], [0] * 8 + [1] * 2, [0] * 10])
    preds_out = torch.tensor([[0] * 5 + [1] * 5, [0] * 2 + [1] * 8, [0] * 10, [1] * 10])
    members = Signals(lp, torch.zeros(4, dtype=torch.long), {key: preds_in})
    nonmembers = Signals(lp, torch.zeros(4, dtype=torch.long), {key: preds_out})
    assert attack.score(members).tolist() == [1.0, 0.9, 0.8, 1.0]
    fitted = attack.fit(members, nonmembers, generator=G().manual_seed(0))
    assert fitted.info["shadow_tpr"] - fitted.info["shadow_fpr"] == pytest.approx(0.75)
    noise = ATTACKS["label_only_noise"](sigma=0.25, queries=8)
    assert noise.requires == (SignalRequest.of("noisy_predictions", sigma=0.25, queries=8, seed=0),)


def test_ml_leaks_variants_are_distinct_and_listable_in_a_config(tiny_raw):
    variants = [{"name": "salem", "k": k, "with_label": w} for k in (3, 10) for w in (False, True)]
    labels = [ATTACKS["salem"](**{k: v for k, v in c.items() if k != "name"}).label for c in variants]
    assert labels == ["salem_top3", "salem_top3_label", "salem_top10", "salem_top10_label"]
    tiny_raw["attacks"] = variants
    config_from_dict(tiny_raw)
    g = G().manual_seed(0)
    for c in variants:
        attack = ATTACKS["salem"](**{k: v for k, v in c.items() if k != "name"}, epochs=2)
        members = Signals(torch.log_softmax(torch.randn(64, 10, generator=g, dtype=torch.float64) * 3, 1),
                          torch.randint(10, (64,), generator=g))
        nonmembers = Signals(members.log_probs.flip(0), torch.full((64,), -1))
        fitted = attack.fit(members, nonmembers, generator=G().manual_seed(1))
        assert fitted.score(nonmembers).shape == (64,)


def test_attack_parameters_are_checked(tiny_raw):
    with pytest.raises(ConfigError, match="rule 'mean_train_loss' is not allowed"):
        ATTACKS["max_score"](rule="mean_train_loss")
    with pytest.raises(ConfigError, match="norm 'l1'"):
        ATTACKS["adversarial_distance"](norm="l1")
    with pytest.raises(ConfigError, match="sigma > 0"):
        ATTACKS["label_only_noise"](sigma=0)
    tiny_raw["attacks"] = ["loss", "loss"]
    with pytest.raises(ConfigError, match="duplicates"):
        config_from_dict(tiny_raw)
    tiny_raw["attacks"] = ["loss", {"name": "loss", "rule": "mean_train_loss"}]
    config_from_dict(tiny_raw)
    tiny_raw["report"] = {"roc_sources": ["svhn"]}
    with pytest.raises(ConfigError, match="roc_sources names 'svhn'"):
        config_from_dict(tiny_raw)


# ------------------------------------------------------------------------------ white-box probes
class LinearBinary(Classifier):
    """z_0 - z_1 = w . x + b: the decision boundary is the hyperplane w . x + b = 0."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__(w.numel(), 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.stack([w / 2, -w / 2]))
            self.head.bias.copy_(torch.tensor([b / 2, -b / 2]))

    def features(self, x):
        return x.flatten(1)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_adversarial_distance_of_a_linear_model_is_the_margin_over_the_weight_norm(norm):
    g = G().manual_seed(0)
    w, b = torch.randn(16, generator=g), 0.3
    x = torch.randn(64, 1, 4, 4, generator=g)
    model = LinearBinary(w, b)
    max_radius, search_steps = 20.0, 14
    dist = minimal_adversarial_distance(model, x, torch.device("cpu"), norm=norm, max_radius=max_radius,
                                        search_steps=search_steps, pgd_steps=5, batch_size=25)
    margin = (x.flatten(1) @ w + b).abs().double()
    exact = margin / (w.norm() if norm == "l2" else w.abs().sum()).double()  # dual norm of w
    assert bool((exact < max_radius).all())
    tol = max_radius / 2 ** search_steps
    assert bool((dist >= exact * (1 - 1e-4)).all())  # an adversarial example exists at dist
    assert bool((dist <= exact + tol).all())          # and bisection got within its tolerance
    # with labels: a misclassified input is adversarial already (0); -1 means "the prediction"
    pred = model(x).argmax(1)
    labels = torch.where(torch.arange(64) % 3 == 0, 1 - pred, torch.where(torch.arange(64) % 3 == 1, pred, -1))
    with_labels = minimal_adversarial_distance(model, x, torch.device("cpu"), labels, norm=norm,
                                               max_radius=max_radius, search_steps=search_steps, pgd_steps=5,
                                               batch_size=25)
    wrong = torch.arange(64) % 3 == 0
    assert bool((with_labels[wrong] == 0).all())
    assert bool((with_labels[~wrong] >= exact[~wrong] * (1 - 1e-4)).all())
    assert bool((with_labels[~wrong] <= exact[~wrong] + tol).all())


def test_adversarial_distance_is_censored_at_the_upper_bound():
    # a constant classifier has no adversarial example: report max_radius
    model = LinearBinary(torch.zeros(16), 5.0)
    dist = minimal_adversarial_distance(model, torch.randn(8, 1, 4, 4), torch.device("cpu"), max_radius=3.0,
                                        search_steps=4, pgd_steps=3)
    assert torch.equal(dist, torch.full((8,), 3.0, dtype=torch.float64))


def test_local_variation_tends_to_the_input_gradient_norm():
    g = G().manual_seed(1)
    model = LinearBinary(torch.randn(16, generator=g), -0.2)
    x, y = torch.randn(32, 1, 4, 4, generator=g), torch.randint(2, (32,), generator=g)
    xr = x.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(xr), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, xr)
    lv = local_variation(model, x, y, torch.device("cpu"), epsilon=1e-3, steps=1)
    assert torch.allclose(lv.float(), grad.flatten(1).norm(dim=1), rtol=1e-2, atol=1e-4)
    lv_unlabelled = local_variation(model, x, torch.full((32,), -1), torch.device("cpu"), epsilon=1e-3)
    pred = model(x).argmax(1)
    assert torch.equal(lv_unlabelled, local_variation(model, x, pred, torch.device("cpu"), epsilon=1e-3))


# ------------------------------------------------------------------------------ queries
def test_flip_shift_views_and_replicating_shift():
    views = flip_shift_views(flip=True, max_shift=1)
    assert len(views) == 10 and views[0].flip is False and (views[0].dx, views[0].dy) == (0, 0)
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5)
    right = shift(x, 1, 0)
    assert torch.equal(right[..., 1:], x[..., :-1]) and torch.equal(right[..., 0], x[..., 0])  # replicated
    down = shift(x, 0, -2)
    assert torch.equal(down[..., :-2, :], x[..., 2:, :])
    assert len(flip_shift_views(False, 2)) == 13


class DropoutBN(Classifier):
    def __init__(self):
        super().__init__(8, 3, dropout=0.5)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 16, 8)
        self.drop = nn.Dropout(0.5)

    def features(self, x):
        return self.drop(torch.relu(self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))))


PRODUCERS = [SignalRequest.of("augmented_predictions", flip=True, shift=1),
             SignalRequest.of("noisy_predictions", sigma=0.3, queries=4, seed=0),
             SignalRequest.of("adversarial_distance", max_radius=4.0, search_steps=3, pgd_steps=2),
             SignalRequest.of("local_variation", epsilon=0.1, steps=2)]


@pytest.mark.parametrize("request_", PRODUCERS, ids=lambda r: r.name)
def test_signal_producers_query_in_eval_mode_and_restore_the_mode(request_):
    torch.manual_seed(0)
    model = DropoutBN()
    with torch.no_grad():
        model.bn.running_mean.fill_(0.3)
        model.bn.running_var.fill_(2.0)
    x = torch.randn(40, 1, 4, 4, generator=G().manual_seed(3))
    ctx = SignalContext(model, "m", x, torch.randint(3, (40,), generator=G().manual_seed(4)), "target",
                        "members", torch.device("cpu"), None, None)
    model.train()
    producer = SIGNALS[request_.name]
    a, b = producer(ctx, **dict(request_.params)), producer(ctx, **dict(request_.params))
    assert model.training  # the caller's mode is back
    assert torch.equal(a, b)  # no dropout, no batch statistics
    model.eval()
    assert torch.equal(a, producer(ctx, **dict(request_.params)))
    assert not model.training


# ------------------------------------------------------------------------------ metrics
@pytest.fixture
def scores():
    g = G().manual_seed(0)
    return (torch.randn(800, generator=g, dtype=torch.float64) + 1.0,
            torch.randn(1200, generator=g, dtype=torch.float64))


def test_extended_metrics_match_sklearn_and_hand_computation(scores):
    s_in, s_out = scores
    m = membership_metrics(s_in, s_out, 0.5, n_boot=100, priors=(0.01, 0.1, 0.5))
    y = np.r_[np.ones(800), np.zeros(1200)]
    s = np.r_[s_in.numpy(), s_out.numpy()]
    fpr, tpr, _ = roc_curve(y, s)
    assert m["advantage"] == pytest.approx(np.max(tpr - fpr), abs=1e-12)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, s >= 0.5), abs=1e-12)
    assert m["advantage_at_threshold"] == pytest.approx(m["tpr"] - m["fpr"])
    for pi in (0.01, 0.1, 0.5):
        by_hand = pi * m["tpr"] / (pi * m["tpr"] + (1 - pi) * m["fpr"])
        assert m[f"precision_at_prior_{pi:g}"] == pytest.approx(by_hand)
    # with as many members as non-members, precision at prior 1/2 is the plain precision
    m2 = membership_metrics(s_in[:800], s_out[:800], 0.5, n_boot=10)
    assert m2["precision_at_prior_0.5"] == pytest.approx(m2["precision"])
    for t in (0.01, 0.001):
        assert m[f"tpr_at_fpr_{t:g}_ci_low"] <= m[f"tpr_at_fpr_{t:g}"] + 0.02
        assert m[f"tpr_at_fpr_{t:g}_ci_high"] >= m[f"tpr_at_fpr_{t:g}"]


def resampled_tpr_at_fpr(s_in, s_out, target, n_boot, g):
    """The plain bootstrap: resample both sides, recompute the ROC (sklearn) and read the TPR."""
    out = []
    for _ in range(n_boot):
        a = s_in[torch.randint(len(s_in), (len(s_in),), generator=g)]
        b = s_out[torch.randint(len(s_out), (len(s_out),), generator=g)]
        fpr, tpr, _ = roc(a, b)
        out.append(tpr_at_fpr(fpr, tpr, target)[0])
    return np.array(out)


@pytest.mark.parametrize("target", [0.01, 0.05])
def test_tpr_at_fpr_bootstrap_matches_the_plain_resampling_bootstrap(target):
    g = G().manual_seed(5)
    s_in = (torch.randn(300, generator=g, dtype=torch.float64) + 2).round(decimals=1)  # with ties
    s_out = torch.randn(400, generator=g, dtype=torch.float64).round(decimals=1)
    plain = resampled_tpr_at_fpr(s_in, s_out, target, 600, G().manual_seed(6))
    ours = bootstrap_tpr_at_fpr(s_in, s_out, [target], n_boot=4000, confidence=0.9,
                                generator=G().manual_seed(7))[target]
    assert ours[0] == pytest.approx(np.quantile(plain, 0.05), abs=0.03)
    assert ours[1] == pytest.approx(np.quantile(plain, 0.95), abs=0.03)
    again = bootstrap_tpr_at_fpr(s_in, s_out, [target], n_boot=4000, confidence=0.9, generator=G().manual_seed(7))
    assert again[target] == ours


# ------------------------------------------------------------------------------ tiny study
MY_ATTACKS = ["loss", {"name": "loss", "rule": "mean_train_loss"}, "true_class_confidence", "modified_entropy",
              "scaled_logit", {"name": "salem", "k": 3, "epochs": 5},
              {"name": "salem", "k": 3, "with_label": True, "epochs": 5},
              {"name": "salem", "k": 10, "epochs": 5}, {"name": "salem", "k": 10, "with_label": True, "epochs": 5},
              "gap", {"name": "label_only_augmentation", "shift": 1},
              {"name": "label_only_noise", "sigma": 0.5, "queries": 4},
              {"name": "adversarial_distance", "max_radius": 8.0, "search_steps": 3, "pgd_steps": 3},
              {"name": "local_variation", "epsilon": 0.5}]
MY_LABELS = ["loss", "loss_mean_train_loss", "true_class_confidence", "modified_entropy", "scaled_logit",
             "salem_top3", "salem_top3_label", "salem_top10", "salem_top10_label", "gap",
             "label_only_augmentation", "label_only_noise", "adversarial_distance", "local_variation"]
NEW_METRICS = {"advantage", "advantage_at_threshold", "balanced_accuracy", "precision_at_prior_0.01",
               "precision_at_prior_0.1", "precision_at_prior_0.5", "tpr_at_fpr_0.01_ci_low",
               "tpr_at_fpr_0.01_ci_high", "tpr_at_fpr_0.001_ci_low", "tpr_at_fpr_0.001_ci_high"}


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    from tests.conftest import TINY
    from overconf.runner.study import Study

    tmp = tmp_path_factory.mktemp("suite")
    raw = copy.deepcopy(TINY)
    raw["cache_dir"] = str(tmp / "checkpoints")
    raw["data"]["eval_size"] = raw["data"]["fit_size"] = 100
    raw["models"] = [{"arch": "salem_cnn", "name": "small_cnn", "params": {"width": 8, "hidden": 32}}]
    raw["recipe"] = {"epochs": 6, "lr": 0.003, "batch_size": 64}
    raw["sources"] = ["test", "digits", "permuted", "scaled", "unnormalized", "gaussian", "uniform"]
    raw["attacks"] = MY_ATTACKS
    raw["report"] = {"figures": True, "tensorboard": True, "fp_grid": 4, "roc_sources": ["test", "scaled"]}
    return Study(config_from_dict(raw), tmp / "run").run(), raw


def test_every_attack_runs_on_every_source_with_the_full_metric_set(suite_run):
    from tests.test_study import ATTACK_METRICS

    result, raw = suite_run
    rows = result.rows
    (cell,) = result.cells
    assert list(cell.scores) == MY_LABELS
    for attack in MY_LABELS:
        shadow = {r["metric"] for r in rows if r["attack"] == attack and r["source"] == "shadow"}
        assert {"threshold", "shadow_tpr", "shadow_fpr"} <= shadow, attack
        for source in raw["sources"]:
            got = {r["metric"]: r["value"] for r in rows if r["attack"] == attack and r["source"] == source}
            assert (ATTACK_METRICS | NEW_METRICS) <= set(got), (attack, source, (ATTACK_METRICS | NEW_METRICS) - set(got))
            assert 0 <= got["fpr"] <= 1 and 0 <= got["auroc"] <= 1
            scores = cell.scores[attack][source]
            assert scores.shape == (got["n_nonmembers"],) and torch.isfinite(scores).all(), (attack, source)


def test_white_box_and_label_only_signals_are_cached_and_reused(suite_run, tmp_path):
    from overconf.runner.study import Study

    result, raw = suite_run
    again = Study(config_from_dict(raw), tmp_path / "again").run(report=False)
    assert again.cache_misses == 0
    for a in ("adversarial_distance", "label_only_noise", "label_only_augmentation"):
        for k, v in result.cells[0].scores[a].items():
            assert torch.equal(v, again.cells[0].scores[a][k]), (a, k)


def test_members_sit_farther_from_the_boundary_than_unseen_test_images(suite_run):
    result, _ = suite_run
    s = result.cells[0].scores["adversarial_distance"]
    assert float(s["members"].median()) > float(s["test"].median())


def test_loglog_roc_figures_and_tensorboard(suite_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result, _ = suite_run
    assert (result.run_dir / "figures" / "roc_small_cnn_baseline_s0.png").is_file()
    acc = EventAccumulator(str(result.run_dir / "tensorboard" / "small_cnn_baseline_s0"),
                           size_guidance={"images": 0})
    acc.Reload()
    assert {"roc_loglog/test", "roc_loglog/scaled"} <= set(acc.Tags()["images"])
    summary = (result.run_dir / "summary.md").read_text()
    assert "Attack strength against the test source" in summary and "prec. pi=0.01" in summary
