"""The ``fake`` and ``fake_conditional`` non-member sources: samples of the study's DCGAN, trained
on the reserve split, so every sample is a true non-member (the reference study's GAN source).
The generator comes from the trained-artifact cache through ``SourceContext.generator_for``.

Generator settings come from the study's ``gan:`` section; a source's own parameters choose how
to sample: ``psi`` (truncation) and, for ``fake_conditional``, ``classes`` (indices or names,
cycled; the conditioned class is the sample's label). Each source also reports the generator's
training time and the FID of its samples against the target-test images (``gan.fid``).
"""
from __future__ import annotations

import torch

from overconf.core.cache import Cache
from overconf.core.errors import ConfigError
from ..data.sources import SOURCES, SourceContext, SourceData
from overconf.gan.fid import frechet_distance, study_fid_features
from ..config.gan import GanConfig
from .sampling import resolve_classes, sample


@SOURCES.register("fake")
def fake(ctx: SourceContext, psi: float | None = None) -> SourceData:
    """Unconditional DCGAN samples; the GAN trains on the reserve split (true non-members)."""
    return gan_source(ctx, False, psi, None, "fake")


@SOURCES.register("fake_conditional")
def fake_conditional(ctx: SourceContext, psi: float | None = None, classes: list | None = None) -> SourceData:
    """Class-conditional DCGAN samples (classes cycled; label = the conditioned class)."""
    return gan_source(ctx, True, psi, classes, "fake_conditional")


def gan_config(ctx: SourceContext) -> GanConfig:
    return ctx.gan if ctx.gan is not None else GanConfig()


def gan_source(ctx: SourceContext, conditional: bool, psi: float | None, classes, name: str) -> SourceData:
    gan = gan_config(ctx)
    classes = resolve_classes(classes, ctx.dataset.classes, conditional, f"source {name}")
    device = ctx.device or torch.device("cpu")
    cache = ctx.cache if ctx.cache is not None else Cache("checkpoints", enabled=False)
    if ctx.generator_for is None:
        raise ConfigError(f"source '{name}' samples the study's generator, but its SourceContext has no "
                          f"generator_for; run it in a study, or pass generator_for="
                          f"functools.partial(overconf.gan.generators.seed_generator, seed_ctx)")
    trained = ctx.generator_for(conditional)
    images, labels, _ = sample(trained.generator, ctx.size, generator=ctx.generator, device=device, psi=psi,
                               classes=classes)
    data = SourceData(ctx.dataset.normalize(images), labels, images)
    data.info = {"gan_train_seconds": trained.seconds, "gan_train_images": len(trained.job.images),
                 "gan_steps": trained.job.recipe.steps}
    if gan.fid.enabled:
        data.info |= fid_info(ctx, gan, images, cache, device)
    return data


def fid_info(ctx: SourceContext, gan: GanConfig, images: torch.Tensor, cache: Cache,
             device: torch.device) -> dict[str, float]:
    """FID of ``images`` vs as many target-test images; ``fid_real``: the same for real reserve
    images that neither the GAN nor the feature classifier saw (the floor at this sample size)."""
    features = study_fid_features(gan.fid, ctx.dataset, ctx.splits, ctx.seed, cache, device, ctx.progress)
    real, _ = ctx.test_images()
    real_f = features(real)
    out = {"fid": frechet_distance(features(images), real_f)}
    caps = (gan.train_images, 0 if gan.fid.inception_weights else gan.fid.train_images)
    if None not in caps:  # some reserve images are left over
        start = max(caps)
        held = ctx.splits.reserve[start: start + len(real)]
        if len(held) >= 2:
            out["fid_real"] = frechet_distance(features(ctx.dataset.train_x[held]), real_f)
    return out
