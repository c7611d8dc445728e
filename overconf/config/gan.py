"""The study's ``gan:`` section (schema): generator, FID, streaming and latent-search settings.

The ``fake`` and ``fake_conditional`` sources, the streaming evaluation and the latent search of
one seed all use the generator these settings determine (trained once, cached by content).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overconf.core.errors import ConfigError
from overconf.core.names import check_name

OBJECTIVES = ("max_score", "entropy")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass
class GanRecipe:
    """How a GAN is trained (part of the generator's cache key)."""

    steps: int
    batch_size: int
    lr: float
    beta1: float
    beta2: float


@dataclass
class FidConfig:
    """FID of fakes vs held-out real images (target-test split), by pytorch-fid's Frechet distance."""

    enabled: bool = True
    """compute each fake source's FID (rows ``fid``, ``fid_real``)"""
    classifier: str = "salem_cnn"
    """architecture of the feature classifier (penultimate-layer features), trained on the reserve"""
    epochs: int = 5
    """training epochs of the feature classifier"""
    train_images: int | None = 10000
    """reserve images the feature classifier trains on (null: the whole reserve)"""
    inception_weights: str | None = None
    """local path to pytorch-fid's pt_inception-2015-12-05-6726825d.pth: InceptionV3 pool3
    features instead of the classifier's (never downloaded)"""

    def __post_init__(self):
        _check(self.epochs >= 1, "gan.fid.epochs must be >= 1")
        _check(self.train_images is None or self.train_images >= 1, "gan.fid.train_images must be >= 1 or null")
        if self.inception_weights is not None and not Path(self.inception_weights).expanduser().is_file():
            raise ConfigError(
                f"gan.fid.inception_weights: '{self.inception_weights}' is not a file; give the local path "
                f"to pytorch-fid's pt_inception-2015-12-05-6726825d.pth (nothing is downloaded), or set "
                f"it to null to use the study's feature classifier")

    @property
    def features(self) -> str:
        """What the FID is computed on, in words (stated in the report)."""
        if self.inception_weights:
            return "InceptionV3 pool3 (2048-d, pytorch-fid weights)"
        n = "all" if self.train_images is None else f"{self.train_images}"
        return f"penultimate layer of a {self.classifier} trained on {n} reserve images ({self.epochs} epochs)"


@dataclass
class StreamConfig:
    """Streaming evaluation: score ``samples`` fresh fakes in batches against every fitted attack
    (0 = off); FPR with a Clopper-Pearson interval and flagged count as the sample count grows."""

    samples: int = 0
    """fresh fakes streamed per cell (0: off)"""
    batch_size: int = 1024
    """fakes generated and scored at once"""
    conditional: bool = False
    """stream the class-conditional generator's fakes (classes cycled) instead of the unconditional one"""
    psi: float | None = None
    """truncation: z ~ N(0, 1) truncated to [-psi, psi]; null: none"""

    def __post_init__(self):
        _check(self.samples >= 0, "gan.stream.samples must be >= 0 (0 turns streaming off)")
        _check(self.batch_size >= 1, "gan.stream.batch_size must be >= 1")
        _check(self.psi is None or self.psi > 0, "gan.stream.psi must be > 0 or null (no truncation)")


@dataclass
class SearchConfig:
    """Latent search: optimise z so the target is as confident as possible on G(z) (0 = off)."""

    samples: int = 0
    """latents optimised per cell (0: off)"""
    steps: int = 50
    """Adam steps on z"""
    lr: float = 0.05
    """Adam's learning rate on z"""
    objective: str = "max_score"
    """max_score: maximise max_k log p_k; entropy: minimise H(p) (the target's own softmax)"""
    conditional: bool = False
    """search the class-conditional generator's latents (classes cycled)"""
    psi: float | None = None
    """truncation: z is drawn from, and projected back onto, [-psi, psi]^d"""
    batch_size: int = 512
    """latents optimised at once"""

    def __post_init__(self):
        _check(self.samples >= 0, "gan.search.samples must be >= 0 (0 turns the search off)")
        _check(self.steps >= 1, "gan.search.steps must be >= 1")
        _check(self.lr > 0, "gan.search.lr must be > 0")
        _check(self.batch_size >= 1, "gan.search.batch_size must be >= 1")
        _check(self.objective in OBJECTIVES,
               f"gan.search.objective = '{self.objective}' is not allowed; use one of: {', '.join(OBJECTIVES)}")
        _check(self.psi is None or self.psi > 0, "gan.search.psi must be > 0 or null (no truncation)")


@dataclass
class GanConfig:
    """The generator every GAN feature of a seed uses; CPU-friendly defaults (Fashion-MNIST)."""

    arch: str = "dcgan"
    """generator architecture (a registered GAN: dcgan)"""
    params: dict[str, Any] = field(default_factory=dict)
    """architecture keyword arguments (dcgan: width, latent_dim)"""
    train_images: int | None = 10000
    """reserve images the GAN trains on (null: the whole reserve)"""
    steps: int = 1500
    """training steps (one discriminator and one generator update each)"""
    batch_size: int = 64
    """real and fake images per step"""
    lr: float = 2e-4
    """Adam's learning rate (generator and discriminator)"""
    beta1: float = 0.5
    """Adam's beta1"""
    beta2: float = 0.999
    """Adam's beta2"""
    log_every: int = 100
    """steps between loss readouts, TensorBoard scalars and sample grids"""
    fid: FidConfig = field(default_factory=FidConfig)
    """FID of the fakes against held-out real images"""
    stream: StreamConfig = field(default_factory=StreamConfig)
    """streaming evaluation of fresh fakes (off by default)"""
    search: SearchConfig = field(default_factory=SearchConfig)
    """latent search for fakes the target is most confident on (off by default)"""

    def __post_init__(self):
        _check(self.steps >= 0, "gan.steps must be >= 0")
        _check(self.batch_size >= 1, "gan.batch_size must be >= 1")
        _check(self.lr > 0, "gan.lr must be > 0")
        _check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "gan.beta1 and gan.beta2 must be in [0, 1)")
        _check(self.log_every >= 1, "gan.log_every must be >= 1")
        _check(self.train_images is None or self.train_images >= 1, "gan.train_images must be >= 1 or null")

    def recipe(self) -> GanRecipe:
        return GanRecipe(self.steps, self.batch_size, self.lr, self.beta1, self.beta2)


GAN_SOURCES = ("fake", "fake_conditional")


def validate_gan_names(cfg) -> None:
    """Torch-free checks of a :class:`~overconf.config.StudyConfig`'s ``gan`` section (registered
    names from overconf.core.names) and of the parameters of its GAN sources."""
    g = cfg.gan
    check_name("gan", g.arch, "gan.arch")
    check_name("architecture", g.fid.classifier, "gan.fid.classifier")
    for i, c in enumerate(cfg.sources):
        if c.name in GAN_SOURCES:
            psi = c.params.get("psi")
            _check(psi is None or (isinstance(psi, (int, float)) and psi > 0),
                   f"sources[{i}]({c.name}).psi must be a number > 0 or null, got {psi!r}")
            classes = c.params.get("classes")
            _check(classes is None or (isinstance(classes, list) and classes),
                   f"sources[{i}]({c.name}).classes must be a non-empty list of class indices or names")
