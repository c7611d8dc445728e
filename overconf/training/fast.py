"""The fast-recipe parts of the single-model loop (airbench, Jordan 2024): flip / translate
augmentation, an exponential moving average (EMA) of the weights, a triangular learning rate.
Each is off at its recipe default, so a recipe without them trains exactly as before.
"""
from __future__ import annotations

import torch
from torch import nn

from overconf.data.augment import random_flip_translate
from ..config import Recipe


def augments(recipe: Recipe) -> bool:
    return bool(recipe.flip) or recipe.translate > 0


def augment(x: torch.Tensor, recipe: Recipe, generator: torch.Generator) -> torch.Tensor:
    """The recipe's augmentation of one batch (:func:`overconf.data.augment.random_flip_translate`),
    drawn from the loop's seeded batch generator (saved with a resumable state)."""
    return random_flip_translate(x, recipe.flip, recipe.translate, generator) if augments(recipe) else x


def lr_factor(recipe: Recipe, progress: float) -> float:
    """Triangular schedule at ``progress`` in [0, 1] of training (Smith 2017; airbench's
    ``interp(step, [0, warmup, total], [0.2, 1, 0])``): 0.2 -> 1 over the first ``recipe.triangular``
    of training, then 1 -> 0 at the end. 1 when ``recipe.triangular`` is 0 (constant lr)."""
    w = recipe.triangular
    if w <= 0:
        return 1.0
    if progress < w:
        return 0.2 + 0.8 * progress / w
    return max(0.0, (1 - progress) / (1 - w))


def set_lr(optimizer: torch.optim.Optimizer, recipe: Recipe, progress: float) -> None:
    if recipe.triangular > 0:
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr * lr_factor(recipe, progress)


class WeightAverage:
    """EMA of a model's floating-point state (parameters and BatchNorm statistics, as airbench's
    lookahead state): after step t (1, 2, ...) ``avg <- d_t avg + (1 - d_t) current`` with the warm-up
    ``d_t = min(decay, t / (t + 9))`` (TensorFlow's ExponentialMovingAverage with ``num_updates``), so the
    average forgets the initial weights within the first steps instead of keeping decay^t of them;
    integer buffers are copied. The loop releases :attr:`state` at the end (through the hooks'
    ``released``: early stopping releases the validated average of its chosen epoch); :meth:`apply`
    loads it into a model."""

    STEPS = "__steps__"

    def __init__(self, model: nn.Module, decay: float, state: dict[str, torch.Tensor] | None = None):
        self.decay = decay
        current = model.state_dict()
        self.steps = int(state[self.STEPS]) if state is not None else 0
        self.state = {k: (state[k].to(v.device) if state is not None else v.detach().clone())
                      for k, v in current.items()}

    def decay_at(self, step: int) -> float:
        return min(self.decay, step / (step + 9))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        d = self.decay_at(self.steps)
        current = model.state_dict()
        floats = [k for k, v in self.state.items() if v.is_floating_point()]
        if floats:
            torch._foreach_lerp_([self.state[k] for k in floats], [current[k].detach() for k in floats], 1 - d)
        for k, v in self.state.items():
            if not v.is_floating_point():
                v.copy_(current[k])

    def saved(self) -> dict[str, torch.Tensor]:
        """The state for a resumable :class:`~overconf.training.loop.TrainState`, on the CPU."""
        return {**{k: v.cpu() for k, v in self.state.items()}, self.STEPS: torch.tensor(self.steps)}

    def apply(self, model: nn.Module) -> None:
        model.load_state_dict(self.state)


def weight_average(model: nn.Module, recipe: Recipe, state: dict | None = None) -> WeightAverage | None:
    return WeightAverage(model, recipe.ema, state) if recipe.ema > 0 else None
