"""The evaluation-side sections: ``metrics:``, ``report:`` and ``reference:`` (the reference models
of LiRA, RMIA and Shokri)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .convert import check as _check


@dataclass
class MetricsConfig:
    bootstrap: int = 1000
    """resamples of each bootstrap interval (TPR at a target FPR)"""
    confidence: float = 0.95
    """level of every interval (Clopper-Pearson for TPR and FPR, bootstrap, verdicts)"""
    fpr_targets: list[float] = field(default_factory=lambda: [0.01, 0.001])
    """TPR at each of these FPRs, with a bootstrap interval"""
    priors: list[float] = field(default_factory=lambda: [0.01, 0.1, 0.5])
    """member priors pi for precision = pi TPR / (pi TPR + (1 - pi) FPR)"""
    ece_bins: int = 15
    """equal-width confidence bins of the ECE and the overconfidence error"""
    blind_baseline: bool = False
    """per source, a blind classifier that never queries the target (logistic regression on pixels:
    member-distribution reserve images vs the source's images) scored on the target's members vs
    the source: its AUROC, each attack's AUROC minus it, and the zero-run propensity AUC
    (docs/memorised-or-different.md; blind_baseline.csv, summary.md)"""

    def __post_init__(self):
        _check(self.bootstrap >= 1, f"metrics.bootstrap must be >= 1 (bootstrap resamples of each interval, "
                                    f"e.g. 1000), got {self.bootstrap}")
        _check(self.ece_bins >= 1, f"metrics.ece_bins must be >= 1 (equal-width confidence bins of the ECE, "
                                   f"e.g. 15), got {self.ece_bins}")


@dataclass
class ReportConfig:
    figures: bool = True
    """draw the PNG figures (``figures/``)"""
    tensorboard: bool = True
    """write TensorBoard runs (``tensorboard/``)"""
    fp_grid: int = 16
    """most confident false positives shown per source in TensorBoard"""
    roc_sources: list[str] | None = None
    """non-member sources of the log-log ROC figures (null: test, or the first source)"""


@dataclass
class ReferenceConfig:
    """Reference models for LiRA, RMIA and Shokri (see overconf/reference/manager.py)."""

    num_models: int = 16
    """K, even: every reference point is IN for exactly K / 2 models (LiRA: 16-256)"""
    arch: str | None = None
    """architecture of the reference models; null = the target's (with its params)"""
    params: dict[str, Any] = field(default_factory=dict)
    """architecture keyword arguments when ``arch`` is set"""
    recipe: dict[str, Any] = field(default_factory=dict)
    """overrides of the setting's recipe for the reference models"""
    mode: str = "auto"
    """auto (batched on CUDA without BatchNorm, else sequential) | batched | sequential"""
    group_size: int = 32
    """models trained (batched) or evaluated at once; a finished group is stored model by model"""
    extra_points: int = 0
    """reserve images added to the reference data (besides the target's evaluation and the
    shadow's fit points), even"""
    population: int = 1000
    """RMIA: size of the seeded population sample z, drawn from the rest of the reserve"""

    def __post_init__(self):
        allowed = ("auto", "batched", "sequential")
        _check(self.mode in allowed, f"reference.mode = '{self.mode}' is not allowed; use one of: {', '.join(allowed)}")
        _check(self.num_models >= 2 and self.num_models % 2 == 0,
               f"reference.num_models must be even and >= 2 (each point is IN for half the models), "
               f"got {self.num_models}")
        _check(self.group_size >= 1, "reference.group_size must be >= 1")
        _check(self.extra_points >= 0 and self.extra_points % 2 == 0,
               f"reference.extra_points must be even and >= 0 (equal-size halves), got {self.extra_points}")
        _check(self.population >= 1, "reference.population must be >= 1")
