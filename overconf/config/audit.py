"""The ``study: audit`` config (torch-free): audit a model the user trained, on the user's data.

The user describes the model once: a factory of untrained modules (``model.factory``, a
``module:function``), the trained target (``model.weights``, a state dict file), how it was trained
(overconf's ``recipe`` keys, or the user's own training function ``model.train``), the member /
non-member / public data (``data:``, :data:`DATA_KEYS`) and the normalisation. overconf then trains
the shadow and reference models with that factory and recipe (overconf.runner.audit) and runs the
attacks on every non-member source. ``module:function`` names are imported only from the config
the user runs (relative to its folder), never from a cache or a run folder. Every unknown key or
bad value is a ConfigError naming the key and the fix.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from overconf.core.errors import ConfigError
from overconf.core.names import NAMES, check_name
from overconf.core.yamlio import load_yaml
from .component import Component
from .convert import as_list, build, check, component_dict
from .evaluation import MetricsConfig, ReferenceConfig, ReportConfig
from .executor import RayConfig, check_executor_name
from .gan import GanConfig, validate_gan_names
from .schema import OVERLAP, Recipe, source_label
from .study_kind import study_kind

STUDY_KIND = "audit"
DATA_KINDS = ("tensors", "dataset", "torchvision", "image_folder")
"""a data part names exactly one: a .pt file of images and labels, an overconf dataset, a
torchvision dataset class, or an image folder (overconf.data.user_data)"""
DATA_KEYS = DATA_KINDS + ("split", "root", "download", "kwargs", "classes", "channels", "indices", "limit")
IMAGE_SOURCES = ("test", "permuted", "scaled", "unnormalized", "gaussian", "uniform")
"""the built-in non-member sources that apply to any image data (the default sources)"""


@dataclass
class AuditModel:
    """The audited model: its factory, its trained weights and (instead of ``recipe``) its training function."""

    factory: str | None = None
    """``module:function`` (or ``file.py:function``) returning an untrained ``nn.Module`` whose
    outputs are the class logits; imported relative to the config's folder"""
    weights: str | None = None
    """the trained target's state dict (``torch.save(model.state_dict(), path)``), loaded with
    ``weights_only=True``"""
    train: str | None = None
    """``module:function`` training a module in place: ``train(module, inputs, labels, *, seed,
    device)``; instead of ``recipe``"""
    name: str = "user_model"
    """the model's label in the results"""


@dataclass
class AuditData:
    """The member / non-member / public data (each a mapping of DATA_KEYS) and the split sizes."""

    members: dict[str, Any] | None = None
    """the target's training data (DATA_KEYS)"""
    nonmembers: dict[str, Any] | None = None
    """held-out data of the same distribution the target never trained on"""
    public: dict[str, Any] | None = None
    """more such data (shadow model, RMIA's population, GAN); null: the non-members beyond eval_size"""
    eval_size: int | None = None
    """members and non-members attacked per source (null: as many as both have)"""
    fit_size: int | None = None
    """shadow members and non-members every attack is fitted on (null: min(eval_size, shadow_train))"""
    shadow_train: int | None = None
    """the shadow model's training-set size (null: the members' count, as the public data allow)"""
    shadow_test: int | None = None
    """the shadow's held-out images (null: fit_size)"""
    calibration: int | None = None
    """public images held out as the calibration split (QMIA's regressor trains on it); null: half of
    the public images the shadow model leaves (the other half is the reserve)"""
    shuffle_public: bool = True
    """put the public data in a seeded, class-stratified order before splitting them"""
    overlap: str = "refuse"
    """a non-member or public image equal to a member: refuse (an error) | remove (dropped)"""


@dataclass
class Normalization:
    """model input = (image / 255 - mean) / std per channel (torchvision's ToTensor + Normalize)"""

    mean: list[float] = field(default_factory=lambda: [0.0])
    """per channel (one value: every channel), in [0, 1] pixel units"""
    std: list[float] = field(default_factory=lambda: [1.0])
    """per channel (one value: every channel), > 0"""


@dataclass
class AuditReference:
    """The reference models (LiRA, RMIA, Shokri): the user's factory and recipe, always."""

    num_models: int = 16
    """K, even: every evaluated member and non-member is IN for K / 2 of them"""
    mode: str = "auto"
    """auto (batched on CUDA without BatchNorm, training function or augmentation) | batched | sequential"""
    group_size: int = 32
    """models trained (batched) or evaluated at once"""
    extra_points: int = 0
    """public reserve images added to the reference data, even"""
    population: int | None = None
    """RMIA's population sample z from the public reserve (null: up to 1000)"""


@dataclass
class MimicryConfig:
    """Tolerances of the mimicry check: reference / shadow models vs the target, train and test."""

    accuracy: float = 0.05
    """absolute difference of accuracies"""
    loss: float = 0.25
    """absolute difference of mean cross-entropies (nats)"""


def parse_attacks(value: Any) -> list[Component]:
    """``all`` (every registered attack at its defaults; QMIA's regressor trains on the held-out
    public split, ``data.calibration``) or a list of attacks as in a study."""
    if value == "all":
        return [Component(n) for n in NAMES["attack"]]
    return [Component.from_config(v, f"attacks[{i}]") for i, v in enumerate(as_list(value, "attacks"))]


@dataclass
class AuditConfig:
    """An audit of a user's own model (``study: audit``)."""

    study: str = STUDY_KIND
    """``audit``: this schema (overconf.config.study_kind)"""
    name: str = "audit"
    """names the run folder"""
    seed: int = 0
    """seeds the public data's order, the shadow and reference models, sources, attacks and intervals"""
    device: str = "auto"
    """auto, cpu or cuda[:N]"""
    model: AuditModel = field(default_factory=AuditModel)
    recipe: Recipe | None = None
    """how the target was trained (overconf's recipe keys); null with model.train"""
    data: AuditData = field(default_factory=AuditData)
    normalize: Normalization = field(default_factory=Normalization)
    sources: list[Component] = field(default_factory=lambda: [Component(n) for n in IMAGE_SOURCES])
    """non-member sources (default: every built-in source that applies to image data; ``fake``: a GAN
    trained on the public reserve)"""
    attacks: list[Component] = field(default_factory=lambda: parse_attacks("all"), metadata={"parse": parse_attacks})
    """``all`` (default: every registered attack at its defaults) or a list as in a study"""
    reference: AuditReference = field(default_factory=AuditReference)
    mimicry: MimicryConfig = field(default_factory=MimicryConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    """intervals, FPR targets, priors, ECE bins: the study config's ``metrics`` section"""
    report: ReportConfig = field(default_factory=ReportConfig)
    """figures and TensorBoard: the study config's ``report`` section"""
    gan: GanConfig = field(default_factory=GanConfig)
    cache_dir: str = "checkpoints"
    """the content-keyed cache of models and outputs (state dicts only, never code)"""
    output_dir: str = "runs"
    """where run folders are created"""
    progress: bool = True
    """progress bars"""
    executor: str = "local"
    """local | ray: where trainings and outputs run"""
    ray: RayConfig = field(default_factory=RayConfig)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sources"] = [component_dict(c) for c in self.sources]
        d["attacks"] = [component_dict(c) for c in self.attacks]
        return d


def is_audit(raw: Any) -> bool:
    """True for an audit config: a mapping, a YAML path or an AuditConfig with ``study: audit``."""
    return isinstance(raw, AuditConfig) or study_kind(raw) == STUDY_KIND


def read_audit(path: str | Path | None = None, overrides: list[str] = (),
               raw: Mapping[str, Any] | None = None) -> AuditConfig:
    """A validated :class:`AuditConfig` from a YAML file or a mapping, with ``--set`` overrides."""
    from .loader import apply_overrides

    if raw is None:
        try:
            raw = load_yaml(Path(path).read_text(), f"config file '{path}'") or {}
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read config file '{path}' ({e}); pass an audit YAML") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"an audit config must be a mapping of keys, got {type(raw).__name__}")
    return parse_audit(apply_overrides(dict(raw), list(overrides)))


def parse_audit(raw: Mapping[str, Any]) -> AuditConfig:
    cfg = build(AuditConfig, dict(raw), "")
    validate_audit(cfg)
    return cfg


def _module_function(value: str | None, where: str) -> None:
    module, sep, function = (value or "").rpartition(":")
    check(value is None or (sep and module and function),
          f"{where} = {value!r} must name a function as 'module:function' (or 'file.py:function'), "
          f"e.g. 'train_user_model:make_model'")


def check_data_part(spec: Mapping[str, Any] | None, where: str) -> None:
    if spec is None:
        return
    bad = [k for k in spec if k not in DATA_KEYS]
    check(not bad, f"unknown key '{where}.{bad[0] if bad else ''}'; allowed: {', '.join(DATA_KEYS)}")
    kinds = [k for k in DATA_KINDS if k in spec]
    check(len(kinds) == 1, f"{where} must name exactly one of {', '.join(DATA_KINDS)}, got {sorted(spec)}")
    if "dataset" in spec:
        check_name("dataset", spec["dataset"], f"{where}.dataset")
    check(spec.get("split", "train") in ("train", "test"), f"{where}.split must be train or test")
    check(spec.get("channels") in (None, 1, 3), f"{where}.channels must be 1 or 3")
    limit = spec.get("limit")
    check(limit is None or (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1),
          f"{where}.limit must be an integer >= 1, got {limit!r}")


def validate_audit(cfg: AuditConfig) -> None:
    from .loader import _check_path_safe

    check(cfg.study == STUDY_KIND, f"study must be '{STUDY_KIND}'")
    _check_path_safe(cfg.name, "name")
    _check_path_safe(cfg.model.name, "model.name")
    check_executor_name(cfg.executor)
    for key in ("factory", "train"):
        _module_function(getattr(cfg.model, key), f"model.{key}")
    for key in ("members", "nonmembers", "public"):
        check_data_part(getattr(cfg.data, key), f"data.{key}")
    d = cfg.data
    for key in ("eval_size", "fit_size", "shadow_train", "shadow_test"):
        check(getattr(d, key) is None or getattr(d, key) >= 1, f"data.{key} must be >= 1 or null")
    check(d.calibration is None or d.calibration >= 0, "data.calibration must be >= 0 or null")
    check(d.overlap in OVERLAP, f"data.overlap = '{d.overlap}' is not allowed; use one of: {', '.join(OVERLAP)}")
    n = cfg.normalize
    check(len(n.mean) >= 1 and len(n.std) >= 1, "normalize.mean and normalize.std need one value per channel")
    check(all(s > 0 for s in n.std), f"normalize.std must be > 0, got {n.std}")
    r = cfg.reference
    ReferenceConfig(num_models=r.num_models, mode=r.mode, group_size=r.group_size, extra_points=r.extra_points,
                    population=r.population or 1)  # the study's checks of these keys
    check(not (cfg.model.train and r.mode == "batched"),
          "reference.mode = batched cannot train with model.train (your training function trains one model at a "
          "time); use reference.mode: auto or sequential")
    check(cfg.mimicry.accuracy >= 0 and cfg.mimicry.loss >= 0, "mimicry.accuracy and mimicry.loss must be >= 0")
    check(not (cfg.recipe is not None and cfg.model.train),
          "give either recipe (overconf trains the shadow and reference models) or model.train (your training "
          "function does), not both")
    if cfg.recipe is not None:
        check(cfg.recipe.dropout == 0, "recipe.dropout is not applied to your model; put dropout layers in the "
                                       "model your factory returns and leave recipe.dropout at 0")
    for i, c in enumerate(cfg.sources):
        check_name("source", c.name, f"sources[{i}]")
    labels = [source_label(c) for c in cfg.sources]
    check(len(set(labels)) == len(labels), f"sources has duplicates: {labels}; give each a distinct 'label'")
    check(cfg.sources and cfg.attacks, "an audit needs at least one source and one attack")
    for i, c in enumerate(cfg.attacks):
        check_name("attack", c.name, f"attacks[{i}]")
    m = cfg.metrics
    check(0 < m.confidence < 1, "metrics.confidence must be in (0, 1)")
    check(all(0 < f < 1 for f in m.fpr_targets), "metrics.fpr_targets must lie in (0, 1)")
    check(all(0 < p < 1 for p in m.priors), "metrics.priors must lie in (0, 1)")
    for s in cfg.report.roc_sources or []:
        check(s in labels, f"report.roc_sources names '{s}', which is not a configured source; use some of: "
                           f"{', '.join(labels)}")
    validate_gan_names(cfg)
