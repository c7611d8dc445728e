from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from overconf.signals.outputs import Outputs
from overconf.core.registry import Registry

CALIBRATIONS: Registry = Registry("calibration")


@dataclass
class CalibrationContext:
    head: nn.Linear
    """the classifier's last layer (CPU copy); features @ W^T + b are the logits"""
    train: Outputs
    """outputs on the model's own training set"""
    calibration: Outputs
    """outputs on the held-out calibration split (never evaluation non-members)"""
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)
    """further inputs a calibration declared in ``requires`` ('noise': :class:`Outputs` of the
    model on uniform-noise images, for an OOD term)"""


class Calibration:
    name = "calibration"
    requires: tuple[str, ...] = ()
    """inputs the study must put in ``CalibrationContext.extra`` (e.g. 'noise': outputs on
    uniform-noise images, computed once per model)"""
    uses_calibration_split: bool = False
    """True when ``fit`` tunes on the held-out calibration split (it must then be non-empty)"""

    def fit(self, ctx: CalibrationContext) -> "Calibration":
        return self

    def log_probs(self, outputs: Outputs) -> torch.Tensor:
        """float64 [N, K] predictive log-probabilities."""
        raise NotImplementedError

    def logits(self, outputs: Outputs) -> torch.Tensor | None:
        """float64 [N, K] logits z with ``log_probs = log_softmax(z)`` when the release is a softmax
        of logits (uncalibrated: the model's logits; temperature: z / T), None when the calibration
        yields only probabilities (a logit-space release-time defense then falls back on them)."""
        return None

    def describe(self) -> dict[str, Any]:
        """Fitted parameters, recorded with the results."""
        return {}
