"""Temperature scaling (Guo et al. 2017): p = softmax(z / T)."""
from __future__ import annotations

import math

import torch

from overconf.core.errors import ConfigError
from overconf.signals.outputs import Outputs
from .base import CALIBRATIONS, Calibration, CalibrationContext


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, *, bounds=(1e-2, 1e3), steps: int = 100) -> float:
    """argmin_T NLL(softmax(z / T), y), by golden-section search over log T in ``bounds``."""
    z, y = logits.double(), labels.long()

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(z / math.exp(log_t), y))

    a, b = math.log(bounds[0]), math.log(bounds[1])
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(steps):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return math.exp((a + b) / 2)


@CALIBRATIONS.register("temperature")
class Temperature(Calibration):
    """Temperature scaling with a fixed ``T`` (the reference study used T = 10), or ``T: fit`` to
    minimise the NLL on the held-out calibration split."""

    name = "temperature"

    def __init__(self, T: float | str = "fit"):
        if T != "fit" and not (isinstance(T, (int, float)) and T > 0):
            raise ConfigError(f"calibration temperature: T must be a positive number or 'fit', got {T!r}")
        self.spec = T
        self.T = float(T) if T != "fit" else float("nan")

    @property
    def uses_calibration_split(self) -> bool:
        return self.spec == "fit"

    def fit(self, ctx: CalibrationContext) -> "Temperature":
        if self.spec == "fit":
            known = ctx.calibration.labels >= 0
            self.T = fit_temperature(ctx.calibration.logits[known], ctx.calibration.labels[known])
        return self

    def log_probs(self, outputs: Outputs) -> torch.Tensor:
        return torch.log_softmax(self.logits(outputs), dim=1)

    def logits(self, outputs: Outputs) -> torch.Tensor:
        return outputs.logits.double() / self.T

    def describe(self) -> dict:
        return {"temperature": self.T}
