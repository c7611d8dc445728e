"""The factor grid's data and models: disjoint blocks per repeat, one cached model per
(configuration, repeat), trained by the study's one trainer (Baluta et al. 2022, seed 000).

Train pool (a stratified seeded order, :func:`overconf.data.splits.stratified_order`): R blocks of
``max(train_sizes)`` images (repeat r trains on the first ``train_size`` of block r, so every
configuration of a repeat draws from the same images), then a held-out calibration block. With
``grid.models_per_repeat`` M >= 2: R x M blocks, model j of repeat r on block r M + j.
With ``grid.splits: random`` (the paper's) repeat r splits one pool of max(2, M) x max(train_sizes)
images at random into its models' training sets instead (with M >= 2 each point is trained on by
one model per repeat, the paper's), so training sets overlap and each point is trained on by
several models (TrainVar > 0); the shadows then share some data with the target.
Test pool: R blocks of ``test_size`` (repeat r's non-members), then the block the derived
non-member sources (``permuted``) are made from. Blocks never overlap, so for the model of repeat r
the other repeats' models are shadows trained like it on disjoint data of the same distribution.
The R models of a configuration share architecture, recipe and size: they train at once
(:func:`~overconf.training.batched.train_batched`) when the architecture has no BatchNorm, and each
is stored under its own :class:`~overconf.training.jobs.ClassifierJob` key.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from overconf.core.cache import Cache
from overconf.config.factors import FactorsConfig
from overconf.data import SOURCES, ImageDataset, SourceContext, SourceData, Splits
from overconf.data.sources import image_digests, without_members
from overconf.data.splits import stratified_order
from overconf.core.errors import ConfigError
from overconf.signals.outputs import Outputs, cached_outputs
from overconf.core.seeding import derive_seed, generator
from overconf.training.batched import has_batchnorm, train_batched
from overconf.training.jobs import ClassifierJob, TrainedClassifier, load_or_train, stored_model_of

log = logging.getLogger(__name__)


@dataclass
class Blocks:
    """Index tensors into the dataset's train / test pools."""

    train: list[torch.Tensor]
    """R x M blocks of max(train_sizes) train-pool indices (block r * M + j: model j of repeat r)"""
    calibration: torch.Tensor
    test: list[torch.Tensor]
    """R blocks of test_size test-pool indices"""
    source: torch.Tensor


def make_blocks(ds: ImageDataset, cfg: FactorsConfig) -> Blocks:
    r, n, d, m = cfg.grid.repeats, max(cfg.grid.train_sizes), cfg.data, cfg.grid.models_per_repeat
    pool_size = max(2, m) * n if cfg.grid.splits == "random" else r * m * n
    need_train, need_test = pool_size + d.calibration_size, r * d.test_size + d.source_size
    for pool, need, have, what in (("train", need_train, len(ds.train_y),
                                    f"training pool (grid.repeats x grid.models_per_repeat x max(grid.train_sizes), "
                                    f"max(2, grid.models_per_repeat) x max(grid.train_sizes) with grid.splits: random) "
                                    f"+ data.calibration_size = {pool_size} + {d.calibration_size}"),
                                   ("test", need_test, len(ds.test_y),
                                    f"grid.repeats x data.test_size + data.source_size = {r} x {d.test_size} + "
                                    f"{d.source_size}")):
        if need > have:
            raise ConfigError(f"{what} = {need} exceeds the {have} images of {ds.name}'s {pool} pool; lower these sizes")
    tr = stratified_order(ds.train_y, generator(cfg.seed, "factors", "train"))
    te = stratified_order(ds.test_y, generator(cfg.seed, "factors", "test"))
    if cfg.grid.splits == "random":  # the paper's: a different random split of one pool per repeat
        perms = [tr[:pool_size][torch.randperm(pool_size, generator=generator(cfg.seed, "factors", "split", i))]
                 for i in range(r)]
        train = [perms[i][j * n:(j + 1) * n] for i in range(r) for j in range(m)]
    else:
        train = [tr[i * n:(i + 1) * n] for i in range(r * m)]
    return Blocks(train, tr[pool_size:need_train],
                  [te[i * d.test_size:(i + 1) * d.test_size] for i in range(r)], te[r * d.test_size:need_test])


def job_for(cfg: FactorsConfig, ds: ImageDataset, blocks: Blocks, conf: dict, repeat: int,
            model: int = 0) -> ClassifierJob:
    """Model ``model`` of ``conf`` (a row of :meth:`FactorsConfig.configurations`) and ``repeat``."""
    idx = blocks.train[repeat * cfg.grid.models_per_repeat + model][: conf["train_size"]]
    extra = ("model", model) if model else ()
    recipe = cfg.recipe.updated({"weight_decay": conf["weight_decay"], "label_smoothing": conf["label_smoothing"],
                                 "loss": conf["loss"]}, f"configuration {conf['config']}")
    params = dict(cfg.grid.params) | {cfg.grid.width_param: conf["width"]}
    return ClassifierJob(cfg.grid.arch, recipe, derive_seed(cfg.seed, "factors", "repeat", repeat, *extra),
                         ds.train_x[idx], ds.train_y[idx], ds.mean, ds.std, ds.num_classes, params=params,
                         name=f"config {conf['config']} repeat {repeat}" + (f" model {model}" if model else ""))


def train_configuration(jobs: list[ClassifierJob], cache: Cache, device: torch.device,
                        progress: bool = False) -> list[TrainedClassifier]:
    """The models of one configuration: from the cache, else trained (batched when every missing
    model can be) and stored under each job's key."""
    missing = [j for j in jobs if cache.load("models", j.key, stored_model_of(j.build())) is None]
    if len(missing) >= 2 and not has_batchnorm(missing[0].build()):
        n = len(missing[0].labels)
        x = torch.cat([j.inputs() for j in missing])
        y = torch.cat([j.labels for j in missing])
        keep = torch.zeros(len(missing) * n, len(missing), dtype=torch.bool)
        for i in range(len(missing)):
            keep[i * n:(i + 1) * n, i] = True
        states, histories = train_batched([j.build() for j in missing], x, y, keep, missing[0].recipe,
                                          seeds=[j.seed for j in missing],
                                          dropout_seed=derive_seed(missing[0].seed, "factors", "dropout"),
                                          device=device, progress=progress, desc=missing[0].name)
        for j, sd, h in zip(missing, states, histories):
            cache.misses += 1
            cache.save("models", j.key, {"state_dict": sd, "history": h, "arch": j.arch, "params": j.params,
                                         "recipe": j.recipe.__dict__.copy(), "seed": j.seed})
    return [load_or_train(j, cache, device, progress=progress) for j in jobs]


def outputs(cache: Cache, trained: TrainedClassifier, x: torch.Tensor, y: torch.Tensor,
            device: torch.device) -> Outputs:
    return cached_outputs(cache, trained.key, trained.model, x, y, device)


def build_sources(cfg: FactorsConfig, ds: ImageDataset, blocks: Blocks, cache: Cache,
                  device: torch.device) -> dict[str, SourceData]:
    """The non-member sources (OOD, noise, transformed test images), none holding a training image."""
    empty = torch.empty(0, dtype=torch.long)
    splits = Splits(torch.cat(blocks.train), empty, blocks.calibration, empty, blocks.source, empty)
    members = set(image_digests(torch.cat([ds.train_x[b] for b in blocks.train])))
    out = {}
    for comp in cfg.sources:
        label = comp.params.get("label", comp.name)
        params = {k: v for k, v in comp.params.items() if k != "label"}
        ctx = SourceContext(ds, splits, cfg.data.source_size, generator(cfg.seed, "source", label), cfg.seed,
                            cfg.data.root, cfg.data.download, device, cache, False)
        out[label] = without_members(label, SOURCES[comp.name](ctx, **params), members, "remove")
    return out
