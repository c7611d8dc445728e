"""Disjoint, stratified, seeded splits of a dataset's train and test pools.

Reference protocol (Hintersdorf et al. 2022): disjoint target-train / shadow-train from the
train pool, target-test / shadow-test from the test pool; here also a held-out calibration
split (temperature, Laplace prior) that is never an evaluation non-member, and the rest of the
train pool as 'reserve' (GAN training, feature extractors, population samples).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..config import SplitSizes
from overconf.core.errors import ConfigError
from overconf.core.seeding import generator
from .datasets import ImageDataset

TRAIN_POOL = ("target_train", "shadow_train", "calibration")
TEST_POOL = ("target_test", "shadow_test")


@dataclass
class Splits:
    """Index tensors into ``dataset.train_*`` (train-pool splits) or ``dataset.test_*``."""

    target_train: torch.Tensor
    shadow_train: torch.Tensor
    calibration: torch.Tensor
    reserve: torch.Tensor
    target_test: torch.Tensor
    shadow_test: torch.Tensor

    def pool(self, name: str) -> str:
        return "test" if name in TEST_POOL else "train"

    def images(self, dataset: ImageDataset, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 images, labels) of split ``name``."""
        idx = getattr(self, name)
        if self.pool(name) == "test":
            return dataset.test_x[idx], dataset.test_y[idx]
        return dataset.train_x[idx], dataset.train_y[idx]


def stratified_order(labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A random order of ``range(len(labels))`` whose every prefix is class-stratified.

    Each element gets the key (rank within its class + U) / class size, with U uniform; sorting
    by key interleaves the classes in proportion to their sizes.
    """
    n = len(labels)
    perm = torch.randperm(n, generator=g)
    lab = labels[perm]
    order = torch.argsort(lab, stable=True)
    counts = torch.bincount(lab)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.float64)
    rank[order] = (torch.arange(n) - starts.repeat_interleave(counts)).double()
    key = (rank + torch.rand(n, generator=g, dtype=torch.float64)) / counts[lab].double()
    return perm[torch.argsort(key, stable=True)]


def make_splits(dataset: ImageDataset, sizes: SplitSizes, seed: int) -> Splits:
    sizes_d = dataclasses.asdict(sizes)
    out = {}
    for pool, names, labels in (("train", TRAIN_POOL, dataset.train_y), ("test", TEST_POOL, dataset.test_y)):
        need = sum(sizes_d[n] for n in names)
        if need > len(labels):
            parts = " + ".join(f"data.splits.{n}={sizes_d[n]}" for n in names)
            raise ConfigError(
                f"{parts} = {need} exceeds the {len(labels)} images of {dataset.name}'s {pool} pool; "
                f"lower these sizes"
            )
        order = stratified_order(labels, generator(seed, "splits", pool))
        start = 0
        for n in names:
            out[n] = order[start:start + sizes_d[n]]
            start += sizes_d[n]
        if pool == "train":
            out["reserve"] = order[start:]
    return Splits(**out)
