"""True-class confidence: members get a high probability on their own label."""
from __future__ import annotations

import math

import torch

from .base import ATTACKS, Fitted, Signals
from .scores import finite, true_class_log_prob
from .threshold import ScoreThreshold


@ATTACKS.register("true_class_confidence")
class TrueClassConfidence(ScoreThreshold):
    """True-class confidence: member iff p_y >= tau, tau from the shadow ROC (max TPR - FPR).
    Scored as log p_y (same order as p_y, no saturation at p = 1); unlabelled inputs use their
    predicted class, where p_y is the max score. Ranks exactly as the loss attack (-CE = log p_y)."""

    name = "true_class_confidence"
    rule = "youden"

    @staticmethod
    def score(s: Signals) -> torch.Tensor:
        return finite(true_class_log_prob(s.log_probs, s.labels_or_predicted))

    def fit(self, members: Signals, nonmembers: Signals, *, generator: torch.Generator) -> Fitted:
        fitted = super().fit(members, nonmembers, generator=generator)
        fitted.info["probability_threshold"] = math.exp(min(fitted.threshold, 0.0))
        return fitted
