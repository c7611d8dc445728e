"""Components read explicit, immutable contexts (overconf.signals.contexts, overconf.signals.cell_hooks), never the Study."""
from __future__ import annotations

import copy
import dataclasses
from types import SimpleNamespace

import pytest
import torch

from overconf.core.cache import Cache
from overconf.config import DataConfig, GanConfig, MetricsConfig, ModelSpec, ReferenceConfig, SplitSizes
from overconf.signals.contexts import SeedContext
from overconf.data import SOURCES, SourceContext, load_dataset, make_splits
from overconf.core.errors import ConfigError
from overconf.gan.models import dcgan
from overconf.signals.cell_hooks import CELL_HOOKS, CellContext
from overconf.reference.manager import check_reference, reference_points
from overconf.signals.producers import SignalContext

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def fmnist():
    return load_dataset("fashion_mnist")


def seed_ctx(fmnist, tmp_path, **reference) -> SeedContext:
    splits = make_splits(fmnist, SplitSizes(400, 400, 200, 300, 300), 0)
    return SeedContext(0, fmnist, splits, Cache(tmp_path), CPU, DataConfig(eval_size=50, fit_size=40),
                       ReferenceConfig(**reference), GanConfig(), MetricsConfig(), (ModelSpec("salem_cnn"),))


def test_signal_context_carries_a_seed_context_not_the_study():
    names = {f.name for f in dataclasses.fields(SignalContext)}
    assert "study" not in names and "context" in names
    ctx = SignalContext(torch.nn.Identity(), "m", torch.zeros(2, 1), torch.zeros(2), "target", "members", CPU,
                        None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.role = "shadow"


def test_seed_context_is_frozen_and_keys_memos_by_identity(fmnist, tmp_path):
    ctx = seed_ctx(fmnist, tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.seed = 1
    assert len({ctx, seed_ctx(fmnist, tmp_path)}) == 2  # hashable (memo key), by identity


def test_reference_models_read_the_seed_context(fmnist, tmp_path):
    ctx = seed_ctx(fmnist, tmp_path, extra_points=2, population=10)
    pool, index = reference_points(ctx)
    assert len(index) == 2 * 50 + 2 * 40 + 2
    assert torch.equal(index[:50], ctx.splits.target_train[:50])
    check_reference(ctx)
    too_many = seed_ctx(fmnist, tmp_path, population=len(ctx.splits.reserve) + 1)
    with pytest.raises(ConfigError, match="reserve"):
        check_reference(too_many)


def test_gan_sources_take_their_generator_from_the_context_and_never_train(fmnist, tmp_path):
    """The data layer samples the generator it is handed (the runner's trained-artifact cache)."""
    splits = make_splits(fmnist, SplitSizes(400, 400, 200, 300, 300), 0)
    bare = SourceContext(fmnist, splits, 12, torch.Generator().manual_seed(0), 0)
    with pytest.raises(ConfigError, match="generator_for"):
        SOURCES["fake"](bare)
    asked = []
    g = dcgan(latent_dim=8, width=8, channels=1, image_size=28, num_classes=0)[0].eval()

    def generator_for(conditional: bool):
        asked.append(conditional)
        return SimpleNamespace(generator=g, seconds=0.0, job=SimpleNamespace(images=torch.zeros(3), recipe=SimpleNamespace(steps=0)))

    gan = GanConfig()
    gan.fid.enabled = False
    ctx = dataclasses.replace(bare, gan=gan, generator_for=generator_for, cache=Cache(tmp_path))
    data = SOURCES["fake"](ctx)
    assert asked == [False] and data.x.shape == (12, 1, 28, 28)
    assert data.info == {"gan_train_seconds": 0.0, "gan_train_images": 3, "gan_steps": 0}


def test_post_cell_hooks_are_registered_and_get_contexts(tiny_raw, tmp_path, monkeypatch):
    """The GAN analyses are one registered hook; a new hook runs on every cell with the contexts."""
    from overconf.runner.study import Study
    from overconf.runner.validation import config_from_dict

    assert "gan" in CELL_HOOKS
    seen = []

    def probe(ctx, cell):
        seen.append((ctx, cell))
        cell.extensions["probe"] = cell.setting
        return [("-", "probe", "fitted_attacks", float(len(cell.fitted)))]

    monkeypatch.setitem(CELL_HOOKS._items, "probe", probe)
    raw = copy.deepcopy(tiny_raw) | {"recipe": {"epochs": 1, "lr": 0.003, "batch_size": 64},
                                     "sources": ["test"], "attacks": ["max_score", "entropy"]}
    result = Study(config_from_dict(raw), tmp_path / "run").run(report=False)
    (ctx, cell), = seen
    assert isinstance(ctx, SeedContext) and isinstance(cell, CellContext)
    assert ctx.seed == 0 and ctx.splits is not None and cell.setting == "baseline"
    assert result.cells[0].extensions["probe"] == "baseline"
    rows = [r for r in result.rows if r["source"] == "probe"]
    assert [(r["metric"], r["value"]) for r in rows] == [("fitted_attacks", 2.0)]
