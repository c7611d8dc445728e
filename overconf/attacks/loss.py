"""Loss attack (Yeom et al., CSF 2018): members have a low cross-entropy loss."""
from __future__ import annotations

import torch

from .base import ATTACKS, Fitted, Signals
from .scores import finite, true_class_log_prob
from .threshold import ScoreThreshold
from .thresholds import RULES, mean_member_threshold


@ATTACKS.register("loss")
class Loss(ScoreThreshold):
    """Loss threshold: member iff CE(z, y) <= L. Scored as -CE = log p_y. ``rule: youden`` takes L
    from the shadow ROC (max TPR - FPR); ``rule: mean_train_loss`` is Yeom et al.'s rule, L = the
    mean loss of the shadow model on its own training members (the attacker's estimate of the
    target's mean training loss). Unlabelled inputs are scored against their predicted class."""

    name = "loss"
    rule = "youden"
    rules = RULES | {"mean_train_loss": mean_member_threshold}

    @staticmethod
    def score(s: Signals) -> torch.Tensor:
        return finite(true_class_log_prob(s.log_probs, s.labels_or_predicted))

    def fit(self, members: Signals, nonmembers: Signals, *, generator: torch.Generator) -> Fitted:
        fitted = super().fit(members, nonmembers, generator=generator)
        fitted.info["loss_threshold"] = -fitted.threshold  # in loss units: member iff CE <= this
        return fitted
