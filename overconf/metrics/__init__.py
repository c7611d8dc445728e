"""Metrics as pure functions of score / probability tensors."""
from .membership import membership_metrics, mmps, roc
from .calibration import accuracy, expected_calibration_error, overconfidence_error

__all__ = ["membership_metrics", "mmps", "roc", "accuracy", "expected_calibration_error",
           "overconfidence_error"]
