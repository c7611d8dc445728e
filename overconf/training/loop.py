"""Single-model training on device-resident tensors (in the spirit of airbench).

The whole training set lives on the device; each epoch the hooks draw its batches (default: a
permutation from a seeded generator, sliced into batches). bf16 autocast and channels_last on CUDA.
Losses are accumulated on the device and read once per epoch, so the GPU is not waiting on Python.
Dropout draws from torch's global RNG inside :func:`isolated_rng`, so training is reproducible
and leaves the caller's RNG untouched; a :class:`TrainState` lets a killed run resume. Loss, step
and divergence checks are those of :mod:`.step`, shared with the batched loop.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from overconf.core.device import fixed_threads
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import Recipe
from overconf.core.device import autocast, memory_format, to_device_images
from overconf.core.seeding import derive_seed, isolated_rng
from .fast import WeightAverage, augment, set_lr, weight_average
from .hooks import DEFAULT_HOOKS, Batch, TrainingHooks
from .step import check_diverged, get_global_rng, make_optimizer, optimizer_step, set_global_rng

log = logging.getLogger(__name__)

@dataclass
class TrainState:
    """Everything needed to continue training after ``epoch`` epochs."""

    epoch: int
    model: dict
    optimizer: dict
    batch_rng: torch.Tensor
    global_rng: torch.Tensor
    history: list[dict] = field(default_factory=list)
    ema: dict | None = None
    """the weight average (``recipe.ema`` > 0), on the CPU"""
    hooks: Any = None
    """the training hooks' own state (:meth:`~overconf.training.hooks.TrainingHooks.saved`), or None"""

    def released_weights(self) -> dict:
        """The weights the training would release if it ended now: the weight average with
        ``recipe.ema``, else the model's (what early stopping validates)."""
        if self.ema is None:
            return self.model
        return {k: v for k, v in self.ema.items() if k != WeightAverage.STEPS}


@fixed_threads
def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: Recipe,
    *,
    seed: int,
    device: torch.device,
    resume: TrainState | None = None,
    on_epoch: Callable[[TrainState], None] | None = None,
    progress: bool = True,
    desc: str = "train",
    hooks: TrainingHooks = DEFAULT_HOOKS,
) -> list[dict]:
    """Train ``model`` in place on inputs ``x`` (float, model space) and labels ``y``.

    Minimises ``hooks.loss(recipe)`` (default: cross-entropy with label smoothing
    ``recipe.label_smoothing``, (1 - eps) CE + eps * uniform CE) with L2 weight decay
    ``recipe.weight_decay``, for ``recipe.epochs`` epochs unless ``hooks.stop`` ends it sooner.
    The fast-recipe keys (``flip``, ``translate``, ``ema``, ``triangular``: :mod:`.fast`) act when set;
    a model with ``init_from_data(x)`` (fast_cifar's whitening) gets it before the first epoch, on
    ``hooks.init_inputs(x)``. ``on_epoch`` gets the resumable state after every epoch that training
    continues from (not after the epoch a hook stops at). The released weights are
    ``hooks.released`` of the model's (or of its weight average). Returns the per-epoch history
    (mean loss, accuracy)."""
    model.to(device, memory_format=memory_format(device))
    x = to_device_images(x, device)
    y = y.to(device)
    if resume is not None and hooks.stateful and resume.hooks is None:
        log.warning("%s: the resumable state lacks the training hooks' state; training from scratch", desc)
        resume = None
    if resume is None and hasattr(model, "init_from_data"):
        model.init_from_data(hooks.init_inputs(x).to(device))
    n, bs = len(x), recipe.batch_size
    params = list(model.parameters())
    optimizer = make_optimizer(params, recipe)
    loss_fn = hooks.loss(recipe)
    batches = torch.Generator(device=device)
    batches.manual_seed(derive_seed(seed, "batches"))
    history: list[dict] = []
    start = 0
    if resume is not None:
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        batches.set_state(resume.batch_rng)
        history, start = list(resume.history), resume.epoch
    average = weight_average(model, recipe, resume.ema if resume is not None else None)
    hooks.begin(model, x, y, seed, resume.hooks if resume is not None else None)

    with isolated_rng(derive_seed(seed, "dropout"), device):
        if resume is not None:
            set_global_rng(resume.global_rng, device)
        bar = tqdm(range(start, recipe.epochs), desc=desc, disable=not progress, leave=False,
                   initial=start, total=recipe.epochs)
        for epoch in bar:
            model.train()
            t0 = time.perf_counter()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen = 0
            epoch_batches = hooks.batches(n, bs, batches, device)
            for i, idx in enumerate(epoch_batches):
                xb, yb = augment(x[idx], recipe, batches), y[idx]
                set_lr(optimizer, recipe, (epoch + i / len(epoch_batches)) / recipe.epochs)
                with autocast(device):
                    out = model(xb)
                    loss = loss_fn(out, yb)
                optimizer_step(optimizer, loss, params, hooks, Batch(xb, yb, idx, model))
                if average is not None:
                    average.update(model)
                loss_sum += loss.detach().float() * len(idx)
                correct += (out.detach().argmax(1) == yb).sum()
                seen += len(idx)
            stats = {"epoch": epoch + 1, "loss": loss_sum.item() / seen, "accuracy": correct.item() / seen,
                     "seconds": time.perf_counter() - t0}
            check_diverged(stats["loss"], out.shape[-1], epoch + 1, desc, recipe)  # before any state is saved
            history.append(stats)
            bar.set_postfix(loss=f"{stats['loss']:.4f}", acc=f"{stats['accuracy']:.3f}")
            state = TrainState(epoch + 1, model.state_dict(), optimizer.state_dict(), batches.get_state(),
                               get_global_rng(device), list(history),
                               average.saved() if average is not None else None)
            stop = hooks.stop(state)
            state.hooks = hooks.saved()
            if stop:
                break
            if on_epoch is not None:
                on_epoch(state)
    weights = average.state if average is not None else model.state_dict()
    released = hooks.released(weights)
    if average is not None or released is not weights:
        model.load_state_dict(released)
    model.eval()
    return history
