"""Registered non-member sources.

A source turns a :class:`SourceContext` into :class:`SourceData`: model inputs ``x`` (already
in the model's input space), labels (-1 where no label of the target's task applies) and uint8
images for display. Reference study (Hintersdorf et al. 2022): test images, natural OOD data,
GAN fakes, pixel-permuted images, scaled inputs (normalized image x 255) and un-normalized
inputs (raw [0, 1] pixels fed to a model trained on normalized inputs); plus noise.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from overconf.core.registry import Registry
from .datasets import ImageDataset, load_dataset, resize_images
from .splits import Splits

SOURCES: Registry = Registry("source")
log = logging.getLogger(__name__)


@dataclass
class SourceContext:
    dataset: ImageDataset
    splits: Splits
    size: int
    """how many samples to return (a source with fewer available returns all it has)"""
    generator: torch.Generator
    seed: int
    data_root: str | None = None
    download: bool = False
    device: torch.device | None = None
    cache: Any = None
    """the study's :class:`overconf.core.cache.Cache` (sources that train something cache it there)"""
    progress: bool = False
    gan: Any = None
    """the study's ``gan:`` section (:class:`overconf.config.GanConfig`: FID settings of the GAN
    sources); None: the defaults"""
    generator_for: Callable[[bool], Any] | None = None
    """conditional -> the seed's trained generator, from the trained-artifact cache (the runner
    passes :func:`overconf.gan.generators.seed_generator` bound to its seed context); the data
    layer never trains a generator itself. None: no GAN sources."""

    def test_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``size`` target-test images: the in-distribution non-members."""
        x, y = self.splits.images(self.dataset, "target_test")
        return x[: self.size], y[: self.size]

    def test_index(self) -> torch.Tensor:
        return self.splits.target_test[: self.size]


@dataclass
class SourceData:
    x: torch.Tensor
    """model inputs, float32 [N, C, H, W]"""
    y: torch.Tensor
    """int64 [N]; -1 where the input has no label of the target's task"""
    images: torch.Tensor
    """uint8 [N, C, H, W] for display"""
    pool: str | None = None
    """'train' or 'test' when the inputs are images of the study dataset's pool, or made from them"""
    pool_index: torch.Tensor | None = None
    """the indices in that pool of the images the inputs are (or were made from): their keep
    status for reference-model attacks (a model that trained on an image counts as IN for the
    inputs made from it)"""
    derived: bool = False
    """True when the inputs are transformed pool images (permuted, scaled, unnormalized): they
    share the originals' keep status but not their content (nothing may reuse the originals'
    outputs for them); False when they are the unchanged pool images"""
    info: dict[str, float] = field(default_factory=dict)
    """numbers describing the source itself (e.g. a generator's FID), reported as rows with attack '-'"""

    def __len__(self) -> int:
        return len(self.x)


def image_digests(images: torch.Tensor) -> list[bytes]:
    """sha1 of each uint8 image's bytes (shape included): equal digests = equal content."""
    a = np.ascontiguousarray(images.detach().cpu().numpy())
    head = repr(tuple(a.shape[1:])).encode()
    rows = a.reshape(len(a), int(np.prod(a.shape[1:])))
    return [hashlib.sha1(head + row.tobytes()).digest() for row in rows]


def without_members(label: str, data: SourceData, members: set[bytes], overlap: str = "refuse") -> SourceData:
    """Content overlap of a non-member source with the target's members (``members``: their
    :func:`image_digests`). A source from the study's own dataset (``digits`` in a digits study,
    ``fashion_mnist`` with ``split: train``) can hold training images, which are members, not
    non-members. ``overlap='refuse'``: a ConfigError naming the source, the count and the fix;
    ``'remove'``: drop them (logged) and report the count as the source's ``overlap_removed``."""
    if data.images.dtype != torch.uint8:
        raise TypeError(f"source '{label}': images must be uint8, got {data.images.dtype}")
    hits = torch.tensor([d in members for d in image_digests(data.images)], dtype=torch.bool)
    n = int(hits.sum())
    if overlap == "remove":
        data.info["overlap_removed"] = n
    if n == 0:
        return data
    if overlap != "remove":
        from overconf.core.errors import ConfigError

        raise ConfigError(
            f"source '{label}': {n} of its {len(data)} images are training images of the target model "
            f"(members, not non-members); set data.overlap: remove to drop them, or take the source "
            f"from images the target did not train on (another split, e.g. split: test)")
    keep = ~hits
    data.x, data.y = data.x[keep.to(data.x.device)], data.y[keep.to(data.y.device)]
    data.images = data.images[keep.to(data.images.device)]
    if data.pool_index is not None:
        data.pool_index = data.pool_index[keep.to(data.pool_index.device)]
    log.info("source %s: removed %d images equal to target training images (data.overlap: remove)", label, n)
    return data


def _unlabelled(n: int) -> torch.Tensor:
    return torch.full((n,), -1, dtype=torch.long)


def from_images(ctx: SourceContext, images: torch.Tensor, labels: torch.Tensor) -> SourceData:
    return SourceData(ctx.dataset.normalize(images), labels, images)


@SOURCES.register("test")
def test(ctx: SourceContext) -> SourceData:
    """Unseen in-distribution images (the target-test split)."""
    data = from_images(ctx, *ctx.test_images())
    data.pool, data.pool_index = "test", ctx.test_index()
    return data


def _derived(ctx: SourceContext, data: SourceData) -> SourceData:
    """Inputs made from the first ``size`` target-test images, one each, in order: they carry the
    keep status of the image they were made from (half of the reference models trained on it)."""
    data.pool, data.pool_index, data.derived = "test", ctx.test_index(), True
    return data


@SOURCES.register("permuted")
def permuted(ctx: SourceContext) -> SourceData:
    """Test images with one random pixel permutation each, shared by all channels."""
    images, _ = ctx.test_images()
    n, c, h, w = images.shape
    perms = torch.argsort(torch.rand(n, h * w, generator=ctx.generator), dim=1)
    flat = images.reshape(n, c, h * w)
    out = torch.gather(flat, 2, perms.unsqueeze(1).expand(n, c, h * w)).reshape(n, c, h, w)
    return _derived(ctx, from_images(ctx, out, _unlabelled(n)))


@SOURCES.register("scaled")
def scaled(ctx: SourceContext, factor: float = 255.0) -> SourceData:
    """Normalized test images multiplied by ``factor`` (the reference study used 255)."""
    images, labels = ctx.test_images()
    return _derived(ctx, SourceData(ctx.dataset.normalize(images) * factor, labels, images))


@SOURCES.register("unnormalized")
def unnormalized(ctx: SourceContext) -> SourceData:
    """Raw [0, 1] test pixels fed to a model trained on normalized inputs."""
    images, labels = ctx.test_images()
    return _derived(ctx, SourceData(images.float() / 255, labels, images))


@SOURCES.register("gaussian")
def gaussian(ctx: SourceContext, mean: float | None = None, std: float | None = None) -> SourceData:
    """Gaussian pixel noise, per channel N(mean, std) in [0, 1] pixel units, clipped.

    Defaults to the dataset's channel statistics, so inputs look like N(0, 1) to the model."""
    c, h, w = ctx.dataset.shape
    mu = ctx.dataset.mean if mean is None else torch.full((c, 1, 1), float(mean))
    sd = ctx.dataset.std if std is None else torch.full((c, 1, 1), float(std))
    noise = torch.randn(ctx.size, c, h, w, generator=ctx.generator) * sd + mu
    images = (noise.clamp(0, 1) * 255).round().to(torch.uint8)
    return from_images(ctx, images, _unlabelled(ctx.size))


@SOURCES.register("uniform")
def uniform(ctx: SourceContext) -> SourceData:
    """Uniform pixel noise over [0, 255]."""
    c, h, w = ctx.dataset.shape
    images = torch.randint(0, 256, (ctx.size, c, h, w), generator=ctx.generator, dtype=torch.uint8)
    return from_images(ctx, images, _unlabelled(ctx.size))


def external(ctx: SourceContext, name: str, split: str = "test", exclude_classes: list[str] = (),
             root: str | None = None, download: bool | None = None) -> SourceData:
    """Another dataset's images resized to the study's shape: natural OOD inputs."""
    ds = load_dataset(name, root if root is not None else ctx.data_root,
                      ctx.download if download is None else download)
    if split not in ("train", "test", "all"):
        from overconf.core.errors import ConfigError

        raise ConfigError(f"source {name}: split '{split}' is not allowed; use train, test or all")
    xs = {"train": [ds.train_x], "test": [ds.test_x], "all": [ds.train_x, ds.test_x]}[split]
    ys = {"train": [ds.train_y], "test": [ds.test_y], "all": [ds.train_y, ds.test_y]}[split]
    x, y = torch.cat(xs), torch.cat(ys)
    if exclude_classes:
        unknown = [c for c in exclude_classes if c not in ds.classes]
        if unknown:
            from overconf.core.errors import ConfigError

            raise ConfigError(f"source {name}: unknown class '{unknown[0]}' in exclude_classes; "
                              f"classes: {', '.join(ds.classes)}")
        drop = torch.tensor([ds.classes.index(c) for c in exclude_classes])
        keep = ~torch.isin(y, drop)
        x = x[keep]
    idx = torch.randperm(len(x), generator=ctx.generator)[: ctx.size]
    images = resize_images(x[idx], ctx.dataset.shape)
    return from_images(ctx, images, _unlabelled(len(idx)))


def _register_external(name: str, doc: str, default_split: str = "test") -> None:
    def source(ctx: SourceContext, split: str = default_split, exclude_classes: list[str] = (),
               root: str | None = None, download: bool | None = None) -> SourceData:
        return external(ctx, name, split, list(exclude_classes), root, download)

    source.__doc__ = doc
    source.__name__ = name
    SOURCES.register(name)(source)


_register_external("digits", "scikit-learn's 8x8 handwritten digits (all 1,797), resized: natural "
                             "OOD data.", default_split="all")
_register_external("fashion_mnist", "Fashion-MNIST images, resized (OOD for other datasets).")
_register_external("cifar10", "CIFAR-10 images (local torchvision root).")
_register_external("cifar100", "CIFAR-100 images (local torchvision root).")
_register_external("svhn", "SVHN images (local torchvision root).")
_register_external("stl10", "STL-10 images resized to the study's size (local torchvision root); "
                            "the reference study removed the class 'monkey' (exclude_classes: [monkey]).")
