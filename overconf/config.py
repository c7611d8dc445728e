"""Study configs: YAML -> typed dataclasses, with strict validation.

Every unknown key is an error naming the key and the allowed ones; every registry-valued field
(dataset, architecture, source, attack, calibration) is checked against its registry.
``--set a.b=value`` overrides are applied to the raw mapping before validation; values are
parsed as YAML (``--set seeds=[0,1]``, ``--set recipe.lr=0.01``). YAML is read with YAML 1.2
numbers (``3e-4`` is a float) and a key written twice is an error (overconf.yamlio).

Validation runs in two steps so that config errors appear within a second: :func:`parse_config`
(types, values, registered names from the torch-free table in overconf.names; this module never
imports torch) and :func:`validate_components` (component parameters against the real factories,
which imports the registries and torch). :func:`config_from_dict` and :func:`load_config` do both.
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .gan.config import GanConfig, validate_gan, validate_gan_names
from .names import check_name
from .yamlio import load_yaml


@dataclass
class Recipe:
    """How a classifier is trained; target and shadow of a setting share it."""

    epochs: int = 20
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    batch_size: int = 64
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    dropout: float = 0.0

    def __post_init__(self):
        choices = {"optimizer": ("adam", "sgd")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"recipe.{name} = '{getattr(self, name)}' is not allowed; use one of: {', '.join(allowed)}"
                )
        _check(self.epochs >= 0, "recipe.epochs must be >= 0")
        _check(self.batch_size >= 1, "recipe.batch_size must be >= 1")
        _check(self.lr > 0, "recipe.lr must be > 0")
        _check(0 <= self.momentum < 1, f"recipe.momentum must be in [0, 1) (SGD's momentum), got {self.momentum}")
        _check(0 <= self.label_smoothing < 1, "recipe.label_smoothing must be in [0, 1)")
        _check(0 <= self.dropout < 1, "recipe.dropout must be in [0, 1)")
        _check(self.weight_decay >= 0, "recipe.weight_decay must be >= 0")

    def updated(self, overrides: dict[str, Any], where: str) -> "Recipe":
        base = dataclasses.asdict(self)
        _reject_unknown(overrides, base.keys(), where)
        base.update(overrides)
        try:
            return _build(Recipe, base, where)
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
class Component:
    """A registered component (source, attack, calibration) with its parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


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


@dataclass
class Setting:
    """One calibration / defense setting, applied to target and shadow alike."""

    name: str
    recipe: dict[str, Any] = field(default_factory=dict)
    """training-time overrides: label_smoothing, weight_decay, dropout, ..."""
    calibration: Component = field(default_factory=lambda: Component("none"))
    """post-hoc calibration of the model's outputs (temperature, llla, ...)"""
    shadow_calibration: Component | None = None
    """calibration the attacker's shadow gets; None = the same as the target's"""
    attacker: str = "same"
    """'same': the shadow gets this setting's recipe and calibration too; 'uncalibrated': the
    shadow is trained with the study recipe (no overrides) and left uncalibrated, while the
    target gets the setting (the attacker does not know the defense)"""
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


ATTACKERS = ("same", "uncalibrated")


@dataclass
class MetricsConfig:
    bootstrap: int = 1000
    confidence: float = 0.95
    fpr_targets: list[float] = field(default_factory=lambda: [0.01, 0.001])
    """TPR at each of these FPRs, with a bootstrap interval"""
    priors: list[float] = field(default_factory=lambda: [0.01, 0.1, 0.5])
    """member priors pi for precision = pi TPR / (pi TPR + (1 - pi) FPR)"""
    ece_bins: int = 15

    def __post_init__(self):
        _check(self.bootstrap >= 1, f"metrics.bootstrap must be >= 1 (bootstrap resamples of each interval, "
                                    f"e.g. 1000), got {self.bootstrap}")
        _check(self.ece_bins >= 1, f"metrics.ece_bins must be >= 1 (equal-width confidence bins of the ECE, "
                                   f"e.g. 15), got {self.ece_bins}")


@dataclass
class ReportConfig:
    figures: bool = True
    tensorboard: bool = True
    fp_grid: int = 16
    """most confident false positives shown per source in TensorBoard"""
    roc_sources: list[str] | None = None
    """non-member sources of the log-log ROC figures (null: test, or the first source)"""


@dataclass
class ReferenceConfig:
    """Reference models for LiRA, RMIA and Shokri (see overconf/reference/manager.py)."""

    num_models: int = 16
    """K, even: every reference point is IN for exactly K / 2 models (LiRA: 16-256)"""
    arch: str | None = None
    """architecture of the reference models; null = the target's (with its params)"""
    params: dict[str, Any] = field(default_factory=dict)
    """architecture keyword arguments when ``arch`` is set"""
    recipe: dict[str, Any] = field(default_factory=dict)
    """overrides of the setting's recipe for the reference models"""
    mode: str = "auto"
    """auto (batched on CUDA without BatchNorm, else sequential) | batched | sequential"""
    group_size: int = 32
    """models trained (batched) or evaluated at once; a finished group is stored model by model"""
    extra_points: int = 0
    """reserve images added to the reference data (besides the target's evaluation and the
    shadow's fit points), even"""
    population: int = 1000
    """RMIA: size of the seeded population sample z, drawn from the rest of the reserve"""

    def __post_init__(self):
        allowed = ("auto", "batched", "sequential")
        _check(self.mode in allowed, f"reference.mode = '{self.mode}' is not allowed; use one of: {', '.join(allowed)}")
        _check(self.num_models >= 2 and self.num_models % 2 == 0,
               f"reference.num_models must be even and >= 2 (each point is IN for half the models), "
               f"got {self.num_models}")
        _check(self.group_size >= 1, "reference.group_size must be >= 1")
        _check(self.extra_points >= 0 and self.extra_points % 2 == 0,
               f"reference.extra_points must be even and >= 0 (equal-size halves), got {self.extra_points}")
        _check(self.population >= 1, "reference.population must be >= 1")


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
    settings: list[Setting] = field(default_factory=lambda: [Setting("baseline")])
    sweeps: dict[str, Any] = field(default_factory=dict)
    """``{label_smoothing | weight_decay | dropout | <recipe key> | temperature: [values]}``;
    expanded at load time into settings named ``<key>_<value>`` tagged with their sweep (so the
    resolved config, and a run's config.yaml, list them as settings and ``sweeps`` is empty)"""
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    """generators of the fake sources, FID, streaming and latent search (overconf.gan.config)"""
    cache_dir: str = "checkpoints"
    output_dir: str = "runs"
    progress: bool = True

    def recipe_for(self, model: ModelSpec, setting: Setting) -> Recipe:
        recipe = self.recipe.updated(model.recipe, f"models[{model.arch}].recipe")
        return recipe.updated(setting.recipe, f"settings.{setting.name}.recipe")

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (round-trips through ``from_dict``)."""
        d = dataclasses.asdict(self)
        d["sources"] = [_component_dict(c) for c in self.sources]
        d["attacks"] = [_component_dict(c) for c in self.attacks]
        d["settings"] = {
            s.name: {
                "recipe": s.recipe,
                "calibration": _component_dict(s.calibration),
                **({"shadow_calibration": _component_dict(s.shadow_calibration)} if s.shadow_calibration else {}),
                **({"attacker": s.attacker} if s.attacker != "same" else {}),
                **({"sweep": s.sweep, "sweep_value": s.sweep_value} if s.sweep is not None else {}),
            }
            for s in self.settings
        }
        return d


def _component_dict(c: Component) -> dict[str, Any]:
    return {"name": c.name, **c.params}


# ----------------------------------------------------------------------------- loading


def load_config(path: str | Path | None = None, overrides: list[str] = (), *,
                components: bool = True) -> StudyConfig:
    """Read a study YAML (or start from defaults), apply ``key=value`` overrides, validate.

    ``components=False`` skips :func:`validate_components` (no torch import); call it before use."""
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
    if components:
        validate_components(cfg)
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


def config_from_dict(raw: dict[str, Any]) -> StudyConfig:
    """Fully validated config: :func:`parse_config` then :func:`validate_components`."""
    cfg = parse_config(raw)
    validate_components(cfg)
    return cfg


def parse_config(raw: dict[str, Any]) -> StudyConfig:
    """Types, values and registered names of a raw config, without importing torch."""
    from .sweeps import expand_sweeps

    cfg = _build(StudyConfig, raw, "")
    expand_sweeps(cfg)
    _validate_values(cfg)
    return cfg


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _reject_unknown(data: dict, allowed, where: str) -> None:
    unknown = [k for k in data if k not in allowed]
    if unknown:
        at = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key '{at}{unknown[0]}'; allowed keys{' in ' + where if where else ''}: "
            f"{', '.join(sorted(allowed))}"
        )


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _build(cls, data: Any, where: str):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"'{where or 'config'}' must be a mapping of keys, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _reject_unknown(data, fields.keys(), where)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, _join(where, name), name)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"'{where or 'config'}' is incomplete: {e}") from e


def _convert(tp, value: Any, where: str, name: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where, name)
    if tp is Component:
        return parse_component(value, where)
    if where == "settings":
        return parse_settings(value)
    if where == "models":
        return [parse_model(v, f"models[{i}]") for i, v in enumerate(_as_list(value, where))]
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is list:
        (inner,) = args
        return [_convert(inner, v, f"{where}[{i}]", name) for i, v in enumerate(_as_list(value, where))]
    if origin is dict or tp is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"'{where}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{where}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{where}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{where}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"'{where}' must be a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"config field {where} has unsupported type {tp}")


def _as_list(value: Any, where: str) -> list:
    if isinstance(value, (str, dict)) or not isinstance(value, list):
        raise ConfigError(f"'{where}' must be a list, got {value!r}")
    return value


def parse_component(value: Any, where: str) -> Component:
    """``"name"`` or ``{name: ..., param: value, ...}``."""
    if isinstance(value, str):
        return Component(value)
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        params = {k: v for k, v in value.items() if k != "name"}
        return Component(value["name"], params)
    raise ConfigError(f"'{where}' must be a name or a mapping with a 'name' key, got {value!r}")


def parse_model(value: Any, where: str) -> ModelSpec:
    if isinstance(value, str):
        return ModelSpec(value)
    if isinstance(value, dict):
        return _build(ModelSpec, value, where)
    raise ConfigError(f"'{where}' must be an architecture name or a mapping with 'arch', got {value!r}")


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
        settings.append(_build(Setting, {"name": str(name), **body}, where))
    return settings


PATH_SAFE_HINT = "letters, digits, '_', '-', '.' (no path separators, no '..')"


def _check_path_safe(value: str, where: str) -> None:
    """``value`` becomes part of a file or folder name (run folder, figures, TensorBoard runs)."""
    ok = (bool(value) and "/" not in value and "\\" not in value and ".." not in value
          and not value.startswith(".") and all(ch.isprintable() for ch in value))
    _check(ok, f"{where} = '{value}' cannot be used in a file name: it names the run's files and folders; "
               f"use {PATH_SAFE_HINT}")


def _validate_values(cfg: StudyConfig) -> None:
    """Every check that needs no factory: values, lists, duplicates and registered names
    (overconf.names). Runs before torch is imported."""
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


def validate_components(cfg: StudyConfig) -> None:
    """Check every component's parameters against its registered factory (imports the registries,
    hence torch); value errors of calibrations and attacks surface now, before any training."""
    from . import registries as R

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
    ref = cfg.reference
    if ref.arch is not None:
        check_params(R.MODELS.get(ref.arch, where="reference.arch"), ref.params, "reference.params",
                     skip=("in_channels", "num_classes", "image_size", "dropout"))
        check_sizes(ref.params, "reference.params")
    labels = [R.ATTACKS[c.name](**c.params).label for c in cfg.attacks]
    _check(len(set(labels)) == len(labels), f"attacks has duplicates: {labels}; give each a distinct 'label'")
    validate_gan(cfg)


def source_label(c: Component) -> str:
    return str(c.params.get("label", c.name))


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
