"""Recipe presets of architectures (torch-free): an architecture listed here trains with its preset
over the study recipe, below the model's and the setting's recipe overrides
(``StudyConfig.recipe_for``); reference models whose ``reference.arch`` is listed get it over the
attacker's recipe, below ``reference.recipe``."""
from __future__ import annotations

from typing import Any

RECIPE_PRESETS: dict[str, dict[str, Any]] = {
    "fast_cifar": dict(epochs=10, optimizer="sgd", nesterov=True, lr=1.5, momentum=0.85, weight_decay=1.3e-3,
                       batch_size=1024, label_smoothing=0.2, flip=True, translate=2, ema=0.98, triangular=0.23),
}
"""architecture -> recipe keys (fast_cifar: :data:`overconf.models.fast_cifar.RECIPE`, airbench's)"""


def recipe_preset(arch: str | None) -> dict[str, Any]:
    return dict(RECIPE_PRESETS.get(arch or "", {}))
