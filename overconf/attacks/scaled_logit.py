"""Scaled logit (the LiRA statistic, Carlini et al. S&P 2022; seed 003) as a threshold attack."""
from __future__ import annotations

import torch

from .base import ATTACKS, Signals
from .scores import finite, scaled_logit
from .threshold import ScoreThreshold


@ATTACKS.register("scaled_logit")
class ScaledLogit(ScoreThreshold):
    """Scaled logit: member iff phi = log p_y - log sum_{k!=y} p_k >= tau, tau from the shadow ROC;
    phi is computed in float64 with log-sum-exp (finite at any logit scale). Unlabelled inputs use
    their predicted class."""

    name = "scaled_logit"
    rule = "youden"

    @staticmethod
    def score(s: Signals) -> torch.Tensor:
        return finite(scaled_logit(s.log_probs, s.labels_or_predicted))
