from __future__ import annotations

import torch

from overconf.signals.outputs import Outputs
from .base import CALIBRATIONS, Calibration


@CALIBRATIONS.register("none")
class NoCalibration(Calibration):
    """The model's own softmax: log p = log_softmax(z)."""

    name = "none"

    def log_probs(self, outputs: Outputs) -> torch.Tensor:
        return torch.log_softmax(self.logits(outputs), dim=1)

    def logits(self, outputs: Outputs) -> torch.Tensor:
        return outputs.logits.double()
