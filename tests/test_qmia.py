"""QMIA (Bertran et al., NeurIPS 2023): the losses against their definitions, the hinge score, the
realised FPR of the quantile rule on in-distribution non-members of a synthetic task against the
binomial interval of alpha, and QMIA in a study (rows, nominal FPR, caching by content)."""
import copy
import math

import numpy as np
import pytest
import torch
from scipy.stats import binom, norm

from overconf.attacks import ATTACKS, Signals
from overconf.attacks.qmia import QMIA, hinge
from overconf.attacks.quantile_regression import (RegressorSpec, gaussian_nll, load_or_train_regressor,
                                                  pinball_loss)
from overconf.core.cache import Cache
from overconf.core.errors import ConfigError
from overconf.runner.validation import config_from_dict

G = torch.Generator
CPU = torch.device("cpu")


def test_pinball_loss_is_minimised_by_the_empirical_quantile():
    t = torch.randn(501, generator=G().manual_seed(0), dtype=torch.float64)
    for tau in (0.1, 0.5, 0.9, 0.99):
        grid = torch.linspace(-4, 4, 8001, dtype=torch.float64)
        loss = pinball_loss(grid.expand(len(t), -1), t, torch.full((len(grid),), tau, dtype=torch.float64))
        best = grid[loss.mean(0).argmin()]
        k = math.ceil(len(t) * tau) - 1  # the tau-quantile: the ceil(n tau)-th order statistic
        assert float(best) == pytest.approx(float(t.sort().values[k]), abs=2e-3)
    # by hand: tau (s - q) above the quantile, (1 - tau)(q - s) below
    assert pinball_loss(torch.tensor([[1.0]]), torch.tensor([3.0]), torch.tensor([0.9])).item() == pytest.approx(1.8)
    assert pinball_loss(torch.tensor([[3.0]]), torch.tensor([1.0]), torch.tensor([0.9])).item() == pytest.approx(0.2)


def test_gaussian_nll_is_the_normal_log_density_up_to_its_constant():
    mu, log_sigma, t = torch.tensor([0.3, -1.0]), torch.tensor([0.2, -0.5]), torch.tensor([1.1, -0.7])
    expected = -norm.logpdf(t.numpy(), mu.numpy(), np.exp(log_sigma.numpy())) - 0.5 * math.log(2 * math.pi)
    assert gaussian_nll(mu, log_sigma, t).numpy() == pytest.approx(expected)


def test_hinge_is_the_true_logit_minus_the_largest_other_logit():
    g = G().manual_seed(1)
    z = torch.randn(50, 7, generator=g, dtype=torch.float64) * 5
    y = torch.randint(7, (50,), generator=g)
    loop = torch.tensor([z[i, y[i]] - max(z[i, k] for k in range(7) if k != y[i]) for i in range(50)])
    assert torch.allclose(hinge(z, y), loop)
    assert torch.allclose(hinge(z.log_softmax(1), y), loop)  # released log-probabilities give the same


def synthetic_task(n: int, g: torch.Generator):
    """8x8 images of brightness b ~ U(0, 1) and class y in {0, 1, 2}; the non-member score is
    N(2b + y - 1, (0.2 + 1.5 b)^2): its quantiles depend on the input, its spread on b."""
    y = torch.randint(0, 3, (n,), generator=g)
    b = torch.rand(n, generator=g)
    x = b[:, None, None, None].expand(n, 1, 8, 8) + 0.05 * torch.randn(n, 1, 8, 8, generator=g)
    s = (2 * b + y - 1).double() + (0.2 + 1.5 * b).double() * torch.randn(n, generator=g, dtype=torch.float64)
    return x.float(), y, s, b


@pytest.mark.parametrize("head", ["pinball", "gaussian"])
def test_realised_fpr_on_in_distribution_non_members_is_alpha(head, tmp_path):
    """The quantile rule s >= q_{1 - alpha}(x) flags a fraction alpha of fresh non-members drawn like
    the public data: the count lies in the central 95% binomial interval of Binomial(n, alpha)
    (scipy), overall and in the low / high spread halves, where one marginal threshold is far off."""
    alpha = 0.1
    g = G().manual_seed(0)
    x, y, s, _ = synthetic_task(4000, g)
    xt, yt, st, bt = synthetic_task(4000, g)
    spec = RegressorSpec(head=head, taus=(1 - alpha,), width=8, hidden=32, epochs=6, lr=3e-3)
    cache = Cache(tmp_path)
    reg = load_or_train_regressor(spec, x, y, s, 3, cache, CPU)
    q = reg.predict(xt, CPU)[torch.arange(len(xt)), yt]
    threshold = q[:, 0] if head == "pinball" else q[:, 0] + q[:, 1] * norm.ppf(1 - alpha)
    flagged = st >= threshold
    k, n = int(flagged.sum()), len(st)  # direct count
    lo, hi = binom.interval(0.95, n, alpha)
    assert lo <= k <= hi, (k / n, lo / n, hi / n)
    marginal = st >= torch.quantile(s, 1 - alpha)
    for half in (bt > 0.5, bt <= 0.5):  # conditional: alpha in both halves, unlike one marginal threshold
        kh, nh = int(flagged[half].sum()), int(half.sum())
        assert binom.interval(0.99, nh, alpha)[0] <= kh <= binom.interval(0.99, nh, alpha)[1], kh / nh
        assert not binom.interval(0.99, nh, alpha)[0] <= int(marginal[half].sum()) <= binom.interval(0.99, nh, alpha)[1]
    # cached by content: loading again trains nothing and predicts the same
    misses = cache.misses
    again = load_or_train_regressor(spec, x, y, s, 3, cache, CPU)
    assert cache.misses == misses and torch.equal(again.predict(xt, CPU), reg.predict(xt, CPU))


def test_decision_rules_read_the_quantile_at_the_label():
    attack = QMIA(alpha=0.01, fpr_levels=[0.01, 0.001])
    assert attack.taus == (0.99, 0.999)
    lp = torch.tensor([[0.0, -5.0, -9.0], [-4.0, 0.0, -7.0]], dtype=torch.float64)
    q = torch.zeros(2, 3, 2, dtype=torch.float64)
    q[0, 0] = torch.tensor([4.0, 6.0])  # point 0, label 0: hinge 5
    q[1, 1] = torch.tensor([5.0, 3.0])  # point 1, unlabelled: predicted class 1, hinge 4; crossing (sorted by the regressor)
    s = Signals(lp, torch.tensor([0, -1]), {attack.request.key: q})
    fitted = attack.fit(s, s, generator=G())
    assert fitted.nominal_fpr == 0.01 and fitted.threshold == 0.0 and set(fitted.levels) == {0.01, 0.001}
    assert fitted.score(s).tolist() == pytest.approx([1.0, -1.0])
    assert fitted.levels[0.001].score(s).tolist() == pytest.approx([-1.0, 1.0])
    assert fitted.levels[0.01].score is fitted.score  # the main rule is the 1% level: one rule
    gauss = QMIA(alpha=0.05, head="gaussian")
    qg = torch.tensor([[[1.0, 2.0]] * 3, [[0.0, 1.0]] * 3], dtype=torch.float64)
    sg = Signals(lp, torch.tensor([0, 1]), {gauss.request.key: qg})
    fg = gauss.fit(sg, sg, generator=G())
    assert fg.threshold == pytest.approx(norm.ppf(0.95)) and fg.levels[0.001].threshold == pytest.approx(norm.ppf(0.999))
    assert fg.score(sg).tolist() == pytest.approx([(5 - 1) / 2, 4.0])


@pytest.mark.parametrize("params, message", [
    ({"alpha": 0}, "alpha"), ({"head": "quantile"}, "head"), ({"public": "test"}, "public"),
    ({"public": "reserve"}, "public_size"), ({"fpr_levels": [0.5, 2]}, "fpr_levels"), ({"epochs": 0}, "epochs")])
def test_bad_parameters_are_one_clear_error(params, message):
    with pytest.raises(ConfigError, match=message):
        ATTACKS["qmia"](**params)


@pytest.fixture(scope="module")
def qmia_runs(tmp_path_factory):
    from tests.conftest import TINY
    from overconf.runner.study import Study

    tmp = tmp_path_factory.mktemp("qmia")
    raw = copy.deepcopy(TINY)
    raw["cache_dir"] = str(tmp / "checkpoints")
    raw["models"] = [{"arch": "salem_cnn", "name": "small_cnn", "params": {"width": 8, "hidden": 32}}]
    raw["recipe"] = {"epochs": 3, "lr": 0.003, "batch_size": 64}
    raw["sources"] = ["test", "gaussian"]
    raw["attacks"] = ["max_score", {"name": "qmia", "epochs": 2, "width": 4, "hidden": 8}]
    raw["settings"] = {"baseline": {}, "t2": {"calibration": {"name": "temperature", "T": 2.0}}}
    first = Study(config_from_dict(raw), tmp / "run").run(report=False)
    return first, raw, tmp


def test_qmia_in_a_study_declares_alpha_and_trains_one_regressor_per_release(qmia_runs):
    result, raw, tmp = qmia_runs
    rows = {(r["setting"], r["attack"], r["source"], r["metric"]): r["value"] for r in result.rows}
    for setting in ("baseline", "t2"):
        assert rows[(setting, "qmia", "test", "nominal_fpr")] == 0.01
        assert rows[(setting, "qmia", "gaussian", "level_0.001_fpr")] >= 0
        assert (setting, "qmia", "test", "level_0.01_fpr") in rows
        assert rows[(setting, "qmia", "shadow", "alpha")] == 0.01
        # max_score declares the shadow's FPR at its threshold
        assert rows[(setting, "max_score", "test", "nominal_fpr")] == rows[(setting, "max_score", "shadow", "shadow_fpr")]
    # the target alone: one regressor per release (baseline; temperature T = 2 halves the hinge), none for the shadow
    assert len(list((tmp / "checkpoints" / "qmia").glob("*.pt"))) == 2
    from overconf.runner.study import Study

    again = Study(config_from_dict(raw), tmp / "again").run(report=False)
    assert again.cache_misses == 0
    assert [r["value"] for r in again.rows] == pytest.approx([r["value"] for r in result.rows], nan_ok=True)
