"""The reference study's threshold attacks (Hintersdorf et al. 2022, after Salem et al. 2019)."""
from __future__ import annotations

import torch

from overconf.core.errors import ConfigError
from .base import ATTACKS, Attack, Fitted, Signals
from .operating_point import shadow_point
from .thresholds import RULES


class ScoreThreshold(Attack):
    """Member iff ``score(x) >= tau``, tau fitted on the shadow model by ``rule``.

    The label is the attack's name, suffixed by the rule where it is not the default one
    (``loss`` vs ``loss_mean_train_loss``); ``label`` overrides it."""

    rule = "youden"
    rules = RULES
    """the rules a subclass allows: name -> f(shadow member scores, shadow non-member scores)"""

    def __init__(self, rule: str | None = None, label: str | None = None):
        self.rule = rule or type(self).rule
        if self.rule not in self.rules:
            raise ConfigError(f"attack {self.name}: rule '{self.rule}' is not allowed; use one of: "
                              f"{', '.join(self.rules)}")
        self._label = label

    @property
    def label(self) -> str:
        if self._label:
            return self._label
        return self.name if self.rule == type(self).rule else f"{self.name}_{self.rule}"

    @staticmethod
    def score(s: Signals) -> torch.Tensor:
        raise NotImplementedError

    def fit(self, members: Signals, nonmembers: Signals, *, generator: torch.Generator) -> Fitted:
        s_in, s_out = self.score(members), self.score(nonmembers)
        tau = self.rules[self.rule](s_in, s_out)
        return Fitted(self.score, tau, {"rule": self.rule} | shadow_point(tau, s_in, s_out))


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
