"""The study config schema: one dataclass per section, each key once with its type, default and doc.

This module is the leaf of the package (it imports only ``overconf.core.errors`` and the generic
converter next to it, never torch): the YAML loader (``overconf.config.loader``), every layer
above and the runner's registry checks (``overconf.runner.validation``) read these types.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from overconf.core.errors import ConfigError
from .convert import build, check as _check, component_dict as _component_dict, reject_unknown, source_label
from .analysis import parse_analysis
from .executor import RayConfig, check_executor_name
from .gan import GanConfig
from .presets import FastRecipeKeys, recipe_preset
from .component import Component
from .settings import ATTACKERS, Setting, parse_settings
from .evaluation import MetricsConfig, ReferenceConfig, ReportConfig

@dataclass
class Recipe(FastRecipeKeys):
    """How a classifier is trained; target and shadow of a setting share it (+ the fast-recipe keys)."""

    epochs: int = 20
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    batch_size: int = 64
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    dropout: float = 0.0
    loss: str = "cross_entropy"
    """cross_entropy | mse (squared error of softmax(z) against the (smoothed) one-hot label)"""

    def __post_init__(self):
        choices = {"optimizer": ("adam", "sgd"), "loss": ("cross_entropy", "mse")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"recipe.{name} = '{getattr(self, name)}' is not allowed; use one of: {', '.join(allowed)}"
                )
        for f in dataclasses.fields(self):  # inf / nan also when built directly, not from YAML
            value = getattr(self, f.name)
            _check(not isinstance(value, float) or math.isfinite(value),
                   f"recipe.{f.name} must be a finite number, got {value}")
        _check(self.epochs >= 0, "recipe.epochs must be >= 0")
        _check(self.batch_size >= 1, "recipe.batch_size must be >= 1")
        _check(self.lr > 0, "recipe.lr must be > 0")
        _check(0 <= self.momentum < 1, f"recipe.momentum must be in [0, 1) (SGD's momentum), got {self.momentum}")
        _check(0 <= self.label_smoothing < 1, "recipe.label_smoothing must be in [0, 1)")
        _check(0 <= self.dropout < 1, "recipe.dropout must be in [0, 1)")
        _check(self.weight_decay >= 0, "recipe.weight_decay must be >= 0")
        self.check_fast_keys()

    def updated(self, overrides: dict[str, Any], where: str) -> "Recipe":
        base = dataclasses.asdict(self)
        reject_unknown(overrides, base.keys(), where)
        base.update(overrides)
        try:
            return build(Recipe, base, where)
        except ConfigError as e:
            if str(e).startswith(("recipe.", "'recipe.")):  # a value check: say which override set it
                raise ConfigError(f"{where}: {e}") from None
            raise


@dataclass
class SplitSizes:
    """Disjoint split sizes. Train-pool splits: target_train, shadow_train, calibration;
    test-pool splits: target_test, shadow_test. The rest of the train pool is the 'reserve'
    (GAN training, feature extractors, population samples), never an evaluation member."""

    target_train: int = 5000
    shadow_train: int = 5000
    calibration: int = 2500
    target_test: int = 2500
    shadow_test: int = 2500


@dataclass
class DataConfig:
    dataset: str = "fashion_mnist"
    root: str | None = None
    download: bool = False
    splits: SplitSizes = field(default_factory=SplitSizes)
    eval_size: int = 2500
    """members and non-members per source when attacking the target"""
    fit_size: int = 2500
    """members and non-members from the shadow model used to fit every attack"""
    overlap: str = "refuse"
    """a source image equal (uint8 content) to a target training image: 'refuse' (a ConfigError)
    or 'remove' (dropped, counted in the source's 'overlap_removed' row)"""

    def __post_init__(self):
        _check(self.overlap in OVERLAP, f"data.overlap = '{self.overlap}' is not allowed; use one of: "
                                        f"{', '.join(OVERLAP)}")


OVERLAP = ("refuse", "remove")


@dataclass
class ModelSpec:
    arch: str
    name: str | None = None
    """label in results (defaults to the architecture's name)"""
    params: dict[str, Any] = field(default_factory=dict)
    """architecture keyword arguments (e.g. width)"""
    recipe: dict[str, Any] = field(default_factory=dict)
    """overrides of the study recipe for this architecture"""

    @property
    def label(self) -> str:
        return self.name or self.arch

    @classmethod
    def from_config(cls, value: Any, where: str) -> "ModelSpec":
        """An architecture name or a mapping with ``arch``."""
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, dict):
            return build(cls, value, where)
        raise ConfigError(f"'{where}' must be an architecture name or a mapping with 'arch', got {value!r}")


@dataclass
class StudyConfig:
    name: str = "study"
    seeds: list[int] = field(default_factory=lambda: [0])
    device: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    models: list[ModelSpec] = field(default_factory=lambda: [ModelSpec("salem_cnn")])
    recipe: Recipe = field(default_factory=Recipe)
    sources: list[Component] = field(default_factory=list)
    attacks: list[Component] = field(default_factory=list)
    settings: list[Setting] = field(default_factory=lambda: [Setting("baseline")],
                                    metadata={"parse": parse_settings})
    """written as a mapping of setting names (:func:`parse_settings`)"""
    sweeps: dict[str, Any] = field(default_factory=dict)
    """``{label_smoothing | weight_decay | dropout | <recipe key> | temperature: [values]}``;
    expanded at load time into settings named ``<key>_<value>`` tagged with their sweep (so the
    resolved config, and a run's config.yaml, list them as settings and ``sweeps`` is empty)"""
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    """generators of the fake sources, FID, streaming and latent search (overconf.config.gan)"""
    analysis: dict[str, dict[str, Any]] = field(default_factory=dict, metadata={"parse": parse_analysis})
    """analyses run after the study (overconf.analysis; config/analysis.py); empty: none"""
    cache_dir: str = "checkpoints"
    output_dir: str = "runs"
    progress: bool = True
    executor: str = "local"
    """local | ray: where trainings and outputs run; ``ray:`` its settings (overconf.config.executor)"""
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self):
        check_executor_name(self.executor)

    def recipe_for(self, model: ModelSpec, setting: Setting) -> Recipe:
        recipe = self.recipe.updated(recipe_preset(model.arch), f"the {model.arch} preset").updated(
            model.recipe, f"models[{model.arch}].recipe")
        return recipe.updated(setting.recipe, f"settings.{setting.name}.recipe")

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (round-trips through ``from_dict``)."""
        d = dataclasses.asdict(self)
        if not self.analysis:  # runs without analyses keep their config.yaml as before
            del d["analysis"]
        d["sources"] = [_component_dict(c) for c in self.sources]
        d["attacks"] = [_component_dict(c) for c in self.attacks]
        d["settings"] = {
            s.name: {
                "recipe": s.recipe,
                "calibration": _component_dict(s.calibration),
                **({"shadow_calibration": _component_dict(s.shadow_calibration)} if s.shadow_calibration else {}),
                **({"defense": _component_dict(s.defense)} if s.defense.name != "none" else {}),
                **({"attacker": s.attacker} if s.attacker != "same" else {}),
                **({"sweep": s.sweep, "sweep_value": s.sweep_value} if s.sweep is not None else {}),
            }
            for s in self.settings
        }
        return d
