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

The authors' configuration (``rmia_paper``, :mod:`overconf.attacks.rmia_signals`): Pr(y | x; theta)
as the soft-margin Taylor softmax (``temperature``, ``taylor_m``, ``taylor_n``) for the target and
every reference model, p(y | x) as a trimmed mean over the reference models (``trim``), gamma = 2.
The defaults here (T = 1, m = 0, ``taylor_n: 0`` = exp, plain mean) are the plain softmax and mean, as before.
"""
from __future__ import annotations

import torch

from overconf.core.errors import ConfigError
from .base import ATTACKS, Attack, Fitted, Signals
from .operating_point import at_levels, check_levels, check_rule, operating_point
from .rmia_signals import check_signal_options, soft_margin_probability, trimmed_mean
from .scores import at_label, check_unlabelled, true_class_log_prob


def reference_probability(ref_p: torch.Tensor, keep: torch.Tensor, online: bool, a: float,
                          trim: float = 0.0) -> torch.Tensor:
    """p(y | x) [N] from the reference models' label probabilities ``ref_p`` [N, K]: their mean
    (online) or ((1 + a) / 2) mean_OUT + (1 - a) / 2 (offline); with ``trim`` > 0 the mean is the
    trimmed mean (:func:`~overconf.attacks.rmia_signals.trimmed_mean`, the authors' ``trim_mean``)."""
    if trim > 0:
        mean = trimmed_mean(ref_p, trim, None if online else ~keep)
    elif online:
        mean = ref_p.mean(1)
    else:
        out = (~keep).double()
        mean = (ref_p * out).sum(1) / out.sum(1).clamp(min=1)
    return mean if online else (1 + a) / 2 * mean + (1 - a) / 2


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

    prefix = "rmia"

    def __init__(self, online: bool = True, a: float = 0.3, gamma: float = 1.0, rule: str = "youden",
                 fpr: float | None = None, label: str | None = None, unlabelled: str = "own_class",
                 fpr_levels: list[float] = (0.01, 0.001), temperature: float = 1.0, taylor_m: float = 0.0,
                 taylor_n: int = 0, trim: float = 0.0):
        check_signal_options(self.name, temperature, taylor_m, taylor_n, trim)
        self.temperature, self.taylor_m, self.taylor_n, self.trim = float(temperature), float(taylor_m), taylor_n, trim
        if not 0 <= a <= 1:
            raise ConfigError(f"attack {self.name}: a must lie in [0, 1], got {a}")
        if gamma <= 0:
            raise ConfigError(f"attack {self.name}: gamma must be > 0, got {gamma}")
        check_rule(self.name, rule, fpr)
        check_unlabelled(self.name, unlabelled)
        self.fpr_levels = check_levels(self.name, fpr_levels)
        self.online, self.a, self.gamma, self.rule, self.fpr = online, a, gamma, rule, fpr
        self.unlabelled = unlabelled
        self._label = label

    @property
    def plain_signal(self) -> bool:
        """Softmax probabilities and a plain mean over the reference models (the defaults of ``rmia``)."""
        return self.temperature == 1 and self.taylor_m == 0 and self.taylor_n == 0 and self.trim == 0

    @property
    def signal_suffix(self) -> str:
        """Label suffix naming the signal / aggregation options that differ from plain RMIA's."""
        return ((f"_T{self.temperature:g}" if self.temperature != 1 else "")
                + (f"_m{self.taylor_m:g}" if self.taylor_m else "")
                + (f"_taylor{self.taylor_n}" if self.taylor_n else "")
                + (f"_trim{self.trim:g}" if self.trim else ""))

    @property
    def label(self) -> str:
        return self._label or (self.prefix + ("_online" if self.online else "_offline") + self.signal_suffix
                               + ("_target_class" if self.unlabelled == "target_class" else ""))

    def class_probability(self, lp: torch.Tensor, labels: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Pr(y | x; theta) for log-probabilities ``lp`` [N, ..., C]: the softmax probability of the
        label (defaults), else the soft-margin (Taylor) softmax of :mod:`~overconf.attacks.rmia_signals`."""
        if self.plain_signal:
            return at_label(true_class_log_prob, lp, labels, pred, self.unlabelled).exp()

        def stat(lp_, y):
            return soft_margin_probability(lp_, y, self.temperature, self.taylor_m, self.taylor_n)

        return at_label(stat, lp, labels, pred, self.unlabelled)

    def likelihood_ratio(self, target_log_probs: torch.Tensor, labels: torch.Tensor, ref_logits: torch.Tensor,
                         keep: torch.Tensor) -> torch.Tensor:
        """LR = p(y | x; target) / p(y | x) [N]; ``labels`` -1 where unknown (see ``unlabelled``)."""
        lp = target_log_probs.double()
        pred = lp.argmax(-1)
        p_target = self.class_probability(lp, labels, pred)
        p_ref = self.class_probability(ref_logits.double().log_softmax(-1), labels, pred)
        return p_target / reference_probability(p_ref, keep, self.online, self.a, self.trim)

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
        if not self.plain_signal:  # the authors' signal / aggregation options (rows only where set)
            info |= {"temperature": self.temperature, "taylor_m": self.taylor_m, "taylor_n": self.taylor_n,
                     "trim": self.trim}
        return Fitted(self.score, tau, info, nominal_fpr=self.fpr,
                      levels=at_levels(self.score, s_in, s_out, self.fpr_levels))


@ATTACKS.register("rmia_paper")
class RMIAPaper(RMIA):
    """RMIA as its authors configure it (ml_privacy_meter, research/2024_rmia,
    ``attack_configs/cifar10/rmia_online_2_ref_models.yaml`` and ``rmia_offline_*``): the
    soft-margin Taylor softmax with temperature 2, margin 0.6 and 4 Taylor terms
    (``signal: sm_taylor_softmax_relative``), p(y | x) as the 0.2-trimmed mean over the reference
    models (``proportiontocut: 0.2``), gamma = 2 and, offline, a = 0.3 (their CIFAR-10 / CINIC-10
    value). The same options as ``rmia``, with these defaults; labels ``rmia_paper_online`` /
    ``rmia_paper_offline``."""

    name = "rmia_paper"
    prefix = "rmia_paper"

    def __init__(self, online: bool = True, a: float = 0.3, gamma: float = 2.0, rule: str = "youden",
                 fpr: float | None = None, label: str | None = None, unlabelled: str = "own_class",
                 fpr_levels: list[float] = (0.01, 0.001), temperature: float = 2.0, taylor_m: float = 0.6,
                 taylor_n: int = 4, trim: float = 0.2):
        super().__init__(online=online, a=a, gamma=gamma, rule=rule, fpr=fpr, label=label, unlabelled=unlabelled,
                         fpr_levels=fpr_levels, temperature=temperature, taylor_m=taylor_m, taylor_n=taylor_n,
                         trim=trim)

    @property
    def signal_suffix(self) -> str:
        """No suffix at the preset's own defaults (``rmia_paper_online``), else plain RMIA's."""
        paper = (self.temperature, self.taylor_m, self.taylor_n, self.trim) == (2.0, 0.6, 4, 0.2)
        return "" if paper else super().signal_suffix
