"""The audit of a user's own model (overconf.runner.audit, issue 24): the reference and shadow models
are trained with the recipe the user gave (asserted on the trained jobs) or with the user's
training function; a mismatched recipe triggers the mimicry warning (rows, log, summary); an
overconf-trained model audited through this path gives the rows of the study that trained it;
``overconf audit CONFIG`` imports the factory from the config's folder and runs the GAN source on
the public data."""
from __future__ import annotations

import copy
import json
import functools
import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import overconf
from overconf.config import Recipe
from overconf.data import load_dataset
from overconf.models import build_model
from overconf.models.wrapped import WrappedModule
from overconf.runner.study import Study
from overconf.runner.validation import config_from_dict
from overconf.training import jobs as jobs_module
from overconf.training.jobs import load_or_train

from conftest import TINY


class TinyCNN(nn.Module):
    """A user's plain module: conv3x3-4, pool 4, fc-10."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 7 * 7, 10)

    def forward(self, x):
        return self.fc(F.max_pool2d(F.relu(self.conv(x)), 4).flatten(1))


def make_tiny() -> nn.Module:
    return TinyCNN()


MEAN, STD = [0.286], [0.353]


def plain_train(model, x, y, epochs, lr=3e-3, seed=0):
    """The user's own loop, outside overconf."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 32):
            idx = perm[i: i + 32]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A user's model trained outside overconf on 300 Fashion-MNIST images, and its data."""
    ds = load_dataset("fashion_mnist")
    perm = torch.randperm(len(ds.train_x), generator=torch.Generator().manual_seed(1))
    m, p = perm[:300], perm[300:900]
    norm = lambda x: (x.float() / 255 - MEAN[0]) / STD[0]  # noqa: E731
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = make_tiny()
    plain_train(model, norm(ds.train_x[m]), ds.train_y[m], epochs=12)
    return {"model": model, "members": (ds.train_x[m], ds.train_y[m]),
            "nonmembers": (ds.test_x[:200], ds.test_y[:200]), "public": (ds.train_x[p], ds.train_y[p])}


def audit(user, tmp_path, **kw):
    args = dict(factory=make_tiny, target=user["model"], members=user["members"], nonmembers=user["nonmembers"],
                public=user["public"], normalize={"mean": MEAN, "std": STD}, device="cpu", progress=False,
                cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / "runs"),
                data={"eval_size": 100, "fit_size": 100}, sources=["test", "gaussian"],
                attacks=["max_score", "lira", "rmia"], reference={"num_models": 4}, metrics={"bootstrap": 50},
                report={"figures": False, "tensorboard": False})
    return overconf.audit(**(args | kw))


@pytest.fixture
def trained_jobs(monkeypatch):
    """Every job overconf trains (not loads), in order."""
    seen = []
    original = jobs_module._train_and_store

    def record(job, *a, **kw):
        seen.append(job)
        return original(job, *a, **kw)

    monkeypatch.setattr(jobs_module, "_train_and_store", record)
    return seen


def test_reference_and_shadow_models_get_the_users_recipe_and_factory(user, tmp_path, trained_jobs):
    recipe = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.8, "epochs": 3, "batch_size": 32, "weight_decay": 1e-4}
    result = audit(user, tmp_path, recipe=recipe)
    names = [j.name for j in trained_jobs]
    assert sum(n.startswith("reference") for n in names) == 4 and sum(n.startswith("shadow") for n in names) == 1
    assert not any(n.startswith("target") for n in names), "the audited target is loaded, never trained"
    for job in trained_jobs:
        assert job.recipe == Recipe(**recipe), job.name
        assert job.factory.name.endswith("make_tiny") and job.factory.weights is None
        model = job.build()
        assert isinstance(model, WrappedModule) and isinstance(model.net, TinyCNN)
    frame = result.frame
    assert {"lira_online", "rmia_online", "max_score"} <= set(frame.attack)
    assert (result.run_dir / "audit.yaml").is_file() and (result.run_dir / "summary.md").is_file()
    # the target's rows are the user's model: accuracy on the members it trained on
    x, y = user["members"]
    with torch.no_grad():
        acc = float((user["model"]((x.float() / 255 - MEAN[0]) / STD[0]).argmax(1) == y).double().mean())
    assert frame.query("attack == '-' and source == 'train' and metric == 'accuracy'").value.item() == pytest.approx(acc)
    assert "train_seconds" not in set(frame.metric)  # the audit did not train the target
    # a second audit of the same model and data trains nothing
    trained_jobs.clear()
    audit(user, tmp_path, recipe=recipe)
    assert trained_jobs == []


def test_a_training_function_replaces_the_recipe(user, tmp_path, trained_jobs):
    calls = []

    def train(module, inputs, labels, *, seed, device):
        calls.append((type(module), len(inputs), seed))
        plain_train(module, inputs, labels, epochs=1, seed=seed % 1000)

    audit(user, tmp_path, train=train, attacks=["max_score", "lira"])
    assert len(calls) == 5 and all(c[0] is TinyCNN for c in calls)  # the user's module, not the wrapper
    assert {c[1] for c in calls} == {300, 200}  # shadow: 300 images; reference: half of 2 x (100 + 100)
    assert all(j.factory.fit is train for j in trained_jobs)
    with pytest.raises(overconf.core.errors.ConfigError, match="either recipe or a training function"):
        audit(user, tmp_path, train=train, recipe={"epochs": 1})


def test_a_mismatched_recipe_triggers_the_mimicry_warning(user, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="overconf"):
        result = audit(user, tmp_path, recipe={"optimizer": "adam", "lr": 1e-5, "epochs": 1, "batch_size": 64})
    f = result.frame.query("source == 'mimicry'").set_index("metric").value
    assert f["reference_mismatch"] == 1.0 and f["shadow_mismatch"] == 1.0
    train_acc = result.frame.query("source == 'train' and metric == 'reference_accuracy'").value.item()
    assert train_acc < 0.5  # one epoch at lr 1e-5: nowhere near the target's fit
    assert any("mimicry: the reference models" in r.message for r in caplog.records)
    summary = (result.run_dir / "summary.md").read_text()
    assert "do not train like the target" in summary and "## Mimicry" in summary and "**no**" in summary
    status = (result.run_dir / "status.json").read_text()
    assert "mimicry" in status
    # the tolerance decides: wide enough, no warning for the same models (all cached)
    wide = audit(user, tmp_path, recipe={"optimizer": "adam", "lr": 1e-5, "epochs": 1, "batch_size": 64},
                 mimicry={"accuracy": 1.0, "loss": 100.0})
    assert set(wide.frame.query("source == 'mimicry' and metric.str.endswith('mismatch')").value) == {0.0}


def test_an_overconf_model_audited_gives_the_rows_of_its_study(tmp_path):
    raw = copy.deepcopy(TINY)
    raw.update(models=[{"arch": "salem_cnn", "params": {"width": 4, "hidden": 16}}], sources=["test", "permuted", "gaussian"],
               attacks=["max_score", "loss", "lira", "rmia"], cache_dir=str(tmp_path / "cache"),
               output_dir=str(tmp_path / "runs"), reference={"num_models": 4, "population": 300})
    raw["recipe"]["epochs"] = 2
    cfg = config_from_dict(raw)
    study = Study(cfg)
    rows = study.run(report=False).rows
    ds, s = study.dataset, study.splits
    target = load_or_train(study.job(0, "target", cfg.models[0], cfg.settings[0]), study.cache, study.device)
    pick = lambda name: s.images(ds, name)  # noqa: E731
    public = [pick(n) for n in ("shadow_train", "shadow_test", "calibration", "reserve")]
    sizes = {k: len(getattr(s, k)) for k in ("shadow_train", "shadow_test", "calibration")}
    factory = functools.partial(build_model, "salem_cnn", in_channels=1, num_classes=10, image_size=28, width=4,
                                hidden=16)
    result = overconf.audit(
        factory=factory, target=target.model, members=pick("target_train"), nonmembers=pick("target_test"),
        public=(torch.cat([p[0] for p in public]), torch.cat([p[1] for p in public])),
        normalize={"mean": ds.mean.flatten().tolist(), "std": ds.std.flatten().tolist()}, recipe=raw["recipe"],
        model={"name": "salem_cnn"}, data={"eval_size": 200, "fit_size": 200, "shuffle_public": False, **sizes},
        sources=raw["sources"], attacks=raw["attacks"], reference=raw["reference"], metrics=raw["metrics"],
        report=raw["report"], device="cpu", progress=False, cache_dir=raw["cache_dir"], output_dir=raw["output_dir"])
    key = ("model", "seed", "setting", "attack", "source", "metric")
    audit_only = {"loss", "shadow_loss", "train_size", "shadow_train_size", "reference_train_size"}
    mine = {tuple(r[k] for k in key): r["value"] for r in result.rows
            if r["source"] != "mimicry" and r["metric"] not in audit_only and not r["metric"].startswith("reference_")}
    theirs = {tuple(r[k] for k in key): r["value"] for r in rows if not r["metric"].endswith("_seconds")}
    assert mine.keys() == theirs.keys()
    differ = {k: (mine[k], theirs[k]) for k in mine if not (mine[k] == theirs[k] or (mine[k] != mine[k] and theirs[k] != theirs[k]))}
    assert not differ, list(differ.items())[:5]
    assert len({r["attack"] for r in rows}) == 5  # '-', max_score, loss, lira_online, rmia_online


def test_overconf_audit_command_imports_the_factory_from_the_config_folder(user, tmp_path):
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "my_model.py").write_text(
        "import torch.nn.functional as F\nfrom torch import nn\n\n\nclass Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(1, 4, 3, padding=1)\n"
        "        self.fc = nn.Linear(4 * 7 * 7, 10)\n\n    def forward(self, x):\n"
        "        return self.fc(F.max_pool2d(F.relu(self.conv(x)), 4).flatten(1))\n\n\n"
        "def make():\n    return Net()\n")
    torch.save(user["model"].state_dict(), folder / "weights.pt")
    for part in ("members", "nonmembers", "public"):
        torch.save({"images": user[part][0], "labels": user[part][1]}, folder / f"{part}.pt")
    (folder / "audit.yaml").write_text(f"""
study: audit
name: cli_audit
device: cpu
progress: false
cache_dir: {tmp_path / 'cache'}
output_dir: {tmp_path / 'runs'}
model: {{factory: "my_model:make", weights: weights.pt}}
recipe: {{epochs: 1, batch_size: 64}}
data:
  members: {{tensors: members.pt}}
  nonmembers: {{tensors: nonmembers.pt}}
  public: {{tensors: public.pt}}
  eval_size: 100
normalize: {{mean: {MEAN}, std: {STD}}}
sources: [test, fake]
attacks: [max_score]
gan: {{steps: 4, batch_size: 16, train_images: 100, fid: {{enabled: false}}}}
metrics: {{bootstrap: 20}}
report: {{figures: false, tensorboard: false}}
""")
    from overconf.cli import main

    assert main(["audit", str(folder / "audit.yaml"), "--out", str(tmp_path / "out")]) == 0
    rows = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {r["source"] for r in rows if r["attack"] == "max_score"} >= {"test", "fake", "shadow"}
    assert "my_model:make" in (tmp_path / "out" / "audit.yaml").read_text()
    # a run folder never leads to the user's code: compare and analyze refuse an audit with one clear error
    assert main(["compare", str(tmp_path / "out")]) == 2 and main(["analyze", str(tmp_path / "out")]) == 2
    # 'overconf run' dispatches a study: audit config to the audit
    assert main(["run", str(folder / "audit.yaml"), "--out", str(tmp_path / "out2")]) == 0
    assert (tmp_path / "out2" / "audit.yaml").is_file()


def test_batched_reference_models_of_a_users_module(user, tmp_path):
    """reference.mode batched (auto on CUDA): the user's module, wrapped, trains under torch.func."""
    result = audit(user, tmp_path, recipe={"epochs": 2, "batch_size": 32}, attacks=["lira"],
                   reference={"num_models": 4, "mode": "batched"})
    from overconf.core.cache import Cache

    cache = Cache(tmp_path / "cache")
    stored = [cache.load("models", p.stem) for p in (tmp_path / "cache" / "models").glob("*.pt")]
    assert len(stored) == 6  # the target (stored from its weights), the shadow, 4 reference models
    assert sum(s.get("trainer") == "batched" for s in stored) == 4 and sum(bool(s.get("audited")) for s in stored) == 1
    assert result.frame.query("attack == 'lira_online' and source == 'test' and metric == 'auroc'").value.notna().all()
    assert result.frame.query("source == 'train' and metric == 'reference_accuracy'").value.item() > 0.3


def test_the_ray_executor_gives_the_local_rows(user, tmp_path):
    """Ray workers receive the user's factory by value (its module need not be importable there)."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        kw = dict(recipe={"epochs": 1, "batch_size": 64}, attacks=["max_score", "lira"])
        local = audit(user, tmp_path / "local", **kw).rows
        remote = audit(user, tmp_path / "ray", executor="ray", **kw).rows
    finally:
        if started:
            ray.shutdown()
    import pandas as pd

    assert pd.DataFrame(remote).equals(pd.DataFrame(local))  # the same rows, bit for bit (NaN where NaN)


def test_the_default_audit_runs_every_registered_attack(user, tmp_path):
    """``attacks: all`` (the default): every attack of the registry, at its defaults, on the user's model."""
    from overconf.runner.catalog import ATTACKS

    result = audit(user, tmp_path, recipe={"epochs": 1, "batch_size": 64}, attacks="all")
    labels = {ATTACKS[n]().label for n in ATTACKS.names()}  # QMIA too: it trains on data.calibration
    assert labels <= set(result.frame.attack)
    fpr = result.frame.query("source == 'gaussian' and metric == 'fpr' and attack != '-'")
    assert set(fpr.attack) == labels and fpr.value.between(0, 1).all()


def test_the_recipe_the_target_was_trained_with_passes_the_mimicry_check(user, tmp_path):
    """No false alarm: the user's own recipe (Adam 3e-3, batch 32, 12 epochs), and as many training
    images per reference model as the target had (half of 2 x (150 + 150) = 300)."""
    result = audit(user, tmp_path, recipe={"optimizer": "adam", "lr": 3e-3, "epochs": 12, "batch_size": 32},
                   data={"eval_size": 150, "fit_size": 150}, mimicry={"accuracy": 0.1, "loss": 0.3})
    f = result.frame.query("attack == '-'").set_index(["source", "metric"]).value
    assert f[("train", "reference_train_size")] == f[("train", "train_size")] == 300
    assert f[("mimicry", "reference_mismatch")] == 0 and f[("mimicry", "shadow_mismatch")] == 0
