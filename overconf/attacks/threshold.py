"""The reference study's threshold attacks (Hintersdorf et al. 2022, after Salem et al. 2019)."""
from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import ATTACKS, Attack, Fitted, Signals
from .thresholds import RULES


class ScoreThreshold(Attack):
    """Member iff ``score(x) >= tau``, tau fitted on the shadow model by ``rule``."""

    rule = "youden"

    def __init__(self, rule: str | None = None):
        self.rule = rule or type(self).rule
        if self.rule not in RULES:
            raise ConfigError(f"attack {self.name}: rule '{self.rule}' is not allowed; use one of: "
                              f"{', '.join(RULES)}")

    @staticmethod
    def score(s: Signals) -> torch.Tensor:
        raise NotImplementedError

    def fit(self, members: Signals, nonmembers: Signals, *, generator: torch.Generator) -> Fitted:
        s_in, s_out = self.score(members), self.score(nonmembers)
        tau = RULES[self.rule](s_in, s_out)
        info = {"rule": self.rule, "shadow_tpr": float((s_in >= tau).double().mean()),
                "shadow_fpr": float((s_out >= tau).double().mean())}
        return Fitted(self.score, tau, info)


@ATTACKS.register("max_score")
class MaxScore(ScoreThreshold):
    """Max prediction score: member iff max_k p_k >= tau; tau maximises TPR - FPR on the shadow
    ROC. Scored as max_k log p_k (same order, no saturation at p = 1 in floating point)."""

    name = "max_score"
    rule = "youden"

    @staticmethod
    def score(s: Signals) -> torch.Tensor:
        return s.log_probs.max(1).values


@ATTACKS.register("entropy")
class Entropy(ScoreThreshold):
    """Prediction entropy: member iff H(p) < theta; theta maximises shadow accuracy. Scored as -H(p)."""

    name = "entropy"
    rule = "accuracy"

    @staticmethod
    def score(s: Signals) -> torch.Tensor:
        return -s.entropy
