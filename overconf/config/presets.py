"""The fast-recipe keys of :class:`~overconf.config.schema.Recipe` (its base class here, so the
schema module stays short) and the recipe presets of architectures (torch-free).

An architecture listed in :data:`RECIPE_PRESETS` trains with its preset over the study recipe, below
the model's and the setting's recipe overrides (``StudyConfig.recipe_for``); reference models whose
``reference.arch`` is listed (and differs from the shadow's) get it over the attacker's recipe,
below ``reference.recipe``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .convert import check


@dataclass
class FastRecipeKeys:
    """Recipe keys of the fast reference recipe (overconf/training/fast.py; Jordan 2024's airbench).
    Each is off at its default, and a key at its default stays out of every cache key."""

    nesterov: bool = False
    """SGD with Nesterov momentum"""
    flip: bool = False
    """augmentation: each training image mirrored with probability 1/2"""
    translate: int = 0
    """augmentation: each training image shifted by up to this many pixels (dx, dy uniform)"""
    ema: float = 0.0
    """> 0: an exponential moving average of the weights with this decay per step replaces the
    weights at the end of training (airbench's lookahead / EMA, in the plain EMA form)"""
    triangular: float = 0.0
    """> 0: triangular learning rate, 0.2 lr -> lr over this fraction of training, then -> 0; 0: constant"""

    def check_fast_keys(self) -> None:
        check(not self.nesterov or getattr(self, "momentum", 1) > 0, "recipe.nesterov needs recipe.momentum > 0")
        check(self.translate >= 0, f"recipe.translate must be >= 0 (pixels), got {self.translate}")
        check(0 <= self.ema < 1, f"recipe.ema must be in [0, 1) (a decay per step), got {self.ema}")
        check(0 <= self.triangular < 1, f"recipe.triangular must be in [0, 1) (the warm-up fraction), "
                                        f"got {self.triangular}")


RECIPE_PRESETS: dict[str, dict[str, Any]] = {
    "fast_cifar": dict(epochs=10, optimizer="sgd", nesterov=True, lr=1.5, momentum=0.85, weight_decay=1.3e-3,
                       batch_size=1024, label_smoothing=0.2, flip=True, translate=2, ema=0.98, triangular=0.23),
}
"""architecture -> recipe keys (fast_cifar: :data:`overconf.models.fast_cifar.RECIPE`, airbench's)"""


def recipe_preset(arch: str | None) -> dict[str, Any]:
    return dict(RECIPE_PRESETS.get(arch or "", {}))
