"""Explicit, immutable contexts handed to the components of a study instead of the Study object.

:class:`SeedContext` is everything one seed of a study shares (built once per seed by the
runner): the dataset, its splits, the seed, the cache, the device and the config sections the
components read. Sources, signal producers (``SignalContext.context``), attack and producer
checks (``Attack.check(ctx)``), reference models and post-cell hooks (overconf.signals.cell_hooks) read it;
nothing below the runner sees the Study or its mutable state.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from overconf.core.cache import Cache
from overconf.config import DataConfig, GanConfig, MetricsConfig, ModelSpec, ReferenceConfig
from overconf.data.datasets import ImageDataset
from overconf.data.splits import Splits


@dataclass(frozen=True, eq=False)
class SeedContext:
    """One seed of a study (frozen; compared and hashed by identity, so it can key memos)."""

    seed: int
    dataset: ImageDataset
    splits: Splits
    cache: Cache
    device: torch.device
    data: DataConfig
    """``data:`` section (eval_size, fit_size, root, ...)"""
    reference: ReferenceConfig
    """``reference:`` section (reference models of LiRA, RMIA, Shokri)"""
    gan: GanConfig
    """``gan:`` section (generator, FID, streaming, search)"""
    metrics: MetricsConfig
    models: tuple[ModelSpec, ...]
    """the study's target architectures (checks that depend on them)"""
    progress: bool = False
    log_dir: Path | None = None
    """folder for TensorBoard logs of what components train (the run's tensorboard/), or None"""
