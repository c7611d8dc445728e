"""The ``settings:`` section: one calibration / defense setting per entry, applied to target and
shadow alike, and the attacker's view of it (``attacker:``)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from overconf.core.errors import ConfigError
from .component import Component
from .convert import build, check as _check


@dataclass
class Setting:
    """One calibration / defense setting, applied to target and shadow alike."""

    name: str
    """the setting's name: its key in the ``settings:`` mapping (a result column, file names)"""
    recipe: dict[str, Any] = field(default_factory=dict)
    """training-time overrides: label_smoothing, weight_decay, dropout, ..."""
    calibration: Component = field(default_factory=lambda: Component("none"))
    """post-hoc calibration of the model's outputs (temperature, llla, ...)"""
    shadow_calibration: Component | None = None
    """calibration the attacker's shadow gets; None = the same as the target's"""
    defense: Component = field(default_factory=lambda: Component("none"))
    """release-time defense (overconf.defenses: logit_reweighting, memguard, top_k, rounding,
    label_only) applied after the calibration to every released output; retrains nothing"""
    attacker: str = "same"
    """'same' (= 'aware' for defenses): the shadow gets this setting's recipe, calibration and
    defense too (the adaptive attacker); 'aware': the same; 'unaware': the shadow gets the recipe
    and calibration but its outputs are released without the defense; 'uncalibrated': the
    shadow is trained with the study recipe (no overrides), left uncalibrated and undefended,
    while the target gets the setting (the attacker does not know the defense)"""
    sweep: str | None = None
    """name of the sweep this setting belongs to (links its points in comparison figures)"""
    sweep_value: Any = None
    """its value along the sweep (inferred from the recipe or calibration when not given)"""

    def __post_init__(self):
        _check(self.attacker in ATTACKERS, f"settings.{self.name}.attacker = '{self.attacker}' is not allowed; "
                                           f"use one of: {', '.join(ATTACKERS)}")
        _check(not (self.attacker == "uncalibrated" and self.shadow_calibration is not None),
               f"settings.{self.name}: 'attacker: uncalibrated' already fixes the shadow's calibration "
               f"(none); remove 'shadow_calibration' or use 'attacker: same'")

    def for_shadow(self) -> "Setting":
        """What the attacker's shadow gets: the setting itself (``same`` / ``aware``), the setting
        without its release-time defense (``unaware``), or with ``attacker: uncalibrated`` the study
        recipe without overrides, no calibration and no defense (the attacker ignores the defense)."""
        if self.attacker == "unaware":
            return dataclasses.replace(self, defense=Component("none"))
        return self if self.attacker in ("same", "aware") else Setting(self.name)


ATTACKERS = ("same", "uncalibrated", "aware", "unaware")


def parse_settings(value: Any) -> list[Setting]:
    """``{setting_name: {recipe: {...}, calibration: ...}, ...}`` in the order written."""
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"'settings' must be a non-empty mapping of setting names, got {value!r}")
    settings = []
    for name, body in value.items():
        where = f"settings.{name}"
        if not isinstance(body, (dict, type(None))):
            raise ConfigError(f"'{where}' must be a mapping (recipe, calibration, ...) or empty, got {body!r}; "
                              f"e.g. settings: {{{name}: {{recipe: {{label_smoothing: 0.1}}}}}}")
        body = dict(body or {})
        if "name" in body:
            raise ConfigError(f"'{where}.name' is not allowed: the mapping key is the setting's name")
        settings.append(build(Setting, {"name": str(name), **body}, where))
    return settings
