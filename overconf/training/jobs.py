"""Trained classifiers, cached by the content of everything that determines them.

A classifier's key hashes its training images and labels, normalization, architecture and
parameters, recipe and seed; of the recipe, the fields it had when keys were introduced and any
later field set to a non-default value (:data:`RECIPE_KEY_FIELDS`), so adding a recipe field with
a default keeps every cached model valid. Re-running a study loads every model that exists; changing one
setting retrains only the models it touches. During training a resumable state is saved at
most every ``checkpoint_every`` seconds, so a killed run continues where it stopped. Runs
sharing a cache train a model once: the second waits on the key's file lock and loads it. A
model with non-finite weights is never stored (:func:`overconf.training.step.check_finite`).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from overconf.core.cache import Cache, content_key, set_values, tensor_digest
from ..config import Recipe
from overconf.core.device import precision, to_cpu
from overconf.core.plain_data import is_state_dict_of
from ..models import Classifier, build_model
from overconf.core.seeding import isolated_rng
from .factory import ModelFactory
from .hooks import DEFAULT_HOOKS, TrainingHooks
from .loop import TrainState, train_classifier
from .step import check_finite

log = logging.getLogger(__name__)
TRAIN_VERSION = 1
RECIPE_KEY_FIELDS = ("epochs", "optimizer", "lr", "momentum", "batch_size", "weight_decay", "label_smoothing",
                     "dropout")
"""The :class:`~overconf.config.Recipe` fields of TRAIN_VERSION 1: they always enter a model's key
(as when the key held the whole recipe, so those keys are unchanged); a field added since enters
only when set to a non-default value (:func:`~overconf.core.cache.set_values`)."""


@dataclass
class ClassifierJob:
    """What determines a trained classifier."""

    arch: str
    recipe: Recipe
    seed: int
    images: torch.Tensor
    """uint8 training images [N, C, H, W]"""
    labels: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    num_classes: int
    params: dict[str, Any] = field(default_factory=dict)
    name: str = "model"
    """display name only (not part of the key)"""
    hooks: TrainingHooks | None = None
    """training hooks of a training-time defense (:mod:`overconf.training.hooks`); None: plain
    training. Keyed by ``hooks.describe()`` when set (a job without hooks keeps its key)."""
    precision: str = "float32"
    """of the training's forward passes (:func:`overconf.core.device.precision`: ``bfloat16`` under CUDA
    autocast); :func:`load_or_train` sets it from the device. Keyed only when not float32."""
    factory: ModelFactory | None = None
    """a user's model (:mod:`overconf.training.factory`, the audit): built instead of ``arch`` and
    trained by the user's function when it has one; keyed by ``factory.describe()`` when set"""

    @property
    def key(self) -> str:
        what = {
            "kind": "classifier", "version": TRAIN_VERSION, "arch": self.arch, "params": self.params,
            "recipe": set_values(self.recipe, RECIPE_KEY_FIELDS), "seed": self.seed,
            "images": tensor_digest(self.images), "labels": tensor_digest(self.labels),
            "mean": self.mean, "std": self.std, "num_classes": self.num_classes,
        }
        if self.hooks is not None:
            what["hooks"] = self.hooks.describe()
        if self.precision != "float32":
            what["precision"] = self.precision
        if self.factory is not None:
            what["factory"] = self.factory.describe()
        return content_key(what)

    def build(self) -> Classifier:
        c, h, _ = self.images.shape[1:]
        with isolated_rng(self.seed):
            if self.factory is not None:
                model = self.factory.build(self.num_classes)
            else:
                model = build_model(self.arch, in_channels=c, num_classes=self.num_classes, image_size=h,
                                    dropout=self.recipe.dropout, **self.params)
            return model if self.hooks is None else self.hooks.prepare_model(model)

    def inputs(self) -> torch.Tensor:
        return self.normalize(self.images)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> this model's input space: (x / 255 - mean) / std."""
        return (images.float() / 255 - self.mean) / self.std


@dataclass
class TrainedClassifier:
    key: str
    model: Classifier
    history: list[dict]
    job: ClassifierJob
    train_seconds: float = float("nan")
    """wall seconds of the training, summed over resumed parts; stored with the model (NaN for a
    model stored before overconf recorded it). Not part of the key."""
    train_cpu_seconds: float = float("nan")
    """the same in CPU seconds of the process (``time.process_time``): robust to a shared CPU"""


def load_or_train(job: ClassifierJob, cache: Cache, device: torch.device, *, progress: bool = True,
                  checkpoint_every: float = 60.0) -> TrainedClassifier:
    """The trained model of ``job`` on ``device`` (keyed with the device's precision), from the
    cache or trained and stored."""
    job = dataclasses.replace(job, precision=precision(device))
    key = job.key
    model = job.build()
    valid = stored_model_of(model)
    found = _finite_or_none(cache.load("models", key, valid), cache, key, job.name)
    if found is None:
        with cache.lock("models", key, job.name):  # another run may be training it: wait, then reuse
            found = cache.load("models", key, valid)
            if found is None:
                return _train_and_store(job, model, cache, device, progress, checkpoint_every)
    cache.hits += 1
    model.load_state_dict(found["state_dict"])
    return TrainedClassifier(key, model.to(device).eval(), found["history"], job,
                             *(float(found.get(k, float("nan"))) for k in ("train_seconds", "train_cpu_seconds")))


def stored_model_of(model: torch.nn.Module):
    """The structure check of a ``models`` entry of ``model`` (:meth:`Cache.load`'s ``valid``): its
    state dict fits the architecture and its history is a list of epochs."""
    template = model.state_dict()
    return lambda d: is_state_dict_of(d["state_dict"], template) and isinstance(d["history"], list)


def resumable_state_of(model: torch.nn.Module):
    """The structure check of a classifier's ``partial`` entry: a :class:`TrainState` of ``model``."""
    template = model.state_dict()
    allowed = {f.name for f in dataclasses.fields(TrainState)} | {"train_seconds", "train_cpu_seconds"}
    needed = {"epoch", "model", "optimizer", "batch_rng", "global_rng"}
    return lambda d: (needed <= d.keys() <= allowed and isinstance(d["epoch"], int)
                      and is_state_dict_of(d["model"], template) and isinstance(d["optimizer"], dict))


def _finite_or_none(found: dict | None, cache: Cache, key: str, name: str) -> dict | None:
    """A stored model with non-finite weights (cached by an overconf without the check) is
    discarded and retrained rather than used."""
    if found is not None and not all(bool(torch.isfinite(v).all()) for v in found["state_dict"].values()
                                     if v.is_floating_point()):
        log.warning("cached model of %s has non-finite weights; discarding it and training again", name)
        cache.discard("models", key)
        return None
    return found


def _train_and_store(job: ClassifierJob, model: Classifier, cache: Cache, device: torch.device, progress: bool,
                     checkpoint_every: float) -> TrainedClassifier:
    key = job.key
    cache.misses += 1
    resume = cache.load("partial", key, resumable_state_of(model))
    before, cpu_before = ((float(resume.pop("train_seconds", 0.0)), float(resume.pop("train_cpu_seconds", 0.0)))
                          if resume is not None else (0.0, 0.0))  # resumed: the earlier parts' time
    resume_state = TrainState(**resume) if resume is not None else None
    if resume_state is not None:
        log.info("resuming %s from epoch %d", job.name, resume_state.epoch)
    save_partial = cache.partial_saver(key, checkpoint_every)

    def on_epoch(state: TrainState) -> None:
        if state.epoch < job.recipe.epochs:
            save_partial(lambda: dataclasses.asdict(state) | {"model": to_cpu(state.model),
                                                              "optimizer": to_cpu(state.optimizer),
                                                              "train_seconds": before + time.perf_counter() - t0,
                                                              "train_cpu_seconds": cpu_before + time.process_time() - c0})

    t0, c0 = time.perf_counter(), time.process_time()

    if job.factory is not None and job.factory.trains:  # the user's training function (the audit)
        history = job.factory.train(model, job.inputs(), job.labels, seed=job.seed, device=device, name=job.name)
    else:
        history = train_classifier(model, job.inputs(), job.labels, job.recipe, seed=job.seed, device=device,
                                   resume=resume_state, on_epoch=on_epoch, progress=progress, desc=job.name,
                                   hooks=job.hooks or DEFAULT_HOOKS)
    seconds, cpu = before + time.perf_counter() - t0, cpu_before + time.process_time() - c0
    state_dict = to_cpu(model.state_dict())
    check_finite(state_dict, job.name, job.recipe)
    cache.save("models", key, {"state_dict": state_dict, "history": history,
                               "arch": job.arch, "params": job.params,
                               "recipe": dataclasses.asdict(job.recipe), "seed": job.seed, "train_seconds": seconds,
                               "train_cpu_seconds": cpu})
    cache.discard("partial", key)
    return TrainedClassifier(key, model.eval(), history, job, seconds, cpu)
