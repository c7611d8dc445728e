"""Regularisers as training-time defenses that are recipe keys: ``{name: label_smoothing, value:
0.1}`` trains the setting's models as the recipe override ``label_smoothing: 0.1`` would (same
model cache key). Label smoothing (Szegedy et al. 2016), L2 weight decay (``l2`` ->
``weight_decay``), dropout (Srivastava et al. 2014)."""
from __future__ import annotations

import dataclasses

from overconf.core.errors import ConfigError
from .base import DEFENSES, Defense


class RecipeDefense(Defense):
    kind = "training"
    recipe_key = ""

    def __init__(self, value: float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"defense {self.name}: value = {value!r} must be a number, e.g. "
                              f"{{name: {self.name}, value: 0.1}}")
        self.value = float(value)

    def apply(self, job, validation=None):
        """``job`` with the recipe override ``recipe_key: value``."""
        return dataclasses.replace(job, recipe=job.recipe.updated({self.recipe_key: self.value},
                                                                  f"defense {self.name}"))

    def info(self, job, history: list[dict]) -> dict[str, float]:
        return {self.recipe_key: self.value}


@DEFENSES.register("label_smoothing")
class LabelSmoothing(RecipeDefense):
    """(training) label smoothing: recipe.label_smoothing = value"""
    name, recipe_key = "label_smoothing", "label_smoothing"


@DEFENSES.register("l2")
class L2(RecipeDefense):
    """(training) L2: recipe.weight_decay = value"""
    name, recipe_key = "l2", "weight_decay"


@DEFENSES.register("dropout")
class Dropout(RecipeDefense):
    """(training) dropout: recipe.dropout = value"""
    name, recipe_key = "dropout", "dropout"
