"""RMIA, the relative membership inference attack (Zarifzadeh, Liu, Chang, Shokri, "Low-Cost
High-Power Membership Inference Attacks", ICML 2024).

LR_x = p(y_x | x; target) / p(y_x | x), with p(y_x | x) the reference models' probability of the
label: online, the mean over all K reference models; offline, from the OUT models only,
p(y_x | x) = ((1 + a) / 2) * mean_OUT + (1 - a) / 2 (the paper's linear approximation; ``a`` a
parameter). The score is the fraction of population samples z with LR_x / LR_z > gamma, where
LR_z is computed the same way on a seeded population sample z that no model trained on
(``reference.population`` points of the reserve). Inputs without a task label (label -1: OOD,
noise) take p(x | theta) = p(c_theta | x; theta) at each model's own predicted class c_theta, i.e.
max_c p(c | x; theta), for the target and every reference model alike (``unlabelled:
own_class``, default), or every model's probability of the target's predicted class
(``unlabelled: target_class``, the former behaviour, which favours the target). The target's
probabilities are what it releases (``Signals.log_probs``, calibrated); the reference models'
are the softmax of their logits. A point outside the reference data (OOD,
noise) has no IN model, so online p(y_x | x) is the OUT mean there. Each of ``fpr_levels``
(default 1% and 0.1%) gets a threshold at that FPR on the shadow's non-members (``level_<L>_*`` rows).
"""
from __future__ import annotations

import torch

from overconf.core.errors import ConfigError
from .base import ATTACKS, Attack, Fitted, Signals
from .operating_point import at_levels, check_levels, check_rule, operating_point
from .scores import at_label, check_unlabelled, true_class_log_prob


def reference_probability(ref_p: torch.Tensor, keep: torch.Tensor, online: bool, a: float) -> torch.Tensor:
    """p(y | x) [N] from the reference models' label probabilities ``ref_p`` [N, K]."""
    if online:
        return ref_p.mean(1)
    out = (~keep).double()
    mean_out = (ref_p * out).sum(1) / out.sum(1).clamp(min=1)
    return (1 + a) / 2 * mean_out + (1 - a) / 2


def pairwise_fraction(lr_x: torch.Tensor, lr_z: torch.Tensor, gamma: float, chunk: int = 2048) -> torch.Tensor:
    """score(x) = (1 / |Z|) sum_z 1[LR_x / LR_z > gamma], in chunks of x."""
    out = [(lr_x[i: i + chunk, None] / lr_z[None, :] > gamma).double().mean(1) for i in range(0, len(lr_x), chunk)]
    return torch.cat(out) if out else lr_x.new_zeros(0)


@ATTACKS.register("rmia")
class RMIA(Attack):
    """RMIA (Zarifzadeh et al. 2024): fraction of population samples z that x dominates,
    LR_x / LR_z > gamma, with LR = p(y | x; target) / p(y | x; reference models)."""

    name = "rmia"
    requires = ("reference_keep", "reference_logits", "population_log_probs", "population_labels",
                "population_reference_logits")

    def __init__(self, online: bool = True, a: float = 0.3, gamma: float = 1.0, rule: str = "youden",
                 fpr: float | None = None, label: str | None = None, unlabelled: str = "own_class",
                 fpr_levels: list[float] = (0.01, 0.001)):
        if not 0 <= a <= 1:
            raise ConfigError(f"attack rmia: a must lie in [0, 1], got {a}")
        if gamma <= 0:
            raise ConfigError(f"attack rmia: gamma must be > 0, got {gamma}")
        check_rule("rmia", rule, fpr)
        check_unlabelled("rmia", unlabelled)
        self.fpr_levels = check_levels("rmia", fpr_levels)
        self.online, self.a, self.gamma, self.rule, self.fpr = online, a, gamma, rule, fpr
        self.unlabelled = unlabelled
        self._label = label

    @property
    def label(self) -> str:
        return self._label or (("rmia_online" if self.online else "rmia_offline")
                               + ("_target_class" if self.unlabelled == "target_class" else ""))

    def likelihood_ratio(self, target_log_probs: torch.Tensor, labels: torch.Tensor, ref_logits: torch.Tensor,
                         keep: torch.Tensor) -> torch.Tensor:
        """LR = p(y | x; target) / p(y | x) [N]; ``labels`` -1 where unknown (see ``unlabelled``)."""
        lp = target_log_probs.double()
        pred = lp.argmax(-1)
        p_target = at_label(true_class_log_prob, lp, labels, pred, self.unlabelled).exp()
        p_ref = at_label(true_class_log_prob, ref_logits.double().log_softmax(-1), labels, pred, self.unlabelled).exp()
        return p_target / reference_probability(p_ref, keep, self.online, self.a)

    def score(self, s: Signals) -> torch.Tensor:
        e = s.extra
        lr_x = self.likelihood_ratio(s.log_probs, s.labels, e["reference_logits"], e["reference_keep"])
        z_ref = e["population_reference_logits"]
        lr_z = self.likelihood_ratio(e["population_log_probs"], e["population_labels"], z_ref,
                                     torch.zeros(z_ref.shape[:2], dtype=torch.bool))
        return pairwise_fraction(lr_x, lr_z, self.gamma)

    def fit(self, members: Signals, nonmembers: Signals, *, generator: torch.Generator) -> Fitted:
        s_in, s_out = self.score(members), self.score(nonmembers)
        tau, info = operating_point(s_in, s_out, self.rule, self.fpr)
        info |= {"num_models": members.extra["reference_keep"].shape[1], "gamma": self.gamma,
                 "population": len(members.extra["population_labels"])}
        if not self.online:
            info["a"] = self.a
        return Fitted(self.score, tau, info, nominal_fpr=self.fpr,
                      levels=at_levels(self.score, s_in, s_out, self.fpr_levels))
