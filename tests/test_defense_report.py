"""The report side of the defense suite (issue 13): the aware attacker's reference models under
release-time defenses, utility rows (training time), the privacy-utility figure, the defense x
source FPR table and the verdicts on the seeds' claims."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from overconf.config import Component
from overconf.defenses import DEFENSES, DefenseContext

REF_SETTINGS = {"baseline": {},
                "round": {"defense": {"name": "rounding", "d": 1}},
                "round_unaware": {"defense": {"name": "rounding", "d": 1}, "attacker": "unaware"},
                "mg": {"defense": {"name": "memguard", "budget": 0.5, "steps": 20, "epochs": 50}},
                "mg_unaware": {"defense": {"name": "memguard", "budget": 0.5, "steps": 20, "epochs": 50},
                               "attacker": "unaware"}}


@pytest.fixture(scope="module")
def reference_study(tmp_path_factory):
    """A tiny study with LiRA and RMIA (K = 4): the baseline first, then release-time defenses
    (aware and unaware) on the same cache, counting trainings."""
    from conftest import TINY
    from overconf.study import Study
    from overconf.validation import config_from_dict
    import overconf.training.jobs as jobs

    tmp = tmp_path_factory.mktemp("refdef")
    raw = copy.deepcopy(TINY) | {"cache_dir": str(tmp / "checkpoints"), "output_dir": str(tmp / "runs")}
    raw["models"] = [{"arch": "salem_cnn", "params": {"width": 8}}]
    raw["recipe"] = {"epochs": 2, "lr": 0.003, "batch_size": 64}
    raw["sources"] = ["test", "gaussian"]
    raw["attacks"] = ["loss", {"name": "lira", "online": True}, {"name": "rmia", "online": True}]
    raw["reference"] = {"num_models": 4, "population": 100}
    first = Study(config_from_dict(raw), tmp / "base").run(report=False)
    trained, real = [], jobs.train_classifier
    jobs.train_classifier = lambda *a, **kw: trained.append(1) or real(*a, **kw)
    raw["settings"] = REF_SETTINGS
    try:
        result = Study(config_from_dict(raw), tmp / "def").run(report=False)
    finally:
        jobs.train_classifier = real
    return first, result, trained


def test_aware_attacker_releases_reference_outputs_through_the_defense(reference_study):
    first, result, trained = reference_study
    assert trained == []  # release-time defenses, aware or not: no target, shadow or reference model trained
    cells = {c.setting: c for c in result.cells}
    ref = "reference_logits"
    base = cells["baseline"].members.extra[ref]
    # unaware: the reference models are released undefended (the baseline's logits)
    assert torch.equal(cells["round_unaware"].members.extra[ref], base)
    assert torch.equal(cells["mg_unaware"].members.extra[ref], base)
    # aware rounding: each reference model's log-softmax through the same rounding (fit-free)
    rounding = DEFENSES["rounding"](d=1)
    expected = torch.stack([rounding.release(base[:, k].double().log_softmax(-1)) for k in range(base.shape[1])], 1)
    assert torch.allclose(cells["round"].members.extra[ref].double(), expected)
    # aware MemGuard changes the reference outputs but never their predicted labels
    mg = cells["mg"].members.extra[ref]
    assert not torch.allclose(mg.double().log_softmax(-1), base.double().log_softmax(-1))
    assert torch.equal(mg.argmax(-1), base.argmax(-1))
    for name in ("population_reference_logits",):
        assert not torch.equal(cells["round"].members.extra[name], cells["round_unaware"].members.extra[name])
    # so LiRA's and RMIA's scores differ between the aware and the unaware attacker
    for attack in cells["round"].scores:
        if attack.startswith(("lira", "rmia")):
            for aware, unaware in (("round", "round_unaware"), ("mg", "mg_unaware")):
                assert not torch.equal(cells[aware].scores[attack]["members"],
                                       cells[unaware].scores[attack]["members"]), (attack, aware)
    # the single-model attacks see only the target's and shadow's releases: aware = unaware for rounding
    assert torch.equal(cells["round"].scores["loss"]["members"], cells["round_unaware"].scores["loss"]["members"])


def test_reference_defense_is_fitted_per_model_on_its_own_training_points():
    from overconf.reference.release import defense_key, release_defense, released

    assert release_defense(None) is None and release_defense(Component("none")) is None
    assert release_defense(Component("dp_sgd", {"noise_multiplier": 1.0})) is None  # training-time: in the models
    assert defense_key(Component("rounding", {"d": 1})) == {"release_defense": "rounding", "params": {"d": 1}}
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 2, 3, generator=g)
    train = [torch.randn(20, 3, generator=g).double().log_softmax(-1) for _ in range(2)]
    defs = [DEFENSES["logit_reweighting"]().fit(DefenseContext(t, t.argmax(1), torch.empty(0, 3),
                                                               torch.empty(0, dtype=torch.long), 0)) for t in train]
    out = released(logits, defs)
    for k in range(2):  # model k's centroids, not the other's
        assert torch.allclose(out[:, k], defs[k].release(logits[:, k].double().log_softmax(-1)))
    assert not torch.allclose(defs[0].release(logits[:, 1].double().log_softmax(-1)), out[:, 1])


# ---------------------------------------------------------------- utility rows: training time
def test_training_time_is_stored_with_the_model_and_read_back(reference_study, tmp_path):
    from overconf.cache import Cache
    from overconf.training.jobs import ClassifierJob, load_or_train
    from overconf.config import Recipe

    first, result, _ = reference_study
    secs = lambda res, setting: [r["value"] for r in res.rows if r["setting"] == setting
                                 and r["metric"] == "train_seconds"]
    trained_now = secs(first, "baseline")
    assert len(trained_now) == 1 and 0 < trained_now[0] < 600
    # a cache hit reads the stored time back (the same value in every release-time setting)
    for setting in REF_SETTINGS:
        assert secs(result, setting) == trained_now
    # directly: stored, read back, NaN for an artifact stored before it was recorded; the key is unchanged
    g = torch.Generator().manual_seed(0)
    job = ClassifierJob("salem_cnn", Recipe(epochs=1, batch_size=16), 0,
                        torch.randint(0, 256, (32, 1, 28, 28), generator=g, dtype=torch.uint8),
                        torch.randint(0, 10, (32,), generator=g), torch.tensor([0.5]), torch.tensor([0.25]), 10,
                        params={"width": 4})
    cache = Cache(tmp_path / "c")
    t = load_or_train(job, cache, torch.device("cpu"), progress=False)
    assert math.isfinite(t.train_seconds) and t.train_seconds > 0
    again = load_or_train(job, cache, torch.device("cpu"), progress=False)
    assert again.train_seconds == t.train_seconds and again.key == t.key
    stored = cache.load("models", t.key)
    del stored["train_seconds"]
    cache.save("models", t.key, stored)
    assert math.isnan(load_or_train(job, cache, torch.device("cpu"), progress=False).train_seconds)
