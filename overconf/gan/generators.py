"""The generator of a study seed from the trained-artifact cache (trained once per content key).

The runner hands :func:`seed_generator` bound to its :class:`~overconf.signals.contexts.SeedContext` to
the GAN sources (``SourceContext.generator_for``); the post-cell GAN hooks call it directly.
"""
from __future__ import annotations

from overconf.signals.contexts import SeedContext
from .training import TrainedGenerator, study_generator


def seed_generator(ctx: SeedContext, conditional: bool) -> TrainedGenerator:
    """Load (or train and cache) the seed's unconditional or class-conditional generator."""
    return study_generator(ctx.gan, ctx.dataset, ctx.splits, ctx.seed, conditional, ctx.cache, ctx.device,
                           progress=ctx.progress, log_dir=ctx.log_dir)
