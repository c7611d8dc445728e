"""Executors: where a study's trainings and model outputs run (``executor: local | ray``).

``local`` (default) computes everything in the study's own process, when the study asks for it.
``ray`` (:mod:`overconf.executor.ray_tasks`) first runs the seed's independent work items
(:mod:`overconf.executor.plan`: GANs, target / shadow trainings with training-time defenses,
reference models, outputs on splits and sources) as Ray tasks that fill the content-keyed cache;
then the normal study runs in the driver and finds every model and output there (calibration,
attacks and metrics stay in the driver). The executor is in no cache key: a study gives the same
rows on either, and a rerun on one reuses what the other stored.
"""
from __future__ import annotations


def check_executor(cfg) -> None:
    """Before any training: ``executor: ray`` needs the ray package (one clear error otherwise)."""
    if cfg.executor == "ray":
        from .ray_tasks import import_ray

        import_ray()


def prepare_seed(study, seed: int) -> dict:
    """The seed's sources (``study.build_sources``); with ``executor: ray`` the seed's work items
    run as Ray tasks first (trainings while the driver builds the sources), so the study that
    follows only loads from the cache."""
    if study.cfg.executor != "ray":
        return study.build_sources(seed)
    from .plan import gan_items, source_items, training_items
    from .ray_tasks import RayExecutor

    ex = getattr(study, "_ray_executor", None)
    if ex is None:
        ex = study._ray_executor = RayExecutor(study)
    try:
        gans = gan_items(study, seed)
        ex.submit(gans)
        trainings, targets = training_items(study, seed)
        ex.submit(trainings)
        ex.wait(gans)  # the GAN sources sample the generators
        sources = study.build_sources(seed)
        ex.submit(source_items(targets, sources))
        ex.wait()
    except BaseException:
        ex.cancel()
        raise
    return sources
