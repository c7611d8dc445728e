"""Training hooks: the four things a training-time defense changes, with defaults that are plain
training (shuffled epochs, mean gradient, label-smoothed cross-entropy, fixed epochs).

Both loops (:func:`~overconf.training.loop.train_classifier` and
:func:`~overconf.training.batched.train_batched`) call the same hooks at the same points:

- :meth:`TrainingHooks.batches`: the batches of one epoch, as index tensors, drawn from the model's
  seeded batch generator (the batched loop asks :meth:`TrainingHooks.group_batches`, by default
  each model's batches stacked step by step, so every step must give each model a batch of the
  same size, or pad with -1 rows, which the loop masks: batched DP-SGD's Poisson batches);
- :meth:`TrainingHooks.prepare_model`: the model a job trains (DP-SGD: BatchNorm -> GroupNorm);
- :meth:`TrainingHooks.loss`: the loss function ``loss(logits, labels, reduction="mean")``;
- :meth:`TrainingHooks.gradient`: sets ``p.grad`` of every parameter for one step from the step's
  loss (and :class:`Batch`);
- :meth:`TrainingHooks.stop`: after each epoch (after the divergence check), whether to stop before
  ``recipe.epochs``.

The single-model loop also calls :meth:`TrainingHooks.begin` before its first epoch (with the state
:meth:`TrainingHooks.saved` returned when a killed training resumes: a stateful defense, early
stopping's best epoch or adversarial regularisation's inference model, resumes exactly),
:meth:`TrainingHooks.init_inputs` for a data-dependent init (``init_from_data``) and
:meth:`TrainingHooks.released` for the weights it releases at the end.

A job with hooks other than the defaults must say so in its cache key (``ClassifierJob.hooks``,
keyed by :meth:`TrainingHooks.describe`); a job without hooks keeps its key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..config import Recipe
from .step import classification_loss


@dataclass(frozen=True)
class Batch:
    """One step's data: inputs, labels and their row indices into the training tensors (single
    loop: [B, ...], [B], [B]; batched loop: [G, B, ...], [G, B], [G, B])."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    model: Any = None
    """the model being trained (single loop only; None in the batched loop): what per-sample
    gradient hooks (DP-SGD) call functionally"""
    mask: Any = None
    """batched loop: bool [G, B], False for padding rows (index -1 in :meth:`TrainingHooks.group_batches`,
    gathered as row 0; they must not count); None when every row is real"""
    functional: Any = None
    """batched loop: ``(module, params, buffers)``: a stateless copy of the architecture and the
    stacked ``{name: [G, ...]}`` parameters and buffers, so hooks can call
    ``functional_call(module, (params_j, buffers_j), x)`` per model (batched DP-SGD)"""


class TrainingHooks:
    """Plain training; subclass and override what a defense changes. Hooks must draw randomness
    only from the generators they are given or seed themselves (:mod:`overconf.core.seeding`)."""

    stateful = False
    """True when the hooks keep state across epochs (:meth:`saved`): a resumable state without it
    (stored by an older overconf) is not resumed, the training restarts (same key, same model)"""

    def begin(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int,
              saved: Any = None) -> None:
        """Single loop, before the first epoch of a training (fresh or resumed): the model, its training
        inputs and labels (on the device), the job's seed and what :meth:`saved` returned after the
        epoch the training resumes from (None: a fresh training). Default: nothing."""

    def saved(self) -> Any:
        """After an epoch's :meth:`stop`: the hooks' own state for the resumable
        :class:`~overconf.training.loop.TrainState` (detached copies, CPU), or None. Default: None."""
        return None

    def init_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The inputs a data-dependent init (``model.init_from_data``, fast_cifar's whitening) is
        fitted on. Default: the training inputs ``x``; DP-SGD: held-out inputs (the private training
        data would void the guarantee)."""
        return x

    def released(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The state dict the training releases, given the one it would release (the model's, or
        its weight average with ``recipe.ema``). Default: ``weights``; early stopping: the
        validated weights of the chosen epoch."""
        return weights

    def batches(self, n: int, batch_size: int, generator: torch.Generator,
                device: torch.device) -> list[torch.Tensor]:
        """(a) Sampling: one epoch's batches of indices into the n training points. Default: a
        seeded permutation cut into batches of ``batch_size`` (the last one may be smaller)."""
        perm = torch.randperm(n, generator=generator, device=device)
        return [perm[i: i + batch_size] for i in range(0, n, batch_size)]

    def group_batches(self, n: int, batch_size: int, generators: list[torch.Generator],
                      device: torch.device) -> list[torch.Tensor]:
        """(a, batched loop) One epoch's steps for G models at once: [G, B] index tensors, row j from
        model j's generator; -1 marks a padding row (models whose batches differ in size, e.g.
        Poisson sampling). Default: each model's :meth:`batches`, stacked step by step."""
        per_model = [self.batches(n, batch_size, g, device) for g in generators]
        return [torch.stack(step) for step in zip(*per_model, strict=True)]

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model a job trains, from the freshly built architecture (called by
        :meth:`~overconf.training.jobs.ClassifierJob.build` when the job has hooks). Default: itself;
        DP-SGD swaps BatchNorm for GroupNorm (opacus' ``ModuleValidator.fix``)."""
        return model

    def loss(self, recipe: Recipe) -> Callable[..., torch.Tensor]:
        """(c) The loss ``loss(logits, labels, reduction="mean")``. Default: cross-entropy with
        label smoothing ``recipe.label_smoothing`` (:class:`~overconf.training.step.SmoothedCrossEntropy`)."""
        return classification_loss(recipe)

    def gradient(self, loss: torch.Tensor, params: list[torch.Tensor], batch: Batch) -> None:
        """(b) This step's gradient into ``p.grad`` (the grads are None on entry). Default: the
        gradient of the batch's mean loss (batched loop: of the sum of the models' mean losses, so
        each model gets its own)."""
        loss.backward()

    def stop(self, state: Any) -> bool:
        """(d) After an epoch, given its :class:`~overconf.training.loop.TrainState` (batched:
        :class:`~overconf.training.batched.GroupState`), whether to stop now. Default: never
        (``recipe.epochs`` epochs)."""
        return False

    def describe(self) -> dict[str, Any]:
        """What a model's cache key records of these hooks: their class and settings. Override to
        list the settings (e.g. ``{"kind": "dp_sgd", "noise_multiplier": 1.1, "max_grad_norm": 1.0}``)."""
        return {"class": f"{type(self).__module__}.{type(self).__qualname__}"}


DEFAULT_HOOKS = TrainingHooks()
