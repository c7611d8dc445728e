"""Executors: where a study's trainings and model outputs run (``executor: local | ray``).

``local`` (default) computes everything in the study's own process, when the study asks for it.
``ray`` (:mod:`overconf.runner.executor.ray_tasks`) first runs the seed's independent work items
(:mod:`overconf.runner.executor.plan`: GANs, target / shadow trainings with training-time defenses,
reference models, outputs on splits and sources) as Ray tasks that fill the content-keyed cache;
then the normal study runs in the driver and finds every model and output there (calibration,
attacks and metrics stay in the driver). The executor is in no cache key: a study gives the same
rows on either, and a rerun on one reuses what the other stored.
"""
from __future__ import annotations


def check_executor(cfg) -> None:
    """Before any training: ``executor: ray`` needs the ray package (one clear error otherwise)."""
    if cfg.executor == "ray":
        from overconf.runner.executor.ray_tasks import import_ray

        import_ray()


def make_executor(cfg, cache, device):
    """The study run's executor: None (local) or a :class:`~overconf.runner.executor.ray_tasks.RayExecutor`
    (one per run; it connects to or starts the Ray runtime)."""
    if cfg.executor != "ray":
        return None
    from overconf.runner.executor.ray_tasks import RayExecutor

    return RayExecutor(cfg, cache, device)


def prepare_seed(jobs, executor=None) -> dict:
    """The seed's sources (``jobs.build_sources()``, ``jobs`` an :class:`overconf.runner.seed_jobs.SeedJobs`);
    with a Ray ``executor`` (:func:`make_executor`) the seed's work items run as Ray tasks first
    (trainings while the driver builds the sources), so the study that follows only loads from the cache."""
    if executor is None:
        return jobs.build_sources()
    from overconf.runner.executor.plan import gan_items, source_items, training_items

    ex = executor
    try:
        gans = gan_items(jobs)
        ex.submit(gans)
        trainings, targets = training_items(jobs)
        ex.submit(trainings)
        ex.wait(gans)  # the GAN sources sample the generators
        sources = jobs.build_sources()
        ex.submit(source_items(targets, sources))
        ex.wait()
    except BaseException:
        ex.cancel()
        raise
    return sources
