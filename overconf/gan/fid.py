"""Frechet distance between image sets (FID, Heusel et al. 2017), computed by pytorch-fid:
d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) over feature means and covariances.

Features: by default the penultimate layer of a classifier trained in the study on reserve
images (disjoint from every member set), cached like every classifier; with a local copy of
pytorch-fid's weights, InceptionV3's 2048-d pool3 features (the standard FID). Nothing is
downloaded: the Inception network is built by pytorch-fid with its weight loader pointed at the
local file.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Protocol
from unittest import mock

import numpy as np
import torch

from overconf.core.cache import Cache
from overconf.config import Recipe
from overconf.core.device import to_device_images
from overconf.core.errors import ConfigError
from overconf.signals.outputs import cached_outputs
from overconf.core.seeding import derive_seed
from overconf.training.jobs import ClassifierJob, TrainedClassifier, load_or_train


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """FID between feature sets ``a`` [N, D] and ``b`` [M, D] (Gaussian fits, pytorch-fid's formula)."""
    stats = []
    for f in (a, b):
        f = f.detach().double().cpu().numpy()
        if len(f) < 2:
            raise ValueError("the Frechet distance needs at least 2 samples per set")
        stats += [f.mean(0), np.atleast_2d(np.cov(f, rowvar=False))]
    from pytorch_fid.fid_score import calculate_frechet_distance  # imports torchvision (~2 s): on use

    with warnings.catch_warnings():  # pytorch-fid passes scipy's deprecated sqrtm(disp=...)
        warnings.simplefilter("ignore", DeprecationWarning)
        return float(calculate_frechet_distance(*stats))


class FeatureExtractor(Protocol):
    description: str

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images [N, C, H, W] -> float features [N, D] on the CPU."""


class ClassifierFeatures:
    """Penultimate-layer features of a study classifier, cached per (model, images)."""

    def __init__(self, trained: TrainedClassifier, normalize, cache: Cache, device: torch.device, description: str):
        self.trained, self.normalize, self.cache, self.device = trained, normalize, cache, device
        self.description = description

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        unknown = torch.full((len(images),), -1, dtype=torch.long)
        return cached_outputs(self.cache, self.trained.key, self.trained.model, self.normalize(images), unknown,
                              self.device).features


def load_inception(weights: str | Path):
    """pytorch-fid's FID InceptionV3 (pool3 block) with weights from a local file, never downloaded."""
    import pytorch_fid.inception as inception

    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"gan.fid.inception_weights: '{weights}' is not a file; give the local path to "
                          f"pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
    state = torch.load(path, map_location="cpu", weights_only=True)
    with mock.patch.object(inception, "load_state_dict_from_url", lambda *a, **k: state):
        net = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True,
                                    normalize_input=True, use_fid_inception=True)
    return net.eval()


class InceptionFeatures:
    """InceptionV3 pool3 features (2048-d) of images in [0, 1], grey images repeated to RGB; float32
    (no bf16 autocast: FID values should be comparable with other implementations)."""

    description = "InceptionV3 pool3 (2048-d, pytorch-fid weights)"

    def __init__(self, weights: str | Path, device: torch.device, batch_size: int = 100):
        self.net = load_inception(weights).to(device)
        self.device, self.batch_size = device, batch_size

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(0, len(images), self.batch_size):
            x = to_device_images(images[i: i + self.batch_size], self.device).float() / 255
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            out.append(self.net(x)[0].flatten(1).float().cpu())
        return torch.cat(out) if out else torch.empty(0, 2048)


def study_fid_features(fid, dataset, splits, seed: int, cache: Cache, device: torch.device,
                       progress: bool = False) -> FeatureExtractor:
    """The feature extractor ``fid`` (a :class:`~overconf.config.gan.FidConfig`) asks for."""
    if fid.inception_weights:
        return InceptionFeatures(fid.inception_weights, device)
    idx = splits.reserve[: fid.train_images]
    if len(idx) == 0:
        raise ConfigError("the reserve split is empty, so no FID feature classifier can be trained on data "
                          "disjoint from the members; lower data.splits sizes or set gan.fid.inception_weights")
    job = ClassifierJob(fid.classifier, Recipe(epochs=fid.epochs), derive_seed(seed, "fid"), dataset.train_x[idx],
                        dataset.train_y[idx], dataset.mean, dataset.std, dataset.num_classes,
                        name=f"fid {fid.classifier} s{seed}")
    trained = load_or_train(job, cache, device, progress=progress)
    return ClassifierFeatures(trained, dataset.normalize, cache, device, fid.features)
