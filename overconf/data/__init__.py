"""Datasets (uint8 image tensors), disjoint splits, and registered non-member sources."""
from .datasets import DATASETS, ImageDataset, load_dataset
from .splits import Splits, make_splits
from .sources import SOURCES, SourceContext, SourceData

__all__ = ["DATASETS", "ImageDataset", "load_dataset", "Splits", "make_splits", "SOURCES",
           "SourceContext", "SourceData"]
