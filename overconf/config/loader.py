"""Study configs: YAML -> typed dataclasses (overconf.config.schema), with strict validation.

Every unknown key is an error naming the key and the allowed ones; registered names (dataset,
architecture, source, attack, calibration, GAN) are checked against the torch-free table in
overconf.core.names. ``--set a.b=value`` overrides are applied to the raw mapping before validation;
values are parsed as YAML (``--set seeds=[0,1]``, ``--set recipe.lr=0.01``). YAML is read with
YAML 1.2 numbers (``3e-4`` is a float) and a key written twice is an error (overconf.core.yamlio).

This module never imports torch, so config errors appear within a second. The parameters of
each component are checked against the real factories by the runner layer
(``overconf.runner.validation.validate_components``; ``overconf.runner.validation.load_config`` does both).
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from overconf.core.errors import ConfigError
from overconf.core.names import check_name
from overconf.core.yamlio import load_yaml
from .convert import build, check as _check
from .gan import validate_gan_names
from .schema import StudyConfig, source_label
from .sweeps import expand_sweeps

def read_config(path: str | Path | None = None, overrides: list[str] = ()) -> StudyConfig:
    """Read a study YAML (or start from defaults), apply ``key=value`` overrides, validate types,
    values and names (no torch import); the runner checks component parameters
    (``overconf.runner.validation.validate_components``) before use."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise ConfigError(f"config file '{path}' {what}; pass a study YAML (see experiments/ for studies)")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read config file '{path}' ({e}); pass a readable study YAML") from None
        raw = load_yaml(text, f"config file '{path}'") or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"config file '{path}' must hold a mapping of keys, not {type(raw).__name__}")
    raw = apply_overrides(raw, overrides)
    cfg = parse_config(raw)
    check_not_empty(cfg)
    return cfg


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set '{item}' must look like key=value, e.g. --set recipe.epochs=5")
        value = load_yaml(text, f"--set {key}: value '{text}'")
        node = raw
        parts = key.split(".")
        for p in parts[:-1]:
            child = node.get(p)
            if child is None:
                child = node[p] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: '{p}' is not a mapping, so it has no sub-keys")
            node = child
        node[parts[-1]] = value
    return raw


def parse_config(raw: dict[str, Any]) -> StudyConfig:
    """Types, values and registered names of a raw config, without importing torch."""
    cfg = build(StudyConfig, raw, "")
    expand_sweeps(cfg)
    _validate_values(cfg)
    return cfg


PATH_SAFE_HINT = "letters, digits, '_', '-', '.' (no path separators, no '..')"


def _check_path_safe(value: str, where: str) -> None:
    """``value`` becomes part of a file or folder name (run folder, figures, TensorBoard runs)."""
    ok = (bool(value) and "/" not in value and "\\" not in value and ".." not in value
          and not value.startswith(".") and all(ch.isprintable() for ch in value))
    _check(ok, f"{where} = '{value}' cannot be used in a file name: it names the run's files and folders; "
               f"use {PATH_SAFE_HINT}")


def _validate_values(cfg: StudyConfig) -> None:
    """Every check that needs no factory: values, lists, duplicates and registered names
    (overconf.core.names). Runs before torch is imported."""
    _check_path_safe(cfg.name, "name")
    check_name("dataset", cfg.data.dataset, "data.dataset")
    _check(len(cfg.seeds) > 0, "seeds must list at least one seed, e.g. seeds: [0]")
    _check(len(set(cfg.seeds)) == len(cfg.seeds), f"seeds has duplicates: {cfg.seeds}")
    _check(cfg.data.eval_size > 0 and cfg.data.fit_size > 0, "data.eval_size and data.fit_size must be > 0")
    for name, n in dataclasses.asdict(cfg.data.splits).items():
        _check(n >= 0, f"data.splits.{name} must be >= 0")
    _check(len(cfg.models) > 0, "models must list at least one architecture")
    model_labels = [m.label for m in cfg.models]
    _check(len(set(model_labels)) == len(model_labels),
           f"models has duplicates: {model_labels}; give each a distinct 'name'")
    for i, m in enumerate(cfg.models):
        check_name("architecture", m.arch, f"models[{i}].arch")
        _check_path_safe(m.label, f"models[{i}].name")
        cfg.recipe.updated(m.recipe, f"models[{i}].recipe")
    for i, c in enumerate(cfg.sources):
        check_name("source", c.name, f"sources[{i}]")
    source_labels = [source_label(c) for c in cfg.sources]
    _check(len(set(source_labels)) == len(source_labels),
           f"sources has duplicates: {source_labels}; give each a distinct 'label'")
    for i, c in enumerate(cfg.attacks):
        check_name("attack", c.name, f"attacks[{i}]")
    names = [s.name for s in cfg.settings]
    _check(len(set(names)) == len(names), f"settings has duplicate names: {names}")
    for s in cfg.settings:
        _check_path_safe(s.name, f"settings.{s.name}")
        cfg.recipe.updated(s.recipe, f"settings.{s.name}.recipe")
        for key in ("calibration", "shadow_calibration"):
            c = getattr(s, key)
            if c is not None:
                check_name("calibration", c.name, f"settings.{s.name}.{key}")
        check_name("defense", s.defense.name, f"settings.{s.name}.defense")
    ref = cfg.reference
    if ref.arch is not None:
        check_name("architecture", ref.arch, "reference.arch")
    elif ref.params:
        raise ConfigError("reference.params needs reference.arch (without it the reference models "
                          "use each target's architecture and params)")
    cfg.recipe.updated(ref.recipe, "reference.recipe")
    _check(0 < cfg.metrics.confidence < 1, "metrics.confidence must be in (0, 1)")
    _check(all(0 < f < 1 for f in cfg.metrics.fpr_targets), "metrics.fpr_targets must lie in (0, 1)")
    _check(all(0 < p < 1 for p in cfg.metrics.priors), "metrics.priors must lie in (0, 1)")
    for s in cfg.report.roc_sources or []:
        _check(s in source_labels, f"report.roc_sources names '{s}', which is not a configured source; "
                                   f"use some of: {', '.join(source_labels)}")
    validate_gan_names(cfg)


def check_not_empty(cfg: StudyConfig) -> None:
    """A study file must name something to measure (the defaults have no sources and no attacks)."""
    if not cfg.sources or not cfg.attacks:
        missing = [k for k in ("sources", "attacks") if not getattr(cfg, k)]
        raise ConfigError(
            f"the config has no {' and no '.join(missing)}, so the study would measure nothing; add "
            + " and ".join({"sources": "'sources: [test, digits, gaussian]'",
                            "attacks": "'attacks: [max_score, entropy]'"}[k] for k in missing)
            + " (`overconf list` shows every one), or start from a study in experiments/ "
              "(e.g. experiments/fashion_mnist.yaml)")
