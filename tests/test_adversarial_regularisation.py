"""Adversarial regularisation (Nasr et al. 2018, overconf.defenses.adversarial_regularisation)."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from overconf.config import Component, Recipe
from overconf.defenses import DEFENSES
from overconf.defenses.adversarial_regularisation import AdversarialRegularisationHooks
from overconf.defenses.training import with_training_defense
from overconf.core.errors import ConfigError
from overconf.training import train_classifier
from overconf.training.hooks import DEFAULT_HOOKS, Batch
from overconf.training.jobs import ClassifierJob
from tests.test_training import make_job

CPU = torch.device("cpu")
NAME = "adversarial_regularisation"


def validation(n=40):
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 1, 12, 12), generator=g, dtype=torch.uint8), torch.randint(0, 3, (n,), generator=g)


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_registered_with_clear_errors():
    from overconf.core.names import NAMES
    d = DEFENSES[NAME]
    assert d.kind == "training" and d.uses_calibration_split and NAME in NAMES["defense"]
    # the authors' Purchase / Texas code: lambda 3 with lambda * (mean h - 0.5), 26 steps of h per step of f,
    # h pre-trained 5 passes after 1 plain epoch, Adam 1e-4
    assert (d().form, d().lam, d().k, d().inference_lr, d().warmup_epochs, d().pretrain_passes) == (
        "authors", 3.0, 26, 1e-4, 1, 5)
    for bad in ({"k": 0}, {"lam": -1}, {"inference_lr": 0}, {"warmup_epochs": -1}, {"lam": "big"},
                {"form": "log"}, {"pretrain_passes": -1}):
        with pytest.raises(ConfigError, match=NAME):
            d(**bad)
    job = make_job()
    x, y = validation()
    with pytest.raises(ConfigError, match="calibration"):
        d().hooks_for(job, (x[:0], y[:0]))
    assert AdversarialRegularisationHooks.batched is False  # reference models fall back to sequential


def test_key_changes_only_when_used():
    job, val = make_job(), validation()
    assert with_training_defense(job, Component("none", {}), val).key == job.key
    assert with_training_defense(job, None, val).key == job.key
    a = with_training_defense(job, Component(NAME, {}), val)
    b = with_training_defense(job, Component(NAME, {"lam": 1.0}), val)
    c = with_training_defense(job, Component(NAME, {}), validation(30))
    assert len({job.key, a.key, b.key, c.key}) == 4
    assert a.key == with_training_defense(job, Component(NAME, {}), validation()).key


def train(job, hooks):
    model = job.build()
    history = train_classifier(model, job.inputs(), job.labels, job.recipe, seed=job.seed, device=CPU,
                               progress=False, hooks=hooks)
    return model, history


def test_seeded_reproducible_and_reports_the_inference_model():
    job = make_job(dropout=0.0, epochs=3)
    d = DEFENSES[NAME](lam=1.0, warmup_epochs=1, inference_lr=1e-3)
    state = torch.get_rng_state()
    runs = [train(job, d.hooks_for(job, validation())) for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(params(runs[0][0]), params(runs[1][0]))
    (model, history), _ = runs
    assert "adv_reg_gain" not in history[0]  # the warm-up epoch trains plainly
    info = d.info(job, history)
    assert set(info) == {"adv_reg_member_accuracy", "adv_reg_reference_accuracy", "adv_reg_gain"}
    assert 0 <= info["adv_reg_member_accuracy"] <= 1 and 0 <= info["adv_reg_reference_accuracy"] <= 1
    assert info["adv_reg_gain"] <= 0  # a sum of two mean log-probabilities
    # one hooks object serving two models (an aware attacker's reference models): each its own game
    hooks = d.hooks_for(job, validation())
    first = train(job, hooks)[0]
    assert torch.equal(params(first), params(runs[0][0]))
    other = train(make_job(seed=1, dropout=0.0, epochs=3), hooks)[0]
    again = train(make_job(seed=1, dropout=0.0, epochs=3), d.hooks_for(job, validation()))[0]
    assert torch.equal(params(other), params(again))
    # lam changes the classifier (the log h term acts); lam 0 after the same game is another model
    zero = train(job, DEFENSES[NAME](lam=0.0, warmup_epochs=1, inference_lr=1e-3).hooks_for(job, validation()))[0]
    assert not torch.equal(params(zero), params(runs[0][0]))


@pytest.mark.parametrize("form", ["paper", "authors"])
def test_privacy_term_is_the_published_gradient(form):
    """One step of f after warm-up and pre-training: the gradient equals that of CE + lam * mean log
    sigmoid(h(softmax(z), y)) (paper, Algorithm 1) or CE + lam * (mean sigmoid(h(z, y)) - 0.5) (the
    authors' code: h on raw logits), computed directly."""
    job = make_job(dropout=0.0, epochs=1)
    hooks = DEFENSES[NAME](lam=2.0, warmup_epochs=0, k=2, pretrain_passes=1, form=form).hooks_for(job, validation())
    model = job.build().train()
    x, y = job.inputs()[:16], job.labels[:16]
    hooks.begin(model, job.inputs(), job.labels, 0)
    loss_fn = hooks.loss(job.recipe)
    hooks.batches(96, 16, torch.Generator().manual_seed(0), CPU)
    params_ = list(model.parameters())
    hooks.gradient(loss_fn(model(x), y), params_, Batch(x, y, torch.arange(16), model))
    got = [p.grad.clone() for p in params_]
    g = hooks._game
    assert g.count == 2 and g.pretrained  # k recorded steps of h, after the pre-training passes
    for p in params_:
        p.grad = None
    logits = model(x)
    onehot = F.one_hot(y, 3).float()
    if form == "paper":
        term = torch.log(torch.sigmoid(g.h(F.softmax(logits, 1), onehot))).mean()
    else:
        term = torch.sigmoid(g.h(logits, onehot)).mean() - 0.5
    (F.cross_entropy(logits, y) + 2.0 * term).backward()
    for a, p in zip(got, params_):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-6)


def test_large_lambda_lowers_the_loss_attack():
    """Fashion-MNIST, 200 members, a small SalemCNN overfitting for 20 epochs: the loss attack's AUROC
    (members vs 200 test points) drops with lam = 30, k = 2 (measured 0.606 -> 0.532)."""
    from sklearn.metrics import roc_auc_score
    from overconf.data import load_dataset
    ds = load_dataset("fashion_mnist")
    job = ClassifierJob("salem_cnn", Recipe(epochs=20, batch_size=32, lr=3e-3, dropout=0.0), 0, ds.train_x[:200],
                        ds.train_y[:200], ds.mean, ds.std, 10, params={"width": 8, "hidden": 64})
    reference = (ds.train_x[200:300], ds.train_y[200:300])
    xt, yt = ds.normalize(ds.test_x[:200]), ds.test_y[:200]

    def auroc(model):
        with torch.no_grad():
            lm = F.cross_entropy(model(job.inputs()), job.labels, reduction="none")
            lt = F.cross_entropy(model(xt), yt, reduction="none")
        return roc_auc_score([1] * len(lm) + [0] * len(lt), torch.cat([-lm, -lt]).numpy())

    base = auroc(train(job, DEFAULT_HOOKS)[0])
    d = DEFENSES[NAME](lam=30.0, k=2, inference_lr=1e-3, form="paper", pretrain_passes=0)
    model, history = train(job, d.hooks_for(job, reference))
    defended = auroc(model)
    info = d.info(job, history)
    assert base > 0.58 and defended < base - 0.04, (base, defended)
    assert not math.isnan(info["adv_reg_member_accuracy"])


def test_rows_in_a_tiny_study(tiny_raw, tmp_path):
    from overconf.runner.study import Study
    from overconf.runner.validation import config_from_dict
    raw = copy.deepcopy(tiny_raw)
    raw["models"] = [{"arch": "salem_cnn", "params": {"width": 4, "hidden": 16}}]
    raw["recipe"] = {"epochs": 2, "lr": 0.003, "batch_size": 64}
    raw["sources"], raw["attacks"] = ["test"], ["loss"]
    raw["settings"] = {"baseline": {}, "ar": {"defense": {"name": NAME, "inference_lr": 1e-3}}}
    result = Study(config_from_dict(raw), tmp_path / "ar").run(report=False)
    rows = {r["metric"]: r["value"] for r in result.rows if r["setting"] == "ar" and r["source"] == "defense"}
    assert {"adv_reg_member_accuracy", "adv_reg_reference_accuracy", "adv_reg_gain",
            "shadow_adv_reg_gain"} <= set(rows)
    cells = {c.setting: c for c in result.cells}
    assert cells["ar"].target.key != cells["baseline"].target.key
