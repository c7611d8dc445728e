"""Classifier training on device-resident tensors (in the spirit of airbench).

The whole training set lives on the device; each epoch draws a permutation from a seeded
generator and slices batches from it. bf16 autocast and channels_last on CUDA. Losses are
accumulated on the device and read once per epoch, so the GPU is not waiting on Python.
Dropout draws from torch's global RNG inside :func:`isolated_rng`, so training is reproducible
and leaves the caller's RNG untouched; a :class:`TrainState` lets a killed run resume.
Training stops with :class:`~overconf.errors.TrainingDivergedError` after the first epoch whose
mean loss is non-finite or above ``DIVERGED_LOSS * log K`` (the loss of a uniform guess is log K).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from .config import Recipe
from .device import autocast, memory_format, to_device_images
from .errors import TrainingDivergedError
from .seeding import derive_seed, isolated_rng

DIVERGED_LOSS = 100.0
"""An epoch's mean loss above DIVERGED_LOSS * log(K) (100 times a uniform guess over K classes)
counts as diverged, like a non-finite one: no healthy training gets there."""


def divergence_error(desc: str, recipe: Recipe, detail: str) -> TrainingDivergedError:
    """The error for a diverged training: what happened and which recipe values to change."""
    values = f"optimizer={recipe.optimizer}, lr={recipe.lr:g}"
    if recipe.optimizer == "sgd":
        values += f", momentum={recipe.momentum:g}"
    values += f", batch_size={recipe.batch_size}, weight_decay={recipe.weight_decay:g}"
    return TrainingDivergedError(
        f"training of {desc} diverged ({detail}) with recipe {values}; lower recipe.lr (e.g. --set "
        f"recipe.lr={recipe.lr / 10:g}, or the lr of the model's or setting's recipe override) or change "
        f"recipe.optimizer / batch_size / weight_decay. Nothing was cached for this model")


def check_diverged(loss: float, num_classes: int, epoch: int, desc: str, recipe: Recipe) -> None:
    """Raise :func:`divergence_error` if an epoch's mean ``loss`` is non-finite or exploding."""
    if not math.isfinite(loss):
        raise divergence_error(desc, recipe, f"loss {loss} in epoch {epoch}")
    if loss > DIVERGED_LOSS * math.log(max(num_classes, 2)):
        raise divergence_error(desc, recipe, f"loss {loss:.4g} in epoch {epoch}, more than {DIVERGED_LOSS:g} "
                                             f"times the {math.log(max(num_classes, 2)):.3g} of a uniform guess")


def check_finite(state_dict: dict[str, torch.Tensor], desc: str, recipe: Recipe) -> None:
    """Raise :func:`divergence_error` if any floating-point parameter or buffer is NaN or infinite
    (called before a model is stored: a non-finite model is never cached)."""
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise divergence_error(desc, recipe, f"non-finite weights in {', '.join(bad[:3])}"
                                             f"{' ...' if len(bad) > 3 else ''}")


@dataclass
class TrainState:
    """Everything needed to continue training after ``epoch`` epochs."""

    epoch: int
    model: dict
    optimizer: dict
    batch_rng: torch.Tensor
    global_rng: torch.Tensor
    history: list[dict] = field(default_factory=list)


def make_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)


def classification_loss(recipe: Recipe) -> nn.Module:
    """Cross-entropy with label smoothing eps: (1 - eps) CE(z, y) + eps * mean_k(-log p_k)."""
    return nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)


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
) -> list[dict]:
    """Train ``model`` in place on inputs ``x`` (float, model space) and labels ``y``.

    Minimises cross-entropy with label smoothing ``recipe.label_smoothing``
    ((1 - eps) CE + eps * uniform CE) and L2 weight decay ``recipe.weight_decay``.
    Returns the per-epoch history (mean loss, accuracy)."""
    model.to(device, memory_format=memory_format(device))
    x = to_device_images(x, device)
    y = y.to(device)
    n, bs = len(x), recipe.batch_size
    optimizer = make_optimizer(model.parameters(), recipe)
    loss_fn = classification_loss(recipe)
    batches = torch.Generator(device=device)
    batches.manual_seed(derive_seed(seed, "batches"))
    history: list[dict] = []
    start = 0
    if resume is not None:
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        batches.set_state(resume.batch_rng)
        history, start = list(resume.history), resume.epoch

    with isolated_rng(derive_seed(seed, "dropout"), device):
        if resume is not None:
            _set_global_rng(resume.global_rng, device)
        bar = tqdm(range(start, recipe.epochs), desc=desc, disable=not progress, leave=False,
                   initial=start, total=recipe.epochs)
        for epoch in bar:
            model.train()
            t0 = time.perf_counter()
            perm = torch.randperm(n, generator=batches, device=device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            for i in range(0, n, bs):
                idx = perm[i: i + bs]
                xb, yb = x[idx], y[idx]
                with autocast(device):
                    out = model(xb)
                    loss = loss_fn(out, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach().float() * len(idx)
                correct += (out.detach().argmax(1) == yb).sum()
            stats = {"epoch": epoch + 1, "loss": loss_sum.item() / n, "accuracy": correct.item() / n,
                     "seconds": time.perf_counter() - t0}
            check_diverged(stats["loss"], out.shape[-1], epoch + 1, desc, recipe)  # before any state is saved
            history.append(stats)
            bar.set_postfix(loss=f"{stats['loss']:.4f}", acc=f"{stats['accuracy']:.3f}")
            if on_epoch is not None:
                on_epoch(TrainState(epoch + 1, model.state_dict(), optimizer.state_dict(),
                                    batches.get_state(), _get_global_rng(device), list(history)))
    model.eval()
    return history


def _get_global_rng(device: torch.device) -> torch.Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def _set_global_rng(state: torch.Tensor, device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)
