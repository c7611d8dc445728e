"""Datasets (uint8 image tensors), disjoint splits, and registered non-member sources.

The GAN sources (``fake``, ``fake_conditional``) live in the gan layer (overconf.gan.sources) and
register when overconf.runner.catalog is imported."""
from .datasets import DATASETS, ImageDataset, load_dataset
from .splits import Splits, make_splits
from .sources import SOURCES, SourceContext, SourceData

__all__ = ["DATASETS", "ImageDataset", "load_dataset", "Splits", "make_splits", "SOURCES",
           "SourceContext", "SourceData"]
