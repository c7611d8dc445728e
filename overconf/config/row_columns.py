"""Self-describing result rows: the parameters of a row's (model, setting) as columns.

A result row is ``model, seed, setting, attack, source, metric, value`` followed by the columns of
:func:`setting_columns`, so results.csv / results.json can be grouped and filtered in pandas
without config.yaml:

- ``arch`` and ``arch.<param>``: the model's architecture and its keyword arguments (``arch.width``);
- ``recipe.<key>``: the effective training recipe value of every recipe key that some model or
  setting of the study overrides (``recipe.label_smoothing`` is 0.0 on the baseline, 0.1 on a
  label-smoothing setting); keys no one overrides are left out (they equal the study recipe);
- ``calibration`` and ``calibration.<param>``: the post-hoc calibration and its configured
  parameters (``calibration.T`` = 10 or ``fit``; fitted values are the ``calibration_*`` rows);
  ``shadow_calibration`` where some setting gives the shadow its own;
- ``defense`` and ``defense.<param>``: the release-time defense and its parameters, only in studies
  where some setting has one (``none`` on the others; fitted values are rows with source ``defense``);
- ``attacker``: ``same``, ``aware``, ``unaware`` or ``uncalibrated`` (see :class:`overconf.config.Setting`);
- ``sweep``, ``sweep_value``: the sweep a setting belongs to (empty where none).

Every row of a study carries the same columns (``None`` where a parameter does not apply), so the
CSV is rectangular. Torch-free (reads only the typed config).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from overconf.config import ModelSpec, Setting, StudyConfig
from overconf.config.presets import recipe_preset

ROW_KEYS = ("model", "seed", "setting", "attack", "source", "metric", "value")
"""the tidy key and value columns every row starts with"""

_MEMO: dict[tuple[int, str], tuple[StudyConfig, dict[tuple[str, str], dict[str, Any]]]] = {}


def _model(cfg: StudyConfig, label: str) -> ModelSpec:
    for m in cfg.models:
        if m.label == label:
            return m
    return ModelSpec(label)


def _setting(cfg: StudyConfig, name: str) -> Setting:
    for s in cfg.settings:
        if s.name == name:
            return s
    return Setting(name)


def varied_recipe_keys(cfg: StudyConfig) -> list[str]:
    """Recipe keys that some model (or its architecture's recipe preset) or setting of ``cfg``
    overrides, in schema order."""
    touched = {k for m in cfg.models for k in m.recipe} | {k for s in cfg.settings for k in s.recipe}
    touched |= {k for m in cfg.models for k in recipe_preset(m.arch)}
    return [f.name for f in dataclasses.fields(cfg.recipe) if f.name in touched]


def _columns(cfg: StudyConfig, model: ModelSpec, setting: Setting) -> dict[str, Any]:
    defended = any(s.defense.name != "none" for s in cfg.settings)
    cols: dict[str, Any] = {"arch": model.arch}
    cols |= {f"arch.{k}": v for k, v in model.params.items()}
    recipe = cfg.recipe_for(model, setting)
    cols |= {f"recipe.{k}": getattr(recipe, k) for k in varied_recipe_keys(cfg)}
    cols["calibration"] = setting.calibration.name
    cols |= {f"calibration.{k}": v for k, v in setting.calibration.params.items()}
    if setting.shadow_calibration is not None:
        cols["shadow_calibration"] = setting.shadow_calibration.name
        cols |= {f"shadow_calibration.{k}": v for k, v in setting.shadow_calibration.params.items()}
    if defended or setting.defense.name != "none":  # columns of existing (undefended) studies unchanged
        cols["defense"] = setting.defense.name
        cols |= {f"defense.{k}": v for k, v in setting.defense.params.items()}
    cols["attacker"] = setting.attacker
    cols["sweep"] = setting.sweep
    cols["sweep_value"] = setting.sweep_value
    return cols


def study_columns(cfg: StudyConfig) -> dict[tuple[str, str], dict[str, Any]]:
    """(model label, setting name) -> its columns, every entry with the same keys (``None`` where
    a parameter does not apply to it), in a stable order."""
    table = {(m.label, s.name): _columns(cfg, m, s) for m in cfg.models for s in cfg.settings}
    keys = list(dict.fromkeys(k for cols in table.values() for k in cols))
    return {cell: {k: cols.get(k) for k in keys} for cell, cols in table.items()}


def setting_columns(cfg: StudyConfig, model: str, setting: str) -> dict[str, Any]:
    """The parameter columns of the rows of (``model`` label, ``setting`` name) in study ``cfg``.

    Computed once per config object and content of its recipe, models and settings (the study
    calls this for every row; a config changed in place gets new columns)."""
    key = (id(cfg), repr((cfg.recipe, cfg.models, cfg.settings)))
    memo = _MEMO.get(key)
    if memo is None or memo[0] is not cfg:
        if len(_MEMO) > 16:
            _MEMO.clear()
        memo = _MEMO[key] = (cfg, study_columns(cfg))
    table = memo[1]
    if (model, setting) not in table:  # a model / setting outside the config (bring-your-own)
        return _columns(cfg, _model(cfg, model), _setting(cfg, setting))
    return dict(table[(model, setting)])


def column_order(rows: list[dict]) -> list[str]:
    """ROW_KEYS, then every further column in order of first appearance (for CSV headers)."""
    extra = dict.fromkeys(k for r in rows for k in r if k not in ROW_KEYS)
    return list(ROW_KEYS) + list(extra)
