"""Causal-factors study (issue 15): the bias-variance decomposition on hand-made probability
tables, the factor measures, the MSE loss option and the config schema."""
import math

import pytest
import torch

from overconf.core.cache import set_values
from overconf.config import Recipe, read_config
from overconf.config.factors import is_factors, parse_factors, read_factors
from overconf.core.errors import ConfigError
from overconf.runner.factors.measures import (bias_variance, centroid_distance, centroid_distance_classwise,
                                              centroid_distance_sorted, generalisation, nll)
from overconf.training.jobs import RECIPE_KEY_FIELDS
from overconf.training.step import SmoothedCrossEntropy, SoftmaxMSE, classification_loss

P1 = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]], dtype=torch.float64)
P2 = torch.tensor([[0.4, 0.4, 0.2], [0.2, 0.2, 0.6]], dtype=torch.float64)
Y = torch.tensor([0, 1])


def direct(tables: list[torch.Tensor], labels: torch.Tensor) -> tuple[float, float]:
    """The paper's formulas by loops: p_bar proportional to exp(mean_m log p_m); bias^2 = mean_x
    -log p_bar_y; variance = mean_m mean_x KL(p_bar || p_m)."""
    n, k = tables[0].shape
    bias, var = 0.0, 0.0
    for x in range(n):
        g = [math.exp(sum(math.log(t[x, j]) for t in tables) / len(tables)) for j in range(k)]
        z = sum(g)
        pbar = [v / z for v in g]
        bias += -math.log(pbar[labels[x]]) / n
        for t in tables:
            var += sum(pbar[j] * math.log(pbar[j] / t[x, j]) for j in range(k)) / n / len(tables)
    return bias, var


def test_variance_is_zero_and_bias_is_the_nll_when_all_models_agree():
    b, v = bias_variance(torch.stack([P1.log(), P1.log(), P1.log()]), Y)
    assert v == pytest.approx(0.0, abs=1e-12)
    assert b == pytest.approx(float(-P1[[0, 1], Y].log().mean()), abs=1e-12)


def test_bias_variance_match_the_formula_by_loops_and_the_exact_identity():
    b, v = bias_variance(torch.stack([P1.log(), P2.log()]), Y)
    db, dv = direct([P1, P2], Y)
    assert (b, v) == (pytest.approx(db, abs=1e-12), pytest.approx(dv, abs=1e-12))
    assert v > 0
    # bias^2 is the NLL of the normalised geometric-mean model; bias^2 + variance = mean NLL of the models
    gm = (0.5 * (P1.log() + P2.log())).log_softmax(-1)
    assert b == pytest.approx(nll(gm, Y), abs=1e-12)
    assert b + v == pytest.approx(0.5 * (nll(P1.log(), Y) + nll(P2.log(), Y)), abs=1e-12)


def test_random_tables_keep_the_identity_and_logits_are_normalised():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50, 10, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (50,), generator=g)
    b, v = bias_variance(logits, y)  # unnormalised logits: log_softmax first
    mean_nll = sum(nll(logits[m], y) for m in range(4)) / 4
    assert b + v == pytest.approx(mean_nll, rel=1e-10)


def test_train_version_counts_only_the_models_that_trained_on_each_point():
    tables = torch.stack([P1.log(), P2.log()])
    mask = torch.tensor([[True, True], [False, True]])  # [model, point]: point 0 model 0 only; point 1 both
    b, v = bias_variance(tables, Y, mask)
    b0, _ = direct([P1[:1]], Y[:1])
    b1, v1 = direct([P1[1:], P2[1:]], Y[1:])
    assert b == pytest.approx((b0 + b1) / 2, abs=1e-12)
    assert v == pytest.approx(v1 / 2, abs=1e-12)


def test_centroid_distance_and_generalisation():
    tr = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    te = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    lab = torch.tensor([0, 1])
    assert centroid_distance_classwise(tr, lab, te, lab) == pytest.approx(math.sqrt(0.5) / 2)
    # the paper's: unconditional means (0.5, 0.5) and (0.25, 0.75): distance sqrt(2) / 4
    assert centroid_distance(tr, te) == pytest.approx(math.sqrt(2) / 4)
    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0], [0.0, 4.0]])
    m = generalisation(logits[:2], lab, logits[1:], torch.tensor([0, 1]))
    assert m["train_acc"] == 1.0 and m["test_acc"] == 0.5 and m["acc_gap"] == 0.5
    assert m["loss_gap"] == pytest.approx(m["test_loss"] - m["train_loss"]) and m["loss_gap"] > 0


def test_centroid_distance_sorted3_against_a_loop():
    g = torch.Generator().manual_seed(0)
    tr, te = torch.randn(7, 10, generator=g), torch.randn(5, 10, generator=g)

    def centroid(rows):
        top = [sorted(r.tolist(), reverse=True)[:3] for r in rows]
        return [sum(t[j] for t in top) / len(top) for j in range(3)]

    a, b = centroid(tr), centroid(te)
    assert centroid_distance_sorted(tr, te, 3) == pytest.approx(math.dist(a, b), abs=1e-9)


def test_softmax_mse_loss_and_recipe_option():
    z = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([0, 2])
    p = z.softmax(-1)
    t = torch.nn.functional.one_hot(y, 3).float() * 0.9 + 0.1 / 3
    per = ((p - t) ** 2).sum(1)
    loss = SoftmaxMSE(0.1)
    assert torch.allclose(loss(z, y, reduction="none"), per)
    assert float(loss(z, y)) == pytest.approx(float(per.mean()))
    assert isinstance(classification_loss(Recipe(loss="mse")), SoftmaxMSE)
    assert type(classification_loss(Recipe())) is SmoothedCrossEntropy
    with pytest.raises(ConfigError, match="recipe.loss"):
        Recipe(loss="hinge")
    # a new recipe field: absent from the key at its default, present when set
    assert "loss" not in set_values(Recipe(), RECIPE_KEY_FIELDS)
    assert set_values(Recipe(loss="mse"), RECIPE_KEY_FIELDS)["loss"] == "mse"


def test_factors_config_parses_and_rejects_bad_values(tmp_path):
    cfg = read_factors("experiments/causal_factors_fashion_mnist.yaml")
    assert cfg.grid.repeats == 3 and len(cfg.configurations()) == cfg.grid.configurations
    assert len({tuple(sorted(c.items())) for c in cfg.configurations()}) == len(cfg.configurations())
    gpu = read_factors("experiments/causal_factors_cifar10.yaml")  # validates (no data needed)
    assert gpu.data.dataset == "cifar10"
    assert is_factors("experiments/causal_factors_fashion_mnist.yaml")
    assert not is_factors("experiments/tiny.yaml") and not is_factors({"name": "x"})
    read_config("experiments/tiny.yaml")  # existing configs parse as before
    base = {"study": "causal_factors"}
    for raw, match in [({"grid": {"losses": ["hinge"]}}, "grid.losses"),
                       ({"grid": {"repeats": 1}}, "grid.repeats"),
                       ({"grid": {"configurations": 1000}}, "grid.configurations"),
                       ({"gird": {}}, "unknown config key 'gird'"),
                       ({"sources": ["fake"]}, "GAN sources"),
                       ({"analysis": {"white_list": [["acc_gap", "train_size"]]}}, "exogenous"),
                       ({"analysis": {"black_list": [["nope", "acc_gap"]]}}, "not in analysis.nodes"),
                       ({"attacks": {"memguard_attacks": ["lira"]}}, "memguard_attacks")]:
        with pytest.raises(ConfigError, match=match):
            parse_factors(base | raw)
    with pytest.raises(ConfigError, match="study"):
        is_factors({"study": "something_else"})


def test_train_side_variance_against_a_direct_loop_over_models():
    """The paper's TrainBias2 / TrainVar with overlapping (random) training sets: per point, the
    decomposition over the models that trained on it, averaged over points (direct loop)."""
    from overconf.runner.factors.measures import train_side

    g = torch.Generator().manual_seed(3)
    pool_y = torch.randint(0, 3, (6,), generator=g)
    indices = [torch.tensor([0, 1, 2, 3]), torch.tensor([2, 3, 4, 0]), torch.tensor([5, 2, 1, 4])]
    own = [torch.randn(4, 3, generator=g) for _ in indices]
    table, mask, points = train_side(own, indices)
    b, v = bias_variance(table, pool_y[points], mask)
    biases, variances = [], []
    for p in range(6):
        lps = [own[m][list(idx.tolist()).index(p)].double().log_softmax(-1) for m, idx in enumerate(indices)
               if p in idx.tolist()]
        mean = sum(lps) / len(lps)
        log_pbar = mean.log_softmax(-1)
        biases.append(float(-log_pbar[pool_y[p]]))
        variances.append(sum(float((log_pbar.exp() * (log_pbar - lp)).sum()) for lp in lps) / len(lps))
    assert b == pytest.approx(sum(biases) / 6, abs=1e-12)
    assert v == pytest.approx(sum(variances) / 6, abs=1e-12)
    assert v > 0  # points trained on by several models: TrainVar is not zero
    _, v_disjoint = bias_variance(*train_side(own[:1], indices[:1])[:1], pool_y[indices[0]])
    assert v_disjoint == pytest.approx(0.0, abs=1e-12)
