"""Runner layer: a config checked against the real registries before anything runs.

:func:`validate_components` checks every component's parameters against its registered factory
(and builds calibrations and attacks, so their value errors surface before any training);
:func:`load_config` and :func:`config_from_dict` are the torch-free config loader
(overconf.config) followed by these checks.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from overconf.runner import catalog as R
from overconf.config import StudyConfig, parse_config, read_config
from overconf.config.convert import check as _check
from overconf.core.errors import ConfigError
from overconf.runner.executor import check_executor


def load_config(path: str | Path | None = None, overrides: list[str] = (), *,
                components: bool = True) -> StudyConfig:
    """:func:`overconf.config.read_config`, then (``components``) :func:`validate_components`."""
    cfg = read_config(path, overrides)
    if components:
        validate_components(cfg)
    return cfg


def config_from_dict(raw: dict[str, Any]) -> StudyConfig:
    """Fully validated config: :func:`overconf.config.parse_config` then :func:`validate_components`."""
    cfg = parse_config(raw)
    validate_components(cfg)
    return cfg


def validate_components(cfg: StudyConfig) -> None:
    """Check every component's parameters against its registered factory (imports the registries,
    hence torch); value errors of calibrations and attacks surface now, before any training."""
    for i, m in enumerate(cfg.models):
        check_params(R.MODELS.get(m.arch, where=f"models[{i}].arch"), m.params, f"models[{i}].params",
                     skip=("in_channels", "num_classes", "image_size", "dropout"))
        check_sizes(m.params, f"models[{i}].params")
    for i, c in enumerate(cfg.sources):
        params = {k: v for k, v in c.params.items() if k != "label"}
        check_params(R.SOURCES.get(c.name, where=f"sources[{i}]"), params, f"sources[{i}]({c.name})")
    for i, c in enumerate(cfg.attacks):
        check_params(R.ATTACKS.get(c.name, where=f"attacks[{i}]"), c.params, f"attacks[{i}]({c.name})")
    for s in cfg.settings:
        for key in ("calibration", "shadow_calibration"):
            c = getattr(s, key)
            if c is not None:
                factory = R.CALIBRATIONS.get(c.name, where=f"settings.{s.name}.{key}")
                check_params(factory, c.params, f"settings.{s.name}.{key}({c.name})")
                calibration = factory(**c.params)  # value errors surface now, before any training
                _check(not (getattr(calibration, "uses_calibration_split", False) and cfg.data.splits.calibration <= 0),
                       f"settings.{s.name}.{key} ({c.name}) is tuned on the held-out calibration split, but "
                       f"data.splits.calibration = 0; set data.splits.calibration > 0 (e.g. 2500)")
        c = s.defense
        factory = R.DEFENSES.get(c.name, where=f"settings.{s.name}.defense")
        check_params(factory, c.params, f"settings.{s.name}.defense({c.name})")
        defense = factory(**c.params)  # value errors surface now, before any training
        if hasattr(defense, "check_data"):  # checks against the split sizes, e.g. DP-SGD's delta < 1/n
            defense.check_data(cfg.data.splits, f"settings.{s.name}.defense ({c.name})")
        _check(not (defense.uses_calibration_split and cfg.data.splits.calibration <= 0),
               f"settings.{s.name}.defense ({c.name}) is fitted on the held-out calibration split, but "
               f"data.splits.calibration = 0; set data.splits.calibration > 0 (e.g. 2500)")
    ref = cfg.reference
    if ref.arch is not None:
        check_params(R.MODELS.get(ref.arch, where="reference.arch"), ref.params, "reference.params",
                     skip=("in_channels", "num_classes", "image_size", "dropout"))
        check_sizes(ref.params, "reference.params")
    labels = [R.ATTACKS[c.name](**c.params).label for c in cfg.attacks]
    _check(len(set(labels)) == len(labels), f"attacks has duplicates: {labels}; give each a distinct 'label'")
    validate_gan(cfg)
    if cfg.analysis:  # parameters of the analysis: section against each analysis' defaults
        from overconf.runner.run_analysis import selected
        selected(cfg)
    check_executor(cfg)  # executor: ray without the ray package: one clear error now


def validate_gan(cfg: StudyConfig) -> None:
    """The generator's parameters against the registered factory."""
    g = cfg.gan
    check_params(R.GANS.get(g.arch, where="gan.arch"), g.params, f"gan.params({g.arch})",
                 skip=("channels", "image_size", "num_classes"))
    check_sizes(g.params, f"gan.params({g.arch})")


def check_params(factory, params: dict[str, Any], where: str, skip: tuple[str, ...] = ()) -> None:
    """Reject parameters ``factory`` does not take, naming the ones it does."""
    sig = inspect.signature(factory)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    allowed = [n for n, p in sig.parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
               and n not in ("self", "ctx", *skip)]
    for k in params:
        if k not in allowed:
            raise ConfigError(
                f"unknown parameter '{k}' for {where}; allowed: {', '.join(allowed) or '(none)'}"
            )
    missing = [n for n, p in sig.parameters.items() if p.default is p.empty and n not in ("self", "ctx", *skip)
               and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n not in params]
    if missing:
        raise ConfigError(f"{where} needs parameter '{missing[0]}'")
    for k, v in params.items():  # the default's type (bool, int, float) is the parameter's type
        default = sig.parameters[k].default
        if isinstance(default, bool):
            ok, kind = isinstance(v, bool), "true or false"
        elif isinstance(default, int):
            ok, kind = isinstance(v, int) and not isinstance(v, bool), "an integer"
        elif isinstance(default, float):
            ok, kind = isinstance(v, (int, float)) and not isinstance(v, bool), "a number"
        else:
            continue
        _check(ok, f"{where}.{k} must be {kind} (default {default!r}), got {v!r}")


def check_sizes(params: dict[str, Any], where: str) -> None:
    """Integer architecture parameters (width, hidden, latent_dim) are layer sizes: >= 1."""
    for k, v in params.items():
        _check(not (isinstance(v, int) and not isinstance(v, bool) and v < 1),
               f"{where}.{k} is a layer size and must be >= 1, got {v}")
