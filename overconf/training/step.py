"""The loss, the optimizer and the step: defined once, used by the single-model loop
(:mod:`.loop`) and the batched one (:mod:`.batched`); plus the divergence checks of both.

Loss: cross-entropy with label smoothing eps (Szegedy et al. 2016),
(1 - eps) CE(z, y) + eps * mean_k(-log p_k). Step: zero the gradients, let the hooks form this
step's gradient (:meth:`~overconf.training.hooks.TrainingHooks.gradient`; by default the gradient
of the loss), apply the optimizer. Training stops with
:class:`~overconf.core.errors.TrainingDivergedError` after the first epoch whose mean loss is non-finite
or above ``DIVERGED_LOSS * log K`` (the loss of a uniform guess is log K).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import Recipe
from overconf.core.errors import TrainingDivergedError

DIVERGED_LOSS = 100.0
"""An epoch's mean loss above DIVERGED_LOSS * log(K) (100 times a uniform guess over K classes)
counts as diverged, like a non-finite one: no healthy training gets there."""


class SmoothedCrossEntropy:
    """(1 - eps) CE(z, y) + eps * mean_k(-log p_k), eps = ``label_smoothing``: the loss of every
    classifier, shadow and reference model. ``reduction`` as in ``F.cross_entropy``: the single
    loop takes the batch mean, the batched loop per-sample losses ([G * B] -> per-model means)."""

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return F.cross_entropy(logits, labels, reduction=reduction, label_smoothing=self.label_smoothing)

    def __repr__(self) -> str:
        return f"SmoothedCrossEntropy(label_smoothing={self.label_smoothing})"


class SoftmaxMSE(SmoothedCrossEntropy):
    """sum_k (softmax(z)_k - t_k)^2 with t = (1 - eps) onehot(y) + eps / K (``recipe.loss: mse``,
    the MSE arm of Baluta et al.'s factor grid); ``reduction`` as in :class:`SmoothedCrossEntropy`."""

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        k = logits.shape[-1]
        target = F.one_hot(labels, k).to(logits.dtype) * (1 - self.label_smoothing) + self.label_smoothing / k
        per = (logits.softmax(-1) - target).square().sum(-1)
        return per.mean() if reduction == "mean" else per.sum() if reduction == "sum" else per

    def __repr__(self) -> str:
        return f"SoftmaxMSE(label_smoothing={self.label_smoothing})"


def classification_loss(recipe: Recipe) -> SmoothedCrossEntropy:
    """The recipe's loss: cross-entropy with label smoothing ``recipe.label_smoothing``, or the
    softmax MSE when ``recipe.loss`` is ``mse``."""
    if getattr(recipe, "loss", "cross_entropy") == "mse":
        return SoftmaxMSE(recipe.label_smoothing)
    return SmoothedCrossEntropy(recipe.label_smoothing)


def make_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    """Adam or SGD (momentum, Nesterov's with ``recipe.nesterov``) with L2 weight decay; both act elementwise, so one optimizer over
    stacked parameters is exactly one optimizer per model (the batched loop relies on it)."""
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                           nesterov=bool(recipe.nesterov))


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: list[torch.Tensor],
                   hooks, batch) -> None:
    """One step: zero the gradients, ``hooks.gradient(loss, params, batch)`` sets ``p.grad``
    (default: ``loss.backward()``), then the optimizer updates ``params``."""
    optimizer.zero_grad(set_to_none=True)
    hooks.gradient(loss, params, batch)
    optimizer.step()


def divergence_error(desc: str, recipe: Recipe, detail: str) -> TrainingDivergedError:
    """The error for a diverged training: what happened and which recipe values to change."""
    values = f"optimizer={recipe.optimizer}, lr={recipe.lr:g}"
    if recipe.optimizer == "sgd":
        values += f", momentum={recipe.momentum:g}"
    values += f", batch_size={recipe.batch_size}, weight_decay={recipe.weight_decay:g}"
    lower = recipe.lr / 10
    example = (f"e.g. --set recipe.lr={lower:g}" if math.isfinite(lower) and lower > 0
               else "a finite value such as --set recipe.lr=0.001")  # never suggest inf, nan or 0
    return TrainingDivergedError(
        f"training of {desc} diverged ({detail}) with recipe {values}; lower recipe.lr ({example}, or the lr "
        f"of the model's or setting's recipe override) or change "
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


def get_global_rng(device: torch.device) -> torch.Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def set_global_rng(state: torch.Tensor, device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)
