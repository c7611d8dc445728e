"""fast_cifar (airbench-style, Jordan 2024) and the fast-recipe keys: shapes, the patch-whitening
init (checked through the convolution itself), frozen whitening, learning, seeded
reproducibility and resumption, augmentation, EMA and schedule against direct formulas, the
preset and ``reference.arch=fast_cifar``."""
import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from overconf.data.augment import random_flip_translate
from overconf.config import Recipe
from overconf.config.presets import RECIPE_PRESETS
from overconf.models import build_model
from overconf.models import fast_cifar
from overconf.training import train_classifier
from overconf.training.fast import WeightAverage, lr_factor

CPU = torch.device("cpu")
SMALL = {"widths": [8, 16, 16]}


def small(c=3, size=16, classes=4, **kw):
    from overconf.core.seeding import isolated_rng
    with isolated_rng(0):  # as ClassifierJob.build
        return build_model("fast_cifar", in_channels=c, num_classes=classes, image_size=size, **SMALL, **kw)


def correlated_images(n=200, c=3, size=16, seed=0):
    """Images with strongly correlated neighbouring pixels and channels (unlike white noise)."""
    g = torch.Generator().manual_seed(seed)
    base = F.avg_pool2d(torch.randn(n, 1, size + 3, size + 3, generator=g), 4, stride=1)
    return base.repeat(1, c, 1, 1) + 0.3 * torch.randn(n, c, size, size, generator=g)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 16, 16)])
def test_shapes(shape):
    c, h, _ = shape
    m = build_model("fast_cifar", in_channels=c, num_classes=7, image_size=h, **SMALL).eval()
    x = torch.randn(3, *shape)
    assert m.whiten.out_channels == 2 * c * 4 and m.whiten.kernel_size == (2, 2)
    assert m.features(x).shape == (3, 16) and m(x).shape == (3, 7)
    full = build_model("fast_cifar", in_channels=3, num_classes=10, image_size=32)
    assert full.head.in_features == 256 and 1.5e6 < sum(p.numel() for p in full.parameters()) < 2.5e6


def test_too_small_images_are_a_config_error():
    from overconf.core.errors import ConfigError
    with pytest.raises(ConfigError, match="at least 16 pixels"):
        build_model("fast_cifar", in_channels=3, num_classes=10, image_size=8)


def test_whitening_init_makes_the_patch_second_moment_the_identity():
    x = correlated_images()
    m = small(whiten_eps=1e-9)
    m.init_from_data(x)
    d = 3 * 4
    w = m.whiten.weight
    assert torch.equal(w[d:], -w[:d])  # the filters and their negatives
    # responses of the conv itself (independent of the unfold layout used to build the filters)
    r = F.conv2d(x.double(), w[:d].double()).permute(0, 2, 3, 1).reshape(-1, d)
    moment = r.T @ r / len(r)
    assert torch.allclose(moment, torch.eye(d, dtype=torch.double), atol=1e-4)
    raw = F.conv2d(x.double(), torch.eye(d, dtype=torch.double).view(d, 3, 2, 2)).permute(0, 2, 3, 1).reshape(-1, d)
    assert (raw.T @ raw / len(raw) - torch.eye(d, dtype=torch.double)).abs().max() > 0.5  # it was far from I
    # with the default eps: diag(lambda / (lambda + eps)) exactly (numpy's eigenvalues as reference)
    import numpy as np
    lam = np.linalg.eigvalsh((raw.T @ raw / len(raw)).numpy())
    m2 = small()
    m2.init_from_data(x)
    r2 = F.conv2d(x.double(), m2.whiten.weight[:d].double()).permute(0, 2, 3, 1).reshape(-1, d)
    got = (r2.T @ r2 / len(r2)).numpy()
    assert np.allclose(np.sort(np.diag(got)), np.sort(lam / (lam + 5e-4)), atol=1e-5)
    assert np.allclose(got - np.diag(np.diag(got)), 0, atol=1e-5)


def toy_task(n=128, seed=0):
    x = correlated_images(n, seed=seed)
    y = (x[:, :, :8].mean((1, 2, 3)) > x[:, :, 8:].mean((1, 2, 3))).long() * 2 + (x[:, 0].std((1, 2)) > 0.5).long()
    return x, y


def recipe(**kw):
    return Recipe(**{**RECIPE_PRESETS["fast_cifar"], "epochs": 4, "batch_size": 32, "lr": 0.1, **kw})


def test_training_reduces_the_loss_keeps_the_whitening_frozen_and_is_seeded():
    x, y = toy_task()
    m = small()
    init_bias = m.whiten.bias.detach().clone()
    hist = train_classifier(m, x, y, recipe(), seed=0, device=CPU, progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"]
    expected = fast_cifar.whitening_filters(x[:5000].float(), 2, 5e-4)
    assert torch.allclose(m.whiten.weight, expected)  # initialised from the data, then frozen
    assert not torch.equal(m.whiten.bias, init_bias)  # the bias trains
    again = small()
    train_classifier(again, x, y, recipe(), seed=0, device=CPU, progress=False)
    other = small()
    train_classifier(other, x, y, recipe(), seed=1, device=CPU, progress=False)
    sd, sd2, sd3 = m.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)
    assert not all(torch.equal(sd[k], sd3[k]) for k in sd)  # the seed draws batches and augmentations


def test_a_resumed_training_equals_an_uninterrupted_one():
    from overconf.training.loop import TrainState

    x, y = toy_task(64)
    r = recipe(epochs=3)
    full = small()
    train_classifier(full, x, y, r, seed=3, device=CPU, progress=False)
    states = []
    part = small()
    train_classifier(part, x, y, dataclasses.replace(r), seed=3, device=CPU, progress=False,
                     on_epoch=lambda s: states.append(copy.deepcopy(s)))  # as stored on disk
    first = states[0]
    assert first.ema is not None
    resumed = small()
    train_classifier(resumed, x, y, r, seed=3, device=CPU, progress=False, resume=TrainState(**{
        f.name: getattr(first, f.name) for f in dataclasses.fields(TrainState)}))
    a, b = full.state_dict(), resumed.state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float()) for k in a)


def test_flip_translate_against_direct_shifts():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 2, 9, 9, generator=g)
    out = random_flip_translate(x, True, 2, torch.Generator().manual_seed(1))
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    found = []
    for i in range(len(x)):
        match = [(f, dx, dy) for f in (False, True) for dx in range(-2, 3) for dy in range(-2, 3)
                 if torch.equal(out[i], (lambda p: p[:, 2 - dy: 11 - dy, 2 - dx: 11 - dx])(
                     F.pad((x[i].flip(-1) if f else x[i])[None], (2, 2, 2, 2), mode="reflect")[0]))]
        assert match, i
        found.append(match[0])
    flips = sum(f for f, _, _ in found) / len(found)
    assert 0.4 < flips < 0.6
    assert {dx for _, dx, _ in found} == set(range(-2, 3)) and {dy for _, _, dy in found} == set(range(-2, 3))
    assert torch.equal(random_flip_translate(x, False, 0, g), x)
    assert padded.shape[-1] == 13


def test_weight_average_and_schedule_follow_their_formulas():
    m = torch.nn.Linear(3, 2)
    avg = WeightAverage(m, 0.9)
    w0 = m.weight.detach().clone()
    expected = w0.clone()
    for step in range(1, 101):
        with torch.no_grad():
            m.weight.add_(step / 10)
        avg.update(m)
        d = min(0.9, step / (step + 9))  # warm-up: 0.1 at step 1, 0.9 from step 81
        expected = d * expected + (1 - d) * m.weight.detach()
    assert avg.decay_at(1) == pytest.approx(0.1) and avg.decay_at(1000) == 0.9
    assert torch.allclose(avg.state["weight"], expected)
    assert avg.saved()["__steps__"] == 100
    avg.apply(m)
    assert torch.allclose(m.weight, expected)
    r = Recipe(triangular=0.25)
    assert [lr_factor(r, p) for p in (0, 0.125, 0.25, 0.625, 1)] == pytest.approx([0.2, 0.6, 1, 0.5, 0])
    assert lr_factor(Recipe(), 0.7) == 1


def test_fast_keys_are_checked_and_keep_old_keys():
    from overconf.core.errors import ConfigError
    for bad in ({"ema": 1.0}, {"translate": -1}, {"triangular": 1.0}, {"nesterov": True, "momentum": 0.0}):
        with pytest.raises(ConfigError, match="recipe."):
            Recipe(**bad)
    assert fast_cifar.RECIPE == RECIPE_PRESETS["fast_cifar"]


def test_the_preset_applies_to_fast_cifar_models_and_reference_models():
    from overconf.reference.manager import reference_spec, resolve_mode
    from overconf.runner.validation import load_config

    cfg = load_config("experiments/tiny.yaml", ["reference.arch=fast_cifar", "reference.recipe.epochs=1"])
    assert cfg.reference.arch == "fast_cifar"
    model, setting = cfg.models[0], cfg.settings[0] if isinstance(cfg.settings, list) else next(iter(cfg.settings.values()))
    shadow_recipe = cfg.recipe_for(model, setting)
    assert shadow_recipe.optimizer == "adam" and not shadow_recipe.flip  # salem_cnn: no preset

    class Ctx:
        reference = cfg.reference

    class Job:
        arch, params, recipe = model.arch, model.params, shadow_recipe

    arch, params, r = reference_spec(Ctx, Job)
    assert arch == "fast_cifar" and r.epochs == 1  # reference.recipe over the preset
    assert (r.optimizer, r.nesterov, r.flip, r.translate, r.ema, r.label_smoothing) == ("sgd", True, True, 2, 0.98, 0.2)
    assert resolve_mode("auto", small(), torch.device("cuda")) == "sequential"  # BatchNorm: not batched
    from overconf.config.schema import ModelSpec
    fc = cfg.recipe_for(ModelSpec("fast_cifar", recipe={"epochs": 3}), setting)
    assert fc.epochs == 3 and fc.lr == 1.5 and fc.nesterov


def test_result_columns_show_the_preset_keys_with_each_models_value():
    from overconf.config.row_columns import study_columns
    from overconf.runner.validation import load_config

    cfg = load_config("experiments/tiny.yaml", ["models=[salem_cnn, {arch: fast_cifar, params: {widths: [8, 16, 16]}}]"])
    cols = study_columns(cfg)
    by_arch = {c["arch"]: c for c in cols.values()}
    assert by_arch["fast_cifar"]["recipe.nesterov"] is True and by_arch["salem_cnn"]["recipe.nesterov"] is False
    assert by_arch["fast_cifar"]["recipe.lr"] == 1.5 and by_arch["salem_cnn"]["recipe.lr"] == 0.003
    plain = study_columns(load_config("experiments/tiny.yaml", []))  # without fast_cifar: columns as before
    assert not any(k.startswith("recipe.") for c in plain.values() for k in c)


def test_augmentation_keeps_the_layout():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 8, 8)
    assert random_flip_translate(x, True, 2, g).is_contiguous()
    cl = x.contiguous(memory_format=torch.channels_last)
    assert random_flip_translate(cl, True, 2, g).is_contiguous(memory_format=torch.channels_last)


def test_a_study_with_fast_cifar_reference_models(tiny_raw, tmp_path):
    """``reference.arch: fast_cifar`` end to end: the reference set uses fast_cifar with its preset
    (under ``reference.recipe``), trains sequentially and LiRA gets its rows."""
    from overconf.reference import manager
    from overconf.runner.study import Study
    from overconf.runner.validation import config_from_dict

    raw = copy.deepcopy(tiny_raw)
    raw["sources"], raw["attacks"] = ["test"], ["lira"]
    raw["data"] = dict(raw["data"], eval_size=100, fit_size=100)
    raw["recipe"] = dict(raw["recipe"], epochs=1)
    raw["reference"] = {"num_models": 4, "population": 50, "arch": "fast_cifar", "params": {"widths": [8, 16, 16]},
                        "recipe": {"epochs": 1, "batch_size": 64, "lr": 0.2}}
    study = Study(config_from_dict(raw), tmp_path / "run")
    result = study.run(report=False)
    (rs,) = manager._SETS[study.context].values()
    assert rs.arch == "fast_cifar" and rs.mode == "sequential"
    assert (rs.recipe.optimizer, rs.recipe.nesterov, rs.recipe.ema, rs.recipe.epochs, rs.recipe.lr) == ("sgd", True, 0.98, 1, 0.2)
    assert study.cfg.recipe_for(study.cfg.models[0], study.cfg.settings[0]).optimizer == raw["recipe"].get("optimizer", "adam")
    got = {r["metric"]: r["value"] for r in result.rows if r["attack"] == "lira_online" and r["source"] == "test"}
    assert 0 <= got["fpr"] <= 1 and 0 <= got["auroc"] <= 1
