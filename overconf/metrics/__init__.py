"""Metrics as pure functions of score / probability tensors."""
from .membership import clopper_pearson, fpr_at_tpr, membership_metrics, mmps, roc, tpr_at_fpr
from .calibration import accuracy, expected_calibration_error, overconfidence_error
from .functional import (binary_auroc, binary_fpr, binary_fpr_at_tpr, binary_roc, binary_tpr,  # tensors API
                         binary_tpr_at_fpr, clopper_pearson_interval, multiclass_calibration_error,
                         multiclass_overconfidence_error)

__all__ = ["membership_metrics", "mmps", "roc", "accuracy", "expected_calibration_error",
           "overconfidence_error", "clopper_pearson", "tpr_at_fpr", "fpr_at_tpr", "binary_auroc", "binary_fpr", "binary_fpr_at_tpr",
           "binary_roc", "binary_tpr", "binary_tpr_at_fpr", "clopper_pearson_interval",
           "multiclass_calibration_error", "multiclass_overconfidence_error"]
