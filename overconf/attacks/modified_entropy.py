"""Modified entropy (Song & Mittal, USENIX Security 2021)."""
from __future__ import annotations

import torch

from .base import ATTACKS, Signals
from .scores import finite, modified_entropy
from .threshold import ScoreThreshold


@ATTACKS.register("modified_entropy")
class ModifiedEntropy(ScoreThreshold):
    """Modified entropy: member iff Mentr(p, y) = -(1 - p_y) log p_y - sum_{k!=y} p_k log(1 - p_k)
    is low; scored as -Mentr, threshold from the shadow ROC. Unlabelled inputs use their predicted
    class."""

    name = "modified_entropy"
    rule = "youden"

    @staticmethod
    def score(s: Signals) -> torch.Tensor:
        return finite(-modified_entropy(s.log_probs, s.labels_or_predicted))
