"""Calibrations (temperature, last-layer Laplace), sweeps and the attacker option in configs."""
import math

import pytest
import torch
from torch import nn

from overconf.calibrations import CALIBRATIONS, CalibrationContext
from overconf.calibrations.llla import LastLayerLaplace, fit_laplace, glm_variance
from overconf.calibrations.temperature import fit_temperature
from overconf.runner.validation import config_from_dict
from overconf.core.errors import ConfigError
from overconf.signals.outputs import Outputs
from overconf.core.seeding import isolated_rng


def _outputs(features: torch.Tensor, head: nn.Linear, labels: torch.Tensor) -> Outputs:
    with torch.no_grad():
        logits = head(features.double()).float()
    return Outputs(logits, features.float(), labels)


# ----------------------------------------------------------------------------- temperature


@pytest.mark.parametrize("planted", [0.5, 4.0])
def test_temperature_fit_recovers_a_planted_temperature(planted):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(10000, 10, generator=g, dtype=torch.float64) * 4
    labels = torch.multinomial(torch.softmax(logits / planted, 1), 1, generator=g).squeeze(1)
    assert fit_temperature(logits, labels) == pytest.approx(planted, rel=0.08)

    cal = CALIBRATIONS["temperature"](T="fit")
    dummy = Outputs(logits[:10].float(), torch.zeros(10, 1), labels[:10])
    held_out = Outputs(logits.float(), torch.zeros(len(logits), 1), labels)
    cal.fit(CalibrationContext(nn.Linear(1, 10), dummy, held_out, 0))
    assert cal.T == pytest.approx(planted, rel=0.08)
    assert torch.allclose(cal.log_probs(dummy), torch.log_softmax(logits[:10] / cal.T, 1), atol=1e-5)


# ----------------------------------------------------------------------------- LLLA


def _relu_net(seed: int = 0):
    """A small ReLU MLP trained on three Gaussian blobs in 2-d; returns (net, x, y)."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    y = torch.arange(3).repeat_interleave(200)
    x = centers[y] + 0.7 * torch.randn(600, 2, generator=g)
    with isolated_rng(seed):
        body = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU())
        head = nn.Linear(16, 3)
    opt = torch.optim.Adam([*body.parameters(), *head.parameters()], lr=0.02)
    for _ in range(300):
        opt.zero_grad()
        nn.functional.cross_entropy(head(body(x)), y).backward()
        opt.step()
    return body, head.double(), x, y


@pytest.fixture(scope="module")
def relu_net():
    return _relu_net()


def _ctx(body, head, x, y, seed=0, extra=None) -> CalibrationContext:
    with torch.no_grad():
        train = _outputs(body(x), head, y)
        g = torch.Generator().manual_seed(1)
        xc = x[torch.randperm(len(x), generator=g)[:200]] + 0.3 * torch.randn(200, 2, generator=g)
        yc = y[torch.randperm(len(x), generator=torch.Generator().manual_seed(1))[:200]]
        cal = _outputs(body(xc), head, yc)
    return CalibrationContext(head, train, cal, seed, extra or {})


def test_llla_lowers_the_max_score_on_scaled_inputs_against_map(relu_net):
    body, head, x, y = relu_net
    la = LastLayerLaplace(method="marglik", link="probit").fit(_ctx(body, head, x, y))
    with torch.no_grad():
        far = _outputs(body(x[:100] * 100), head, y[:100])
    map_conf = torch.softmax(far.logits.double(), 1).max(1).values
    llla_conf = la.log_probs(far).exp().max(1).values
    assert map_conf.mean() > 0.99  # the ReLU net is overconfident far from the data
    assert llla_conf.mean() < map_conf.mean() - 0.03
    assert (llla_conf < map_conf).float().mean() > 0.95
    # near the data LLLA keeps the MAP's decisions
    with torch.no_grad():
        near = _outputs(body(x), head, y)
    agree = (la.log_probs(near).argmax(1) == near.logits.argmax(1)).float().mean()
    assert agree > 0.97
    assert la.describe()["prior_precision"] > 0 and la.describe()["method"] == "marglik"


def test_llla_variance_and_probit_match_laplace_torch(relu_net):
    body, head, x, y = relu_net
    with torch.no_grad():
        feats = body(x).double()
    la = fit_laplace(head, feats, y)
    la.prior_precision = 0.7
    probe = feats[:25] * 3
    js, _ = la.backend.jacobians(probe)
    assert torch.allclose(glm_variance(la, probe), la.functional_variance(js), atol=1e-10, rtol=1e-8)
    cal = LastLayerLaplace(link="probit")
    cal.la = la
    expected = la(probe, pred_type="glm", link_approx="probit")
    assert torch.allclose(cal.predict(probe), expected, atol=1e-10)


def test_llla_monte_carlo_is_seeded_batch_independent_and_leaves_global_rng_alone(relu_net):
    body, head, x, y = relu_net
    state = torch.get_rng_state()
    a = LastLayerLaplace(link="mc", samples=64).fit(_ctx(body, head, x, y, seed=3))
    b = LastLayerLaplace(link="mc", samples=64).fit(_ctx(body, head, x, y, seed=3))
    c = LastLayerLaplace(link="mc", samples=64).fit(_ctx(body, head, x, y, seed=4))
    with torch.no_grad():
        feats = body(x[:50] * 5)
    pa = a.predict(feats)
    assert torch.equal(pa, b.predict(feats))
    assert not torch.equal(pa, c.predict(feats))
    assert torch.allclose(a.predict(feats, batch_size=7), pa)  # a sample's p does not depend on its batch
    assert torch.allclose(pa.sum(1), torch.ones(50, dtype=torch.float64))
    assert torch.equal(torch.get_rng_state(), state)


def test_llla_holdout_noise_term_trades_noise_entropy_for_nll(relu_net):
    body, head, x, y = relu_net
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        noise_x = (torch.rand(300, 2, generator=g) - 0.5) * 40
        noise = _outputs(body(noise_x), head, torch.full((300,), -1))
    plain = LastLayerLaplace(method="holdout", grid_size=17).fit(_ctx(body, head, x, y))
    ood = LastLayerLaplace(method="holdout", grid_size=17, ood_weight=5.0)
    assert ood.requires == ("noise",) and plain.requires == ()
    with pytest.raises(ValueError, match="noise"):
        ood.fit(_ctx(body, head, x, y))
    ood.fit(_ctx(body, head, x, y, extra={"noise": noise}))
    p_plain, p_ood = plain.describe()["prior_precision"], ood.describe()["prior_precision"]
    assert p_ood <= p_plain  # a wider posterior raises the predictive entropy on noise
    def entropy(cal):
        p = cal.predict(noise.features)
        return float(-(p * p.log()).sum(1).mean())

    assert entropy(ood) >= entropy(plain)
    assert ood.describe()["holdout_nll"] >= plain.describe()["holdout_nll"] - 1e-12
    assert "noise_entropy" in ood.describe()


@pytest.mark.parametrize("params,match", [
    ({"method": "cv"}, r"method 'cv'.*marglik, holdout"),
    ({"link": "bridge"}, r"link 'bridge'.*probit, mc"),
    ({"samples": 0}, r"samples must be a positive integer"),
    ({"ood_weight": 1.0}, r"ood_weight > 0 needs method: holdout"),
    ({"method": "holdout", "prior_range": [10, 1]}, r"prior_range"),
])
def test_llla_bad_parameters_are_config_errors(tiny_raw, params, match):
    tiny_raw["settings"] = {"l": {"calibration": {"name": "llla", **params}}}
    with pytest.raises(ConfigError, match=match):
        config_from_dict(tiny_raw)


def test_tuning_on_an_empty_calibration_split_fails_at_load(tiny_raw):
    tiny_raw["data"]["splits"]["calibration"] = 0
    tiny_raw["settings"] = {"l": {"calibration": {"name": "llla", "method": "holdout"}}}
    with pytest.raises(ConfigError, match=r"data.splits.calibration = 0"):
        config_from_dict(tiny_raw)
    tiny_raw["settings"] = {"t": {"calibration": {"name": "temperature", "T": "fit"}}}
    with pytest.raises(ConfigError, match=r"settings.t.calibration \(temperature\)"):
        config_from_dict(tiny_raw)
    tiny_raw["settings"] = {"t": {"calibration": {"name": "llla", "method": "marglik"}}}
    assert config_from_dict(tiny_raw).settings[0].calibration.name == "llla"


# ----------------------------------------------------------------------------- sweeps and attacker


def test_sweeps_expand_into_tagged_settings_and_round_trip(tiny_raw):
    tiny_raw["settings"] = {"baseline": {},
                            "ls_tag": {"recipe": {"label_smoothing": 0.2}, "sweep": "label_smoothing"}}
    tiny_raw["sweeps"] = {"label_smoothing": [0.0083, 0.1], "temperature": [10, "fit"], "weight_decay": [3e-4]}
    cfg = config_from_dict(tiny_raw)
    got = {s.name: (s.sweep, s.sweep_value) for s in cfg.settings}
    assert got == {"baseline": (None, None), "ls_tag": ("label_smoothing", 0.2),
                   "label_smoothing_0.0083": ("label_smoothing", 0.0083),
                   "label_smoothing_0.1": ("label_smoothing", 0.1),
                   "temperature_10": ("temperature", 10), "temperature_fit": ("temperature", "fit"),
                   "weight_decay_0.0003": ("weight_decay", 3e-4)}
    by_name = {s.name: s for s in cfg.settings}
    assert cfg.recipe_for(cfg.models[0], by_name["label_smoothing_0.1"]).label_smoothing == 0.1
    assert by_name["temperature_10"].calibration.params == {"T": 10}
    assert cfg.sweeps == {}
    assert config_from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("sweeps,match", [
    ({"labelsmoothing": [0.1]}, r"unknown sweep 'sweeps.labelsmoothing'.*label_smoothing"),
    ({"label_smoothing": 0.1}, r"'sweeps.label_smoothing' must be a non-empty list"),
    ({"label_smoothing": [0.1, 0.1]}, r"lists a value twice"),
    ({"label_smoothing": [1.5]}, r"recipe.label_smoothing must be in \[0, 1\)"),
    ({"temperature": [-1]}, r"T must be a positive"),
])
def test_bad_sweeps_are_explained(tiny_raw, sweeps, match):
    tiny_raw["sweeps"] = sweeps
    with pytest.raises(ConfigError, match=match):
        config_from_dict(tiny_raw)


def test_sweep_name_clash_is_a_config_error(tiny_raw):
    tiny_raw["settings"] = {"baseline": {}, "temperature_10": {}}
    tiny_raw["sweeps"] = {"temperature": [10]}
    with pytest.raises(ConfigError, match="duplicate names"):
        config_from_dict(tiny_raw)


def test_attacker_option_is_validated(tiny_raw):
    tiny_raw["settings"] = {"x": {"recipe": {"label_smoothing": 0.1}, "attacker": "naive"}}
    with pytest.raises(ConfigError, match=r"settings.x.attacker = 'naive'.*same, uncalibrated"):
        config_from_dict(tiny_raw)
    tiny_raw["settings"] = {"x": {"attacker": "uncalibrated", "calibration": {"name": "temperature", "T": 2},
                                  "shadow_calibration": "none"}}
    with pytest.raises(ConfigError, match="remove 'shadow_calibration'"):
        config_from_dict(tiny_raw)
    tiny_raw["settings"] = {"x": {"attacker": "uncalibrated", "recipe": {"dropout": 0.3}}}
    cfg = config_from_dict(tiny_raw)
    assert cfg.settings[0].attacker == "uncalibrated"
    assert config_from_dict(cfg.to_dict()) == cfg


def test_temperature_setting_documents_its_calibration_split_use():
    assert CALIBRATIONS["temperature"](T="fit").uses_calibration_split
    assert not CALIBRATIONS["temperature"](T=10).uses_calibration_split
    assert LastLayerLaplace(method="holdout").uses_calibration_split
    assert not LastLayerLaplace().uses_calibration_split
    assert math.isnan(LastLayerLaplace().describe()["prior_precision"])
