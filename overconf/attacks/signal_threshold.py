"""Attacks that threshold a producer's signal (label-only predictions, white-box probes): the signal
is computed by a registered producer (``overconf.signals.producers``), cached, and thresholded on the shadow
ROC (Youden's J)."""
from __future__ import annotations

import torch

from overconf.signals.producers import SignalRequest
from .base import Attack, Fitted, Signals
from .operating_point import shadow_point
from .thresholds import youden_threshold


class SignalThresholdAttack(Attack):
    """Member iff ``score(signals) >= tau``, tau maximising TPR - FPR on the shadow ROC.
    Subclasses give the ``signal`` they read and the ``score`` computed from it."""

    def __init__(self, label: str | None = None):
        self._label = label

    @property
    def label(self) -> str:
        return self._label or self.name

    @property
    def signal(self) -> SignalRequest:
        raise NotImplementedError

    @property
    def requires(self) -> tuple[SignalRequest, ...]:
        return (self.signal,)

    def score(self, s: Signals) -> torch.Tensor:
        raise NotImplementedError

    def fit(self, members: Signals, nonmembers: Signals, *, generator: torch.Generator) -> Fitted:
        s_in, s_out = self.score(members), self.score(nonmembers)
        tau = youden_threshold(s_in, s_out)
        return Fitted(self.score, tau, {"rule": "youden", **dict(self.signal.params)} | shadow_point(tau, s_in, s_out))
