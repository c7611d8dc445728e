"""What one seed's jobs are: a frozen :class:`SeedJobs` built from (cfg, SeedContext, the attacks).

The runner's pure job building, shared by the study (overconf.runner.study), the executor's planner
(overconf.runner.executor.plan) and the analyses (overconf.runner.run_analysis), so that none of them needs the
``Study`` object: the target / shadow :class:`~overconf.training.jobs.ClassifierJob` of a (role,
model, setting) with its training-time defense, the shadow's setting, the seed's sources (checked
for overlap with the target's members) and a fitted post-hoc calibration (from cached outputs).
Same jobs and inputs as before, hence the same cache keys.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from overconf.runner import catalog as _catalog  # noqa: F401  (registers every source, signal and calibration)
from overconf.attacks import ATTACKS, Attack
from overconf.core.cache import Cache
from overconf.calibrations import CALIBRATIONS, Calibration, CalibrationContext
from overconf.config import Component, ModelSpec, Setting, StudyConfig, source_label
from overconf.signals.contexts import SeedContext
from overconf.data import SOURCES, SourceContext, SourceData, make_splits
from overconf.data.sources import image_digests, without_members
from overconf.defenses.training import with_training_defense
from overconf.core.device import resolve_device
from overconf.core.errors import ConfigError
from overconf.gan.generators import seed_generator
from overconf.signals.outputs import Outputs, cached_outputs
from overconf.core.seeding import derive_seed, generator
from overconf.signals.producers import SIGNALS, as_request
from overconf.training.jobs import ClassifierJob, TrainedClassifier

log = logging.getLogger("overconf")


def seed_context(cfg: StudyConfig, dataset, splits, seed: int, cache: Cache, device: torch.device,
                 run_dir: str | Path | None) -> SeedContext:
    """The seed's :class:`SeedContext`; generators log to ``RUN_DIR/tensorboard`` when the report has
    TensorBoard logs."""
    log_dir = Path(run_dir) / "tensorboard" if cfg.report.tensorboard and run_dir is not None else None
    return SeedContext(seed, dataset, splits, cache, device, cfg.data, cfg.reference, cfg.gan, cfg.metrics,
                       tuple(cfg.models), cfg.progress, log_dir)


@dataclass(frozen=True)
class SeedJobs:
    """One seed's jobs: ``SeedJobs(cfg, context, attacks)``; dataset, splits, cache and device are the
    context's."""

    cfg: StudyConfig
    context: SeedContext
    attacks: tuple[Attack, ...]

    @classmethod
    def build(cls, cfg: StudyConfig, dataset, seed: int, cache: Cache, device: torch.device, attacks,
              run_dir: str | Path | None = None) -> "SeedJobs":
        """The seed's splits (``make_splits``) and context, then its jobs."""
        splits = make_splits(dataset, cfg.data.splits, seed)
        return cls(cfg, seed_context(cfg, dataset, splits, seed, cache, device, run_dir), tuple(attacks))

    @property
    def seed(self) -> int:
        return self.context.seed

    @property
    def dataset(self):
        return self.context.dataset

    @property
    def splits(self):
        return self.context.splits

    @property
    def cache(self) -> Cache:
        return self.context.cache

    @property
    def device(self) -> torch.device:
        return self.context.device

    # ------------------------------------------------------------------ checks before any training
    def check(self) -> None:
        """Evaluation / fit sizes against the splits; attacks and signal producers validate the study
        (sizes, architectures) before any training."""
        d, s = self.cfg.data, self.cfg.data.splits
        for what, size, limit in (("data.eval_size", d.eval_size, ("data.splits.target_train", s.target_train)),
                                  ("data.fit_size", d.fit_size, ("data.splits.shadow_train", s.shadow_train)),
                                  ("data.fit_size", d.fit_size, ("data.splits.shadow_test", s.shadow_test))):
            if size > limit[1]:
                raise ConfigError(f"{what} = {size} exceeds {limit[0]} = {limit[1]}; lower {what} "
                                  f"or raise {limit[0]}")
        for attack in self.attacks:
            attack.check(self.context)
        for name in sorted({as_request(r).name for a in self.attacks for r in a.requires}):
            check = getattr(SIGNALS[name], "check", None)
            if check is not None:
                check(self.context)

    # ------------------------------------------------------------------ jobs
    @staticmethod
    def shadow_setting(setting: Setting) -> Setting:
        """What the attacker's shadow gets (:meth:`overconf.config.Setting.for_shadow`)."""
        return setting.for_shadow()

    def job(self, role: str, model: ModelSpec, setting: Setting) -> ClassifierJob:
        """The ``role`` (target | shadow) model's training job, with the setting's training-time defense."""
        ds, splits, seed = self.dataset, self.splits, self.seed
        images, labels = splits.images(ds, f"{role}_train")
        job = ClassifierJob(model.arch, self.cfg.recipe_for(model, setting), derive_seed(seed, role),
                            images, labels, ds.mean, ds.std, ds.num_classes,
                            params=model.params, name=f"{role} {model.label} {setting.name} s{seed}")
        return with_training_defense(job, setting.defense, splits.images(ds, "calibration"))

    def build_sources(self) -> dict[str, SourceData]:
        """Every source, checked for content overlap with the target's members (``data.overlap``)."""
        cfg, ds, splits, seed = self.cfg, self.dataset, self.splits, self.seed
        out = {}
        members = set(image_digests(splits.images(ds, "target_train")[0]))
        for comp in cfg.sources:
            label = source_label(comp)
            params = {k: v for k, v in comp.params.items() if k != "label"}
            ctx = SourceContext(ds, splits, cfg.data.eval_size, generator(seed, "source", label), seed, cfg.data.root,
                                cfg.data.download, self.device, self.cache, cfg.progress,
                                gan=cfg.gan, generator_for=functools.partial(seed_generator, self.context))
            data = without_members(label, SOURCES[comp.name](ctx, **params), members, cfg.data.overlap)
            if len(data) == 0:
                raise ConfigError(f"source '{label}' produced no samples")
            out[label] = data
            log.info("source %-14s %5d samples", label, len(data))
        return out

    # ------------------------------------------------------------------ calibration
    def calibration(self, comp: Component, trained: TrainedClassifier, outs: dict[str, Outputs],
                    role: str) -> Calibration:
        """``comp`` fitted on the model's cached train / calibration outputs (and its noise outputs when
        the calibration requires them), on a copy of the model's head."""
        head = torch.nn.Linear(trained.model.head.in_features, trained.model.head.out_features).double()
        head.load_state_dict({k: v.detach().cpu().double() for k, v in trained.model.head.state_dict().items()})
        cal = CALIBRATIONS[comp.name](**comp.params)
        extra: dict[str, Any] = {"noise": self.noise_outputs(trained)} if "noise" in cal.requires else {}
        ctx = CalibrationContext(head, outs["train"], outs["calibration"],
                                 derive_seed(self.seed, "calibration", role), extra)
        return cal.fit(ctx)

    def noise_outputs(self, trained: TrainedClassifier) -> Outputs:
        """Outputs on uniform-noise images (as many as the calibration split, at least 100), for a
        calibration's noise-OOD term; drawn from their own seeded stream and cached per model."""
        n = max(100, self.cfg.data.splits.calibration)
        images = torch.randint(0, 256, (n, *self.dataset.shape), generator=generator(self.seed, "calibration", "noise"),
                               dtype=torch.uint8)
        return cached_outputs(self.cache, trained.key, trained.model, self.dataset.normalize(images),
                              torch.full((n,), -1, dtype=torch.long), self.device)


@dataclass(frozen=True)
class StudyRun:
    """What the analyses of a study run read (overconf.runner.run_analysis): config, cache, device, run folder,
    the attacks, and the dataset when already loaded (a :class:`overconf.runner.study.Study` has the same
    attributes)."""

    cfg: StudyConfig
    cache: Cache
    device: torch.device
    run_dir: Path
    attacks: tuple[Attack, ...]
    dataset: Any = None

    @classmethod
    def from_config(cls, cfg: StudyConfig, run_dir: str | Path, cache: Cache | None = None) -> "StudyRun":
        """A finished run folder's: the config's cache and device, its attacks built from the registry."""
        return cls(cfg, cache or Cache(cfg.cache_dir), resolve_device(cfg.device), Path(run_dir),
                   tuple(ATTACKS[c.name](**c.params) for c in cfg.attacks))
