"""Sweeps: one YAML line per swept knob, expanded into tagged settings.

``sweeps: {label_smoothing: [0.0083, 0.1], weight_decay: [3e-4, 1e-3], temperature: [2, 10]}``
becomes the settings ``label_smoothing_0.0083``, ``label_smoothing_0.1``, ... each tagged with
``sweep`` (the key) and ``sweep_value``, so comparison figures can link the points of a sweep.
A recipe key (label_smoothing, weight_decay, dropout, ...) sweeps a training-time override
applied to target and shadow; ``temperature`` sweeps a fixed temperature T (or ``fit``).
Explicit settings may carry ``sweep: NAME`` themselves; their ``sweep_value`` is then read from
the recipe override or the temperature when not given.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from overconf.core.errors import ConfigError
from .schema import Component, Recipe, Setting, StudyConfig

CALIBRATION_SWEEPS = {"temperature": ("temperature", "T")}
"""sweep key -> (calibration name, swept parameter)"""


def sweep_keys() -> list[str]:
    return sorted([f.name for f in dataclasses.fields(Recipe)] + list(CALIBRATION_SWEEPS))


def value_label(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def sweep_setting(key: str, value: Any) -> Setting:
    """The setting for ``key = value`` of a sweep."""
    name = f"{key}_{value_label(value)}"
    if key in CALIBRATION_SWEEPS:
        cal, param = CALIBRATION_SWEEPS[key]
        return Setting(name, calibration=Component(cal, {param: value}), sweep=key, sweep_value=value)
    return Setting(name, recipe={key: value}, sweep=key, sweep_value=value)


def inferred_value(s: Setting) -> Any:
    """A tagged setting's position along its sweep, read from what the sweep varies."""
    if s.sweep in s.recipe:
        return s.recipe[s.sweep]
    if s.sweep in CALIBRATION_SWEEPS:
        cal, param = CALIBRATION_SWEEPS[s.sweep]
        if s.calibration.name == cal:
            return s.calibration.params.get(param)
    return None


def expand_sweeps(cfg: StudyConfig) -> None:
    """Append one setting per swept value to ``cfg.settings`` (in place) and empty ``cfg.sweeps``."""
    if not isinstance(cfg.sweeps, dict):
        raise ConfigError(f"'sweeps' must map a swept key to a list of values, got {cfg.sweeps!r}")
    allowed = sweep_keys()
    for key, values in cfg.sweeps.items():
        if key not in allowed:
            raise ConfigError(f"unknown sweep 'sweeps.{key}'; allowed: {', '.join(allowed)}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"'sweeps.{key}' must be a non-empty list of values, e.g. "
                              f"sweeps: {{{key}: [0.01, 0.1]}}, got {values!r}")
        if len(set(map(value_label, values))) != len(values):
            raise ConfigError(f"'sweeps.{key}' lists a value twice: {values}")
        cfg.settings.extend(sweep_setting(key, v) for v in values)
    cfg.sweeps = {}
    for s in cfg.settings:
        if s.sweep is not None and s.sweep_value is None:
            s.sweep_value = inferred_value(s)
