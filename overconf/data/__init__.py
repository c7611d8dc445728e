"""Datasets (uint8 image tensors), disjoint splits, and registered non-member sources."""
from .datasets import DATASETS, ImageDataset, load_dataset
from .splits import Splits, make_splits
from .sources import SOURCES, SourceContext, SourceData
from ..gan import sources as _gan_sources  # noqa: F401  (registers fake, fake_conditional)

__all__ = ["DATASETS", "ImageDataset", "load_dataset", "Splits", "make_splits", "SOURCES",
           "SourceContext", "SourceData"]
