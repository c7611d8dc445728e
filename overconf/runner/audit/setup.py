"""An audit prepared: the user's model, weights and data resolved, laid out as a dataset with fixed
splits, and the internal study config the study machinery runs (overconf.runner.audit.study).

Every part comes from the config (``module:function`` names and paths, relative to the config's
folder) or, in Python, from objects passed to :func:`overconf.audit` (they win over the config).
The target is loaded once, checked against its factory, and run on a few members: its number of
outputs is the number of classes K.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from overconf.config import DataConfig, ModelSpec, Recipe, ReferenceConfig, Setting, SplitSizes, StudyConfig
from overconf.config.audit import AuditConfig
from overconf.core.errors import ConfigError
from overconf.core.seeding import derive_seed, isolated_rng
from overconf.data.audit_data import AuditDataset, audit_dataset, channel_values
from overconf.data.user_data import read_any
from overconf.runner.audit.user_code import (import_function, label, load_into, model_factory, pickle_by_value,
                                             target_state, weights_digest)
from overconf.runner.executor.plan import uses_references
from overconf.training.batched import has_batchnorm
from overconf.training.factory import ModelFactory

log = logging.getLogger("overconf")

FAST_KEYS = ("flip", "translate", "ema", "triangular")
"""recipe keys the batched trainer does not support: with any set, reference models train sequentially"""
POPULATION = 1000
"""RMIA's population sample when reference.population is null (at most the reserve)"""


@dataclass
class AuditPlan:
    """What an audit runs on: its config, the internal study config, the data, the factories and
    the target's state dict (of the model its factory builds, wrapped when it is not a Classifier)."""

    cfg: AuditConfig
    study: StudyConfig
    dataset: AuditDataset
    factory: ModelFactory
    target: ModelFactory
    """``factory`` with the target's weights digest: the target's job, never trained"""
    target_state: dict[str, torch.Tensor]
    base_dir: Path


def _callable(obj: Any, spec: str | None, base_dir: Path, where: str) -> tuple[Any, str | None]:
    if obj is not None:
        if not callable(obj):
            raise ConfigError(f"{where} must be a callable, got {type(obj).__name__}")
        return obj, label(obj)
    if spec is None:
        return None, None
    return import_function(spec, base_dir, where), spec


def prepare_audit(cfg: AuditConfig, base_dir: str | Path = ".", *, factory=None, target=None, train=None,
                  members=None, nonmembers=None, public=None) -> AuditPlan:
    """Resolve the user's model, weights and data (objects win over the config's names and paths)."""
    base_dir = Path(base_dir).resolve()
    make, make_name = _callable(factory, cfg.model.factory, base_dir, "model.factory")
    if make is None:
        raise ConfigError("an audit needs the model factory: model.factory: 'module:function' returning an untrained "
                          "nn.Module (or factory=... in overconf.audit)")
    fit, fit_name = _callable(train, cfg.model.train, base_dir, "model.train")
    if fit is not None and cfg.recipe is not None:
        raise ConfigError("give either recipe or a training function (model.train / train=...), not both")
    if fit is None and cfg.recipe is None:
        raise ConfigError("an audit needs how the target was trained: recipe: {optimizer, lr, epochs, batch_size, ...} "
                          "(overconf trains the shadow and reference models with it), or model.train: "
                          "'module:function' (your training function)")
    if fit is not None and cfg.reference.mode == "batched":
        raise ConfigError("reference.mode = batched cannot use your training function; use auto or sequential")
    weights = target if target is not None else cfg.model.weights
    if weights is None:
        raise ConfigError("an audit needs the trained target: model.weights: FILE (its state dict) or target=... "
                          "(a module or a state dict) in overconf.audit")
    if isinstance(weights, str) and target is None:
        weights = base_dir / weights
    parts = {}
    for key, obj in (("members", members), ("nonmembers", nonmembers), ("public", public)):
        obj = obj if obj is not None else getattr(cfg.data, key)
        if obj is None and key != "public":
            raise ConfigError(f"an audit needs data.{key} (or {key}=... in overconf.audit)")
        parts[key] = None if obj is None else read_any(obj, f"data.{key}", base_dir)
    fac = model_factory(make, make_name, fit, fit_name)
    state = target_state(weights)
    k = num_outputs(fac, state, parts["members"][0], cfg)
    d = cfg.data
    ds = audit_dataset(parts["members"], parts["nonmembers"], parts["public"], mean=cfg.normalize.mean,
                       std=cfg.normalize.std, num_classes=k, seed=cfg.seed, eval_size=d.eval_size, fit_size=d.fit_size,
                       shadow_train=d.shadow_train, shadow_test=d.shadow_test, calibration=d.calibration,
                       shuffle_public=d.shuffle_public, overlap=d.overlap, name=cfg.name)
    study = study_config(cfg, ds, fac)
    check_plan(study, ds)
    wrapped = fac.build(k)
    load_into(wrapped, state, fac.name)
    if cfg.executor == "ray":
        pickle_by_value(make, fit)
    if study.reference.mode == "batched" and has_batchnorm(wrapped):
        raise ConfigError(f"reference.mode = batched cannot train {fac.name} (it has BatchNorm layers); use "
                          f"reference.mode: auto or sequential")
    log.info("audit %s: %d classes, sizes %s", cfg.name, k, ds.sizes)
    return AuditPlan(cfg, study, ds, fac, fac.for_target(weights_digest(state)), wrapped.state_dict(), base_dir)


def num_outputs(fac: ModelFactory, state: dict, members: torch.Tensor, cfg: AuditConfig) -> int:
    """The target's number of outputs K, from a forward pass on the first (normalised) members."""
    with isolated_rng(derive_seed(cfg.seed, "audit", "probe")):
        module = fac.make()
    load_into(module, state, fac.name)
    c = members.shape[1]
    x = (members[:4].float() / 255 - channel_values(cfg.normalize.mean, c, "normalize.mean")) \
        / channel_values(cfg.normalize.std, c, "normalize.std")
    module.eval()
    try:
        with torch.no_grad():
            out = module(x)
    except Exception as e:  # the user's forward failed on the user's data: say so
        raise ConfigError(f"the target ({fac.name}) fails on the members' images of shape {tuple(members.shape[1:])} "
                          f"({type(e).__name__}: {e}); check the data and the factory") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] < 2:
        raise ConfigError(f"the target ({fac.name}) must return class logits [N, K] with K >= 2, got "
                          f"{getattr(out, 'shape', type(out).__name__)}")
    return int(out.shape[1])


def study_config(cfg: AuditConfig, ds: AuditDataset, fac: ModelFactory) -> StudyConfig:
    """The internal study: one seed, one model (the factory), one setting (``baseline``: the target
    as it is), the audit's split sizes, sources, attacks, reference models and report."""
    s = ds.sizes
    splits = SplitSizes(**{k: s[k] for k in ("target_train", "shadow_train", "calibration", "target_test",
                                             "shadow_test")})
    data = DataConfig(dataset="audit", splits=splits, eval_size=s["eval_size"], fit_size=s["fit_size"],
                      overlap=cfg.data.overlap)
    r = cfg.reference
    recipe = cfg.recipe or Recipe()
    mode = r.mode
    if mode == "auto" and (fac.fit is not None or any(getattr(recipe, key) for key in FAST_KEYS)):
        mode = "sequential"  # the batched trainer runs neither a training function nor augmentation
    population = r.population if r.population is not None else max(1, min(POPULATION, s["reserve"] - r.extra_points))
    reference = ReferenceConfig(num_models=r.num_models, mode=mode, group_size=r.group_size,
                                extra_points=r.extra_points, population=population)
    return StudyConfig(name=cfg.name, seeds=[cfg.seed], device=cfg.device, data=data,
                       models=[ModelSpec(fac.name, name=cfg.model.name)], recipe=recipe, sources=list(cfg.sources),
                       attacks=list(cfg.attacks), settings=[Setting("baseline")], metrics=cfg.metrics,
                       reference=reference, report=cfg.report, gan=cfg.gan, cache_dir=cfg.cache_dir,
                       output_dir=cfg.output_dir, progress=cfg.progress, executor=cfg.executor, ray=cfg.ray)


def check_plan(study: StudyConfig, ds: AuditDataset) -> None:
    """The components' parameters (the registries) and the reserve the reference attacks need."""
    from overconf.runner import catalog as R
    from overconf.runner.validation import validate_components

    validate_components(dataclasses.replace(study, models=[]))  # the model is the user's, not a registered one
    r, reserve = study.reference, ds.sizes["reserve"]
    if uses_references([R.ATTACKS[c.name](**c.params) for c in study.attacks]) and r.extra_points + r.population > reserve:
        raise ConfigError(f"the reference attacks need reference.extra_points ({r.extra_points}) + reference.population "
                          f"({r.population}) public images besides the shadow model's, but only {reserve} are left; "
                          f"pass more public data (data.public) or lower reference.population / extra_points / "
                          f"data.shadow_train")
