"""The planner: the independent work items of one seed of a study, as the study itself will ask
for them (same jobs, same inputs, hence the same cache keys).

Phase 1 (before the sources are built): the seed's generators (GAN sources), every target and
shadow training per (model, setting) with its training-time defense, the reference models of
each attacker (LiRA, RMIA, Shokri: one item per model when sequential, per group when batched),
and every model's outputs on its train, test and calibration splits (after its training).
Phase 2 (once the driver has built the sources): each target's outputs on every source.
Items are deduplicated by the entries they store (settings that share a model share its items);
what the cache already holds is left out by the executor.
"""
from __future__ import annotations

import logging

from overconf.config import Setting
from overconf.data import SourceData
from overconf.gan.training import study_gan_job
from overconf.reference.manager import check_reference, reference_set
from overconf.runner.seed_jobs import SeedJobs
from overconf.signals.producers import SIGNALS, as_request
from overconf.runner.executor.items import GanItem, OutputsItem, ReferenceItem, TrainItem, WorkItem

log = logging.getLogger("overconf")

GAN_SOURCES = {"fake": False, "fake_conditional": True}
"""source name -> the conditional flag of the generator it samples"""


def uses_references(attacks) -> bool:
    """Whether one of the attacks reads reference models (a producer checked by check_reference)."""
    names = {as_request(r).name for a in attacks for r in a.requires}
    return any(getattr(SIGNALS[n], "check", None) is check_reference for n in names)


def gan_items(jobs: SeedJobs) -> list[WorkItem]:
    """The seed's generators (GAN sources)."""
    cfg, seed = jobs.cfg, jobs.seed
    flags = sorted({GAN_SOURCES[c.name] for c in cfg.sources if c.name in GAN_SOURCES})
    return [GanItem(f"gan {'conditional' if c else 'unconditional'} s{seed}", arch=cfg.gan.arch,
                    job=study_gan_job(cfg.gan, jobs.dataset, jobs.splits, seed, c)) for c in flags]


def training_items(jobs: SeedJobs) -> tuple[list[WorkItem], dict[str, TrainItem]]:
    """Phase 1 without the generators; also the target trainings by model key (for phase 2)."""
    ds, splits = jobs.dataset, jobs.splits
    items: list[WorkItem] = []
    targets: dict[str, TrainItem] = {}
    refs = uses_references(jobs.attacks)
    for model in jobs.cfg.models:
        for setting in jobs.cfg.settings:
            roles: dict[str, Setting] = {"target": setting, "shadow": jobs.shadow_setting(setting)}
            for role, s in roles.items():
                job = jobs.job(role, model, s)
                train = TrainItem(f"train {job.name}", arch=job.arch, job=job)
                sets = []
                for split in (f"{role}_train", f"{role}_test", "calibration"):
                    images, labels = splits.images(ds, split)
                    sets.append((ds.normalize(images), labels))
                items += [train, OutputsItem(f"outputs {job.name} on splits", [train], job.arch, job=job, sets=sets)]
                if role == "target":
                    targets.setdefault(job.key, train)
                elif refs:
                    rs = reference_set(jobs.context, job)
                    ks = [[k] for k in range(rs.num_models)] if rs.mode == "sequential" else rs.groups()
                    items += [ReferenceItem(f"reference models {g[0]}-{g[-1]} of {rs.num_models} ({rs.arch}, "
                                            f"{job.name})", arch=rs.arch, refs=rs, ks=g) for g in ks]
    return unique(items), targets


def source_items(targets: dict[str, TrainItem], sources: dict[str, SourceData]) -> list[WorkItem]:
    """Phase 2: every target's outputs on every source (model inputs and labels as the study's)."""
    sets = [(d.x, d.y) for d in sources.values()]
    return [OutputsItem(f"outputs {t.job.name} on sources", [t], t.arch, job=t.job, sets=sets)
            for t in targets.values()]


def unique(items: list[WorkItem]) -> list[WorkItem]:
    seen: dict[tuple, WorkItem] = {}
    for item in items:
        seen.setdefault(item.id, item)
    return list(seen.values())
