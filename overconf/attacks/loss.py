"""Loss attack (Yeom et al., CSF 2018): members have a low loss (cross-entropy, or the softmax MSE
for models trained with it, as Baluta et al. 2022's threshold attack)."""
from __future__ import annotations

import torch

from overconf.core.errors import ConfigError
from .base import ATTACKS, Fitted, Signals
from .operating_point import shadow_point
from .scores import finite, true_class_log_prob
from .threshold import ScoreThreshold
from .thresholds import RULES, mean_member_threshold


@ATTACKS.register("loss")
class Loss(ScoreThreshold):
    """Loss threshold: member iff CE(z, y) <= L. Scored as -CE = log p_y. ``rule: youden`` takes L
    from the shadow ROC (max TPR - FPR); ``rule: mean_train_loss`` is Yeom et al.'s rule, L = the
    mean loss of the shadow model on its own training members (the attacker's estimate of the
    target's mean training loss). Unlabelled inputs are scored against their predicted class.
    ``loss: mse`` scores -sum_k (p_k - onehot(y)_k)^2 instead (the loss of MSE-trained models:
    Baluta et al. 2022 threshold on the model's own training loss)."""

    name = "loss"
    rule = "youden"
    rules = RULES | {"mean_train_loss": mean_member_threshold}

    def __init__(self, rule: str | None = None, label: str | None = None, loss: str = "cross_entropy"):
        super().__init__(rule, label)
        if loss not in LOSS_SCORES:
            raise ConfigError(f"attack loss: loss '{loss}' is not a loss; use one of: {', '.join(LOSS_SCORES)}")
        self.loss = loss

    @staticmethod
    def score(s: Signals) -> torch.Tensor:
        return finite(true_class_log_prob(s.log_probs, s.labels_or_predicted))

    def fit(self, members: Signals, nonmembers: Signals, *, generator: torch.Generator) -> Fitted:
        score = LOSS_SCORES[self.loss]
        s_in, s_out = score(members), score(nonmembers)
        tau = self.rules[self.rule](s_in, s_out)
        fitted = Fitted(score, tau, {"rule": self.rule} | shadow_point(tau, s_in, s_out))
        fitted.info["loss_threshold"] = -fitted.threshold  # in loss units: member iff CE <= this
        return fitted


def negative_mse(s: Signals) -> torch.Tensor:
    """-sum_k (softmax_k - onehot(y)_k)^2: the softmax MSE loss, negated (higher = member)."""
    p = s.log_probs.double().exp()
    onehot = torch.nn.functional.one_hot(s.labels_or_predicted, p.shape[1]).double()
    return -(p - onehot).square().sum(1)


LOSS_SCORES = {"cross_entropy": Loss.score, "mse": negative_mse}
