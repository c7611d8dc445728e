"""Registered classifier architectures. Each builds a :class:`Classifier` from the input shape.

Every classifier splits into ``features(x)`` (penultimate activations) and a linear ``head``,
so that last-layer methods (Laplace, FID features) work from cached features.
"""
from .base import MODELS, Classifier, build_model
from . import salem_cnn, resnet, efficientnet, fast_cifar  # noqa: F401  (registration)

__all__ = ["MODELS", "Classifier", "build_model"]
