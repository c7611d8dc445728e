"""Registered post-hoc calibrations: cached model outputs -> predictive log-probabilities.

A calibration is fitted per model from a :class:`CalibrationContext` (the model's head, its
training-set outputs and its held-out calibration-split outputs; never evaluation
non-members) and then maps any :class:`~overconf.signals.outputs.Outputs` to log-probabilities.
"""
from .base import CALIBRATIONS, Calibration, CalibrationContext
from . import llla, none, temperature  # noqa: F401  (registration)

__all__ = ["CALIBRATIONS", "Calibration", "CalibrationContext"]
