"""Models per repeat (Baluta et al. 2022: 10-50 models per random split): the blocks, the test-side
bias / variance over a repeat's models against a direct loop, and a tiny grid end to end."""
import math

import pytest
import torch

from overconf.config.factors import parse_factors
from overconf.core.errors import ConfigError
from overconf.runner.factors.measures import repeat_bias_variance


def direct(tables: list[torch.Tensor], labels: torch.Tensor) -> tuple[float, float]:
    """Loops over the paper's formulas: p_bar proportional to exp(mean_m log p_m), bias^2 = mean_x
    -log p_bar_y, variance = mean_x mean_m KL(p_bar || p_m)."""
    n, k = tables[0].shape
    probs = [t.double().softmax(-1) for t in tables]
    bias = var = 0.0
    for x in range(n):
        g = [math.exp(sum(math.log(p[x, j]) for p in probs) / len(probs)) for j in range(k)]
        pbar = [v / sum(g) for v in g]
        bias += -math.log(pbar[labels[x]]) / n
        var += sum(sum(pbar[j] * math.log(pbar[j] / p[x, j]) for j in range(k)) for p in probs) / len(probs) / n
    return bias, var


def test_test_side_bias_variance_over_each_repeats_models_against_a_loop():
    g = torch.Generator().manual_seed(0)
    r_count, m_count, size = 3, 4, 5
    labels = torch.randint(0, 3, (r_count * size,), generator=g)
    first = [torch.randn(r_count * size, 3, generator=g) for _ in range(r_count)]  # on every block
    extra = [torch.randn(size, 3, generator=g) for _ in range(r_count * (m_count - 1))]  # on its repeat's block
    blocks = [slice(r * size, (r + 1) * size) for r in range(r_count)]
    got = repeat_bias_variance(first, extra, labels, blocks)
    for r in range(r_count):
        models = [first[r][blocks[r]]] + extra[r * (m_count - 1):(r + 1) * (m_count - 1)]
        b, v = direct(models, labels[blocks[r]])
        assert got[r][0] == pytest.approx(b, abs=1e-10) and got[r][1] == pytest.approx(v, abs=1e-10)
        assert got[r][1] > 0


def test_blocks_with_several_models_per_repeat():
    from types import SimpleNamespace

    from overconf.runner.factors.grid import make_blocks

    ds = SimpleNamespace(name="toy", train_y=torch.arange(1000) % 10, test_y=torch.arange(400) % 10)
    raw = {"study": "causal_factors", "grid": {"repeats": 3, "train_sizes": [50], "models_per_repeat": 4},
           "data": {"test_size": 50, "calibration_size": 20, "source_size": 20}}
    disjoint = make_blocks(ds, parse_factors(raw))
    assert len(disjoint.train) == 12 and len(torch.unique(torch.cat(disjoint.train))) == 12 * 50
    random = make_blocks(ds, parse_factors(raw | {"grid": raw["grid"] | {"splits": "random"}}))
    pool = set(torch.cat(random.train).tolist())
    assert len(pool) == 4 * 50  # one pool of M x n
    for r in range(3):  # each repeat splits the pool into its M disjoint training sets
        assert set(torch.cat(random.train[4 * r:4 * r + 4]).tolist()) == pool
    counts = torch.bincount(torch.cat(random.train))
    assert set(counts[counts > 0].tolist()) == {3}  # each point trained on by one model per repeat
    one = parse_factors(raw | {"grid": raw["grid"] | {"models_per_repeat": 1, "splits": "random"}})
    assert [b.tolist() for b in make_blocks(ds, one).train] == [random_first(ds, one, r) for r in range(3)]
    with pytest.raises(ConfigError, match="grid.models_per_repeat"):
        parse_factors(raw | {"grid": {"models_per_repeat": 0}})


def random_first(ds, cfg, r):
    """The random split of a repeat with one model per repeat, as before the knob (same indices)."""
    from overconf.core.seeding import generator
    from overconf.data.splits import stratified_order

    tr = stratified_order(ds.train_y, generator(cfg.seed, "factors", "train"))
    return tr[:100][torch.randperm(100, generator=generator(cfg.seed, "factors", "split", r))[:50]].tolist()


def test_tiny_grid_with_two_models_per_repeat(tmp_path):
    import overconf

    raw = {"study": "causal_factors", "name": "tiny_models", "device": "cpu", "progress": False,
           "data": {"test_size": 40, "eval_size": 30, "calibration_size": 20, "source_size": 20},
           "grid": {"widths": [4], "params": {"hidden": 8}, "train_sizes": [40], "losses": ["cross_entropy", "mse"],
                    "weight_decays": [0.0], "label_smoothings": [0.0], "repeats": 2, "models_per_repeat": 2,
                    "splits": "random"},
           "recipe": {"epochs": 1, "lr": 0.003}, "sources": ["gaussian"],
           "attacks": {"mlp_epochs": 1, "shokri_epochs": 1},
           "analysis": {"outcomes": ["attack_loss"], "bootstrap": 1, "refute_simulations": 1, "folds": 2},
           "figures": False, "cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "runs")}
    frame = overconf.run(raw).frame
    assert len(frame) == 2 * 2  # rows per (configuration, repeat): the extra models enter the decomposition only
    assert (frame["variance"] > 0).all() and (frame["variance_train"] > 0).all()
    assert frame.groupby("config")["variance"].nunique().eq(2).all()  # each repeat its own decomposition
