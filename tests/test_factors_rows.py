"""The one-row-per-configuration table (Baluta et al. 2022) against a hand-made grid, and the
config knobs of the unit of analysis and of Shokri's shadows."""
import pandas as pd
import pytest

from overconf.config.factors import parse_factors
from overconf.core.errors import ConfigError
from overconf.runner.factors.rows import analysis_rows, per_configuration


def hand_made() -> pd.DataFrame:
    # 2 configurations x 3 repeats, and one configuration with 2 repeats (rows out of order)
    rows = [(0, 0, "mse", 0.0, 0.90, 0.60), (1, 0, "cross_entropy", 5e-4, 0.80, 0.55), (0, 1, "mse", 0.0, 0.70, 0.50),
            (0, 2, "mse", 0.0, 0.80, 0.70), (1, 1, "cross_entropy", 5e-4, 0.60, 0.65), (2, 0, "mse", 5e-4, 0.5, 0.5),
            (1, 2, "cross_entropy", 5e-4, 0.70, 0.60), (2, 1, "mse", 5e-4, 0.7, 0.6)]
    return pd.DataFrame(rows, columns=["config", "repeat", "loss", "weight_decay", "acc_gap", "attack_loss"])


def test_one_row_per_configuration_against_a_hand_made_grid():
    table = per_configuration(hand_made())
    assert list(table["config"]) == [0, 1, 2] and "repeat" not in table.columns
    assert list(table["loss"]) == ["mse", "cross_entropy", "mse"]
    assert list(table["weight_decay"]) == [0.0, 5e-4, 5e-4]
    # means computed by hand: config 0: (0.9 + 0.7 + 0.8) / 3, (0.6 + 0.5 + 0.7) / 3; ...
    assert table["acc_gap"].tolist() == pytest.approx([0.8, 0.7, 0.6])
    assert table["attack_loss"].tolist() == pytest.approx([0.6, 0.6, 0.55])
    assert table["models"].tolist() == [3, 3, 2]


def test_analysis_rows_unit():
    frame = hand_made()
    assert len(analysis_rows(frame, "configuration")) == 3
    assert analysis_rows(frame, "repeat") is frame


def test_rows_and_shokri_shadows_options():
    raw = {"study": "causal_factors", "grid": {"repeats": 3}}
    assert parse_factors(raw).analysis.rows == "configuration"
    assert parse_factors(raw | {"analysis": {"rows": "repeat"}}).analysis.rows == "repeat"
    with pytest.raises(ConfigError, match="analysis.rows"):
        parse_factors(raw | {"analysis": {"rows": "model"}})
    assert parse_factors(raw | {"attacks": {"shokri_shadows": 2}}).attacks.shokri_shadows == 2
    with pytest.raises(ConfigError, match="shokri_shadows"):
        parse_factors(raw | {"attacks": {"shokri_shadows": 3}})


def test_threshold_attack_on_the_mse_loss_against_a_loop():
    """Baluta et al.'s threshold attack for MSE models: member iff the MSE loss is at most the mean
    training (shadow member) MSE loss."""
    import torch

    from overconf.attacks import ATTACKS, Signals

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(12, 4, generator=g)
    labels = torch.randint(0, 4, (12,), generator=g)
    s = Signals(logits.double().log_softmax(-1), labels)
    members, nonmembers = s.subset(slice(0, 6)), s.subset(slice(6, 12))

    def mse(i):
        p = logits[i].double().softmax(-1).tolist()
        return sum((p[k] - (k == int(labels[i]))) ** 2 for k in range(4))

    threshold = sum(mse(i) for i in range(6)) / 6
    expected = [mse(i) <= threshold for i in range(12)]
    fitted = ATTACKS["loss"](rule="mean_train_loss", loss="mse").fit(members, nonmembers, generator=g)
    assert fitted.decide(s).tolist() == expected
    ce = ATTACKS["loss"](rule="mean_train_loss").fit(members, nonmembers, generator=g)
    ce_threshold = -sum(float(s.log_probs[i, labels[i]]) for i in range(6)) / 6
    assert ce.decide(s).tolist() == [float(-s.log_probs[i, labels[i]]) <= ce_threshold + 1e-12 for i in range(12)]
    with pytest.raises(ConfigError, match="loss"):
        ATTACKS["loss"](loss="hinge")


def test_effect_in_min_to_max_units_is_the_raw_regression_slope_times_the_range():
    import numpy as np

    from overconf.runner.factors.causal import raw_effect, standardise

    x = np.array([0.0, 1.0, 2.0, 4.0, 8.0])
    frame = pd.DataFrame({"acc_gap": x, "attack_loss": 0.5 + 0.03 * x})
    data, _ = standardise(frame, ["acc_gap", "attack_loss"])
    slope = float(np.polyfit(data["acc_gap"], data["attack_loss"], 1)[0])  # 1.0: exact line
    effect = {"factor": "acc_gap", "outcome": "attack_loss", "effect": slope}
    # DoWhy's control = min, treatment = max on y = 0.5 + 0.03 x: 0.03 * (8 - 0)
    assert raw_effect(effect, frame) == pytest.approx(0.24)


def test_predictive_power_by_the_papers_holdout_of_rows():
    import numpy as np

    from overconf.config.factors import CausalAnalysis
    from overconf.runner.factors.causal import predictive_power_holdout

    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    frame = pd.DataFrame({"config": range(40), "train_size": x, "attack_loss": 2 * x + 0.01 * rng.normal(size=40)})
    an = CausalAnalysis(nodes=["train_size", "acc_gap"], exogenous=["train_size"], white_list=[])
    res = predictive_power_holdout(frame, ["train_size"], "attack_loss", an, seed=0)
    assert len(res["observed"]) == 8  # 20% of 40 rows
    assert res["r"] > 0.99


def test_random_splits_overlap_and_disjoint_ones_do_not():
    from types import SimpleNamespace

    import torch

    from overconf.runner.factors.grid import make_blocks

    ds = SimpleNamespace(name="toy", train_y=torch.arange(400) % 10, test_y=torch.arange(400) % 10)
    raw = {"study": "causal_factors", "grid": {"repeats": 4, "train_sizes": [50]},
           "data": {"test_size": 50, "calibration_size": 20, "source_size": 20}}
    disjoint = make_blocks(ds, parse_factors(raw))
    assert len(torch.unique(torch.cat(disjoint.train))) == 4 * 50
    random = make_blocks(ds, parse_factors(raw | {"grid": raw["grid"] | {"splits": "random"}}))
    union = torch.cat(random.train)
    assert all(len(torch.unique(b)) == 50 for b in random.train)
    assert len(torch.unique(union)) <= 100 < len(union)  # one pool of 2 x 50: points shared by models
    assert not set(random.calibration.tolist()) & set(union.tolist())
    with pytest.raises(ConfigError, match="grid.splits"):
        parse_factors(raw | {"grid": {"splits": "bootstrap"}})
