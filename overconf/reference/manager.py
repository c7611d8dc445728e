"""The reference-model manager: K models on a balanced keep matrix, cached, resumable, and their
outputs stored per (reference model, input set) so that attacks never run a network.

Reference data (the points the keep matrix ranges over) are, in this order:
``target_train[:eval_size]``, ``target_test[:eval_size]``, ``shadow_train[:fit_size]``,
``shadow_test[:fit_size]`` and ``reserve[:extra_points]``. So every target evaluation point (the
members and the ``test`` source) and every shadow fit point is IN for exactly half of the models. Inputs made from target-test images (the ``permuted``,
``scaled`` and ``unnormalized`` sources) carry the keep status of the image they were made from;
any other input (OOD data, noise) is OUT for every model. RMIA's population sample z is drawn
(seeded) from the rest of the reserve, so no model, target or shadow ever trained on it.

Reference models follow the attacker's recipe, the shadow model's (the setting's recipe, or with
``attacker: uncalibrated`` the study recipe without the setting's overrides), with ``reference.recipe``
overrides (a ``reference.arch`` with a recipe preset, such as fast_cifar, gets the preset in between:
``overconf.config.presets``), and the target's architecture (an audit: the user's model factory,
``ClassifierJob.factory``) unless ``reference.arch`` is set: the target's and the shadow's queries share
one reference set. Model k has seed ``derive_seed(seed, "reference", k)`` and is keyed by its training
data (the keep column's images and labels), architecture, recipe, seed and trainer: sequential models
are ordinary :class:`~overconf.training.jobs.ClassifierJob` entries; batched ones are keyed with
``trainer: batched`` (their floating-point results differ slightly). Batched groups save a resumable
state at most every minute, and each finished model is stored on its own, so a killed run keeps every
finished model.
"""
from __future__ import annotations

import logging
import weakref
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import torch

from overconf.core.cache import Cache, content_key, set_values, tensor_digest
from ..config import Recipe
from ..config.presets import recipe_preset
from overconf.signals.contexts import SeedContext
from overconf.core.errors import ConfigError
from overconf.core.device import precision, to_cpu
from ..models import build_model
from overconf.core.seeding import derive_seed, generator
from ..training.jobs import ClassifierJob, load_or_train, stored_model_of
from ..training.batched import GroupState, has_batchnorm, is_group_state, train_batched
from ..training.factory import ModelFactory
from ..training.hooks import DEFAULT_HOOKS, TrainingHooks
from .logits import stacked_logits
from .keep import balanced_keep

log = logging.getLogger(__name__)

POOLS = ("train", "test")
REFERENCE_VERSION = 1


@dataclass
class ReferenceSet:
    """K reference models over the reference data (pool, index) with keep matrix ``keep``."""

    arch: str
    params: dict[str, Any]
    recipe: Recipe
    images: torch.Tensor
    """uint8 reference data [n, C, H, W]"""
    labels: torch.Tensor
    pool: torch.Tensor
    """[n] 0 = the dataset's train pool, 1 = its test pool"""
    index: torch.Tensor
    """[n] index in that pool"""
    keep: torch.Tensor
    """bool [n, K]: point i trains model k"""
    seeds: list[int]
    mean: torch.Tensor
    std: torch.Tensor
    num_classes: int
    mode: str
    """'batched' or 'sequential'"""
    group_size: int
    population_x: torch.Tensor
    """model inputs of RMIA's population sample z [Z, C, H, W]"""
    population_labels: torch.Tensor
    hooks: TrainingHooks | None = None
    """training hooks of every reference model (:mod:`overconf.training.hooks`); None: plain training"""
    precision: str = "float32"
    """of training and scoring (:func:`overconf.core.device.precision` of the device): keyed when not float32"""
    factory: ModelFactory | None = None
    """the user's model (an audit, :mod:`overconf.training.factory`): every reference model is built by it"""

    @property
    def num_models(self) -> int:
        return self.keep.shape[1]

    def job(self, k: int) -> ClassifierJob:
        member = self.keep[:, k]
        return ClassifierJob(self.arch, self.recipe, self.seeds[k], self.images[member], self.labels[member],
                             self.mean, self.std, self.num_classes, params=self.params,
                             name=f"reference {k}/{self.num_models} {self.arch}", hooks=self.hooks,
                             precision=self.precision, factory=self.factory)

    @cached_property
    def model_keys(self) -> list[str]:
        keys = []
        for k in range(self.num_models):
            key = self.job(k).key
            keys.append(key if self.mode == "sequential" else
                        content_key({"kind": "reference_model", "trainer": "batched", "job": key}))
        return keys

    @cached_property
    def key(self) -> str:
        return content_key({"kind": "reference_set", "version": REFERENCE_VERSION, "models": self.model_keys})

    def groups(self) -> list[list[int]]:
        k, g = self.num_models, self.group_size
        return [list(range(i, min(i + g, k))) for i in range(0, k, g)]

    def template(self) -> torch.nn.Module:
        return self.job(0).build()

    def inputs(self) -> torch.Tensor:
        return (self.images.float() / 255 - self.mean) / self.std

    # ------------------------------------------------------------------ membership of queried points
    def keep_for(self, pool: str | None, pool_index: torch.Tensor | None, n: int) -> torch.Tensor:
        """bool [n, K]: which models trained on each queried point, i.e. on the pool image it is
        or was made from (all False for points outside the reference data: OOD, noise, other
        splits)."""
        out = torch.zeros(n, self.num_models, dtype=torch.bool)
        if pool is None or pool_index is None:
            return out
        p = POOLS.index(pool)
        sel = self.pool == p
        size = int(max(int(self.index[sel].max()) if sel.any() else 0, int(pool_index.max()) if n else 0)) + 1
        row = torch.full((size,), -1, dtype=torch.long)
        row[self.index[sel]] = sel.nonzero().squeeze(1)
        rows = row[pool_index]
        found = rows >= 0
        out[found] = self.keep[rows[found]]
        return out

    # ------------------------------------------------------------------ models
    def state_dicts(self, ks: list[int], cache: Cache, device: torch.device,
                    progress: bool = False) -> list[dict[str, torch.Tensor]]:
        """State dicts of models ``ks``, training (or resuming) the ones the cache lacks."""
        valid = stored_model_of(self.template())  # a stored entry must fit the architecture
        found = {k: cache.load("models", self.model_keys[k], valid) for k in ks}
        missing = [k for k in ks if found[k] is None]
        cache.hits += len(ks) - len(missing)
        if missing:
            log.info("reference models %d-%d of %d: training %d (%s, %s)", ks[0], ks[-1], self.num_models,
                     len(missing), self.arch, self.mode)
            if self.mode == "sequential":  # load_or_train counts its own cache miss
                for k in missing:
                    t = load_or_train(self.job(k), cache, device, progress=progress)
                    found[k] = {"state_dict": {n: v.detach().cpu() for n, v in t.model.state_dict().items()}}
            else:
                cache.misses += len(missing)
                for k, sd in zip(missing, self._train_group(missing, cache, device, progress)):
                    found[k] = {"state_dict": sd}
        return [found[k]["state_dict"] for k in ks]

    def _train_group(self, ks: list[int], cache: Cache, device: torch.device, progress: bool,
                     checkpoint_every: float = 60.0) -> list[dict[str, torch.Tensor]]:
        """Under the group's file lock: another run sharing the cache may have trained them meanwhile."""
        group_key = content_key({"kind": "reference_group", "models": [self.model_keys[k] for k in ks]})
        with cache.lock("partial", group_key, f"reference models {ks[0]}-{ks[-1]}"):
            valid = stored_model_of(self.template())
            stored = [cache.load("models", self.model_keys[k], valid) for k in ks]
            if all(s is not None for s in stored):
                return [s["state_dict"] for s in stored]
            return self._train_group_unlocked(ks, cache, device, progress, checkpoint_every)

    def _train_group_unlocked(self, ks: list[int], cache: Cache, device: torch.device, progress: bool,
                              checkpoint_every: float = 60.0) -> list[dict[str, torch.Tensor]]:
        models = [self.job(k).build() for k in ks]
        group_key = content_key({"kind": "reference_group", "models": [self.model_keys[k] for k in ks]})
        resume = cache.load("partial", group_key, is_group_state)
        if resume is not None:
            log.info("resuming reference models %s from epoch %d", ks, resume["epoch"])
        save_partial = cache.partial_saver(group_key, checkpoint_every)

        def on_epoch(state: GroupState) -> None:
            if state.epoch < self.recipe.epochs:
                save_partial(lambda: {
                    "epoch": state.epoch, "params": to_cpu(state.params), "optimizer": to_cpu(state.optimizer),
                    "batch_rngs": to_cpu(state.batch_rngs), "global_rng": to_cpu(state.global_rng),
                    "histories": state.histories})

        seeds = [self.seeds[k] for k in ks]
        sds, histories = train_batched(
            models, self.inputs(), self.labels, self.keep[:, ks], self.recipe, seeds=seeds,
            dropout_seed=derive_seed(0, "reference", "dropout", *seeds), device=device,
            resume=GroupState(**resume) if resume is not None else None, on_epoch=on_epoch,
            progress=progress, desc=f"reference models {ks[0]}-{ks[-1]} of {self.num_models} (batched)",
            hooks=self.hooks or DEFAULT_HOOKS)
        for k, sd, hist in zip(ks, sds, histories):
            cache.save("models", self.model_keys[k], {
                "state_dict": sd, "history": hist, "arch": self.arch, "params": self.params,
                "recipe": asdict(self.recipe), "seed": self.seeds[k], "trainer": "batched"})
        cache.discard("partial", group_key)
        return sds

    # ------------------------------------------------------------------ outputs
    def logits(self, x: torch.Tensor, cache: Cache, device: torch.device, progress: bool = False) -> torch.Tensor:
        """float32 [N, K, C]: every reference model's logits on ``x`` (model inputs), in eval mode,
        computed once per (reference model, input set) and cached."""
        digest = tensor_digest(x)
        scored = {"precision": precision(device)} if precision(device) != "float32" else {}
        out: dict[int, torch.Tensor] = {}
        template = None
        for group in self.groups():
            keys = {k: content_key({"kind": "reference_outputs", "version": REFERENCE_VERSION,
                                    "model": self.model_keys[k], "x": digest, **scored}) for k in group}
            for k in group:
                found = cache.load("reference_outputs", keys[k], lambda t: t.shape == (len(x), self.num_classes))
                if found is not None:
                    out[k] = found
            need = [k for k in group if k not in out]
            if not need:
                continue
            template = template or self.template()
            sds = self.state_dicts(need, cache, device, progress)
            stacked = stacked_logits(template, sds, x, device)
            for j, k in enumerate(need):
                out[k] = stacked[j].clone()
                cache.save("reference_outputs", keys[k], out[k])
        return torch.stack([out[k] for k in range(self.num_models)], 1)


# ---------------------------------------------------------------------------- from a seed of a study

_SETS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def reference_spec(ctx: SeedContext, job: ClassifierJob) -> tuple[str, dict, Recipe]:
    """(architecture, params, recipe) of the reference models for the attacker whose shadow model
    is trained by ``job`` (the attacker trains reference models as it trains its shadow)."""
    r = ctx.reference
    arch, params = (r.arch, dict(r.params)) if r.arch else (job.arch, dict(job.params))
    recipe = job.recipe.updated(recipe_preset(arch) if arch != job.arch else {}, f"the {arch} recipe preset")
    return arch, params, recipe.updated(r.recipe, "reference.recipe")


def resolve_mode(mode: str, template: torch.nn.Module, device: torch.device) -> str:
    """auto: batched on CUDA for models without BatchNorm, else sequential (batched training
    through grouped convolutions is slower than a loop on the CPU, see scripts/bench.py)."""
    if mode == "auto":
        return "batched" if device.type == "cuda" and not has_batchnorm(template) else "sequential"
    return mode


def reference_points(ctx: SeedContext) -> tuple[torch.Tensor, torch.Tensor]:
    """(pool, index) of the reference data: see the module docstring."""
    s, d, r = ctx.splits, ctx.data, ctx.reference
    parts = [(0, s.target_train[: d.eval_size]), (1, s.target_test[: d.eval_size]),
             (0, s.shadow_train[: d.fit_size]), (1, s.shadow_test[: d.fit_size]),
             (0, s.reserve[: r.extra_points])]
    pool = torch.cat([torch.full((len(i),), p, dtype=torch.long) for p, i in parts])
    return pool, torch.cat([i for _, i in parts])


def population_index(ctx: SeedContext) -> torch.Tensor:
    """RMIA's population sample z: a seeded sample of the reserve beyond the reference data."""
    rest = ctx.splits.reserve[ctx.reference.extra_points:]
    perm = torch.randperm(len(rest), generator=generator(ctx.seed, "reference", "population"))
    return rest[perm[: ctx.reference.population]]


def reference_set(ctx: SeedContext, job: ClassifierJob) -> ReferenceSet:
    """The reference set of the attacker whose shadow model ``job`` trains in the seed ``ctx``
    (memoised per seed context, architecture and recipe)."""
    arch, params, recipe = reference_spec(ctx, job)
    factory = None if ctx.reference.arch else job.factory  # an audit: the user's model, unless reference.arch
    memo = _SETS.setdefault(ctx, {})
    what = {"seed": ctx.seed, "arch": arch, "params": params, "recipe": set_values(recipe),
            "factory": None if factory is None else factory.describe()}
    if job.hooks is not None:  # the attacker's training-time defense (aware): its reference models too
        what["hooks"] = job.hooks.describe()
    spec = content_key(what)
    if spec in memo:
        return memo[spec]
    r, ds = ctx.reference, ctx.dataset
    pool, index = reference_points(ctx)
    images = torch.empty((len(index), *ds.shape), dtype=torch.uint8)
    labels = torch.empty(len(index), dtype=torch.long)
    for p, (x, y) in enumerate(((ds.train_x, ds.train_y), (ds.test_x, ds.test_y))):
        sel = pool == p
        images[sel], labels[sel] = x[index[sel]], y[index[sel]]
    keep = balanced_keep(len(index), r.num_models, generator(ctx.seed, "reference", "keep"))
    z = population_index(ctx)
    rs = ReferenceSet(arch, params, recipe, images, labels, pool, index, keep,
                      [derive_seed(ctx.seed, "reference", k) for k in range(r.num_models)], ds.mean, ds.std,
                      ds.num_classes, "sequential", r.group_size, ds.normalize(ds.train_x[z]), ds.train_y[z],
                      hooks=job.hooks, precision=precision(ctx.device), factory=factory)
    rs.mode = resolve_mode(r.mode, rs.template(), ctx.device)
    if rs.mode == "batched" and not getattr(job.hooks, "batched", True):
        log.info("reference models of %s train sequentially: its training hooks (%s) need the single-model "
                 "loop", job.name, job.hooks.describe().get("kind", "custom"))
        rs.mode = "sequential"
    memo[spec] = rs
    return rs


def check_reference(ctx: SeedContext) -> None:
    """Before any training: the reserve holds the extra reference points and the population
    sample; batched mode gets no BatchNorm architecture."""
    r, ds = ctx.reference, ctx.dataset
    reserve = len(ctx.splits.reserve)
    if r.extra_points + r.population > reserve:
        raise ConfigError(
            f"reference.extra_points ({r.extra_points}) + reference.population ({r.population}) exceed the "
            f"{reserve} reserve images of the train pool; lower them or the data.splits sizes")
    c, h, _ = ds.shape
    for m in ctx.models:
        arch, params = (r.arch, r.params) if r.arch else (m.arch, m.params)
        if r.mode == "batched":
            model = build_model(arch, in_channels=c, num_classes=ds.num_classes, image_size=h, **params)
            if has_batchnorm(model):
                raise ConfigError(
                    f"reference.mode = batched cannot train '{arch}' (it has BatchNorm layers); use "
                    f"reference.mode = sequential or auto, or set reference.arch to a model without BatchNorm")
