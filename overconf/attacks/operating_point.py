"""Fitting a score attack's operating point on shadow / reference data only.

Requested FPR levels (``fpr_levels: [0.01, 0.001]`` of LiRA, RMIA): for each level L the smallest
threshold whose FPR on the shadow's non-members is at most L (:func:`at_levels`); the evaluation
non-members never enter. The rows report each level's realised FPR per source next to L."""
from __future__ import annotations

import torch

from overconf.core.errors import ConfigError
from .base import Fitted, Signals
from .thresholds import RULES, fpr_threshold


def check_rule(attack: str, rule: str, fpr: float | None) -> None:
    if rule not in RULES:
        raise ConfigError(f"attack {attack}: rule '{rule}' is not allowed; use one of: {', '.join(RULES)}")
    if fpr is not None and not 0 < fpr < 1:
        raise ConfigError(f"attack {attack}: fpr must lie in (0, 1), got {fpr}")


def check_levels(attack: str, levels) -> tuple[float, ...]:
    """Requested FPR levels as a tuple of floats in (0, 1), else a ConfigError naming the attack."""
    try:
        out = tuple(float(v) for v in (levels or ()))
    except (TypeError, ValueError):
        raise ConfigError(f"attack {attack}: fpr_levels must be a list of numbers in (0, 1), e.g. "
                          f"[0.01, 0.001], got {levels!r}") from None
    bad = [v for v in out if not 0 < v < 1]
    if bad:
        raise ConfigError(f"attack {attack}: fpr_levels must lie in (0, 1), got {bad}")
    return out


def at_levels(score, s_in: torch.Tensor, s_out: torch.Tensor, levels) -> dict[float, Fitted]:
    """For each requested FPR level L: ``Fitted(score, tau_L, nominal_fpr=L)`` with tau_L the smallest
    threshold flagging at most floor(L n) of the n shadow non-member scores ``s_out``, and its shadow
    point (``s_in``: the shadow members' scores)."""
    out = {}
    for level in levels:
        tau = fpr_threshold(s_out, level)
        out[float(level)] = Fitted(score, tau, {"rule": f"shadow fpr <= {level:g}"} | shadow_point(tau, s_in, s_out),
                                   nominal_fpr=float(level))
    return out


def operating_point(s_in: torch.Tensor, s_out: torch.Tensor, rule: str, fpr: float | None) -> tuple[float, dict]:
    """The threshold for ``score >= threshold``: at shadow FPR ``fpr`` when given, else by ``rule``
    (youden: max TPR - FPR; accuracy) on the shadow ROC. Returns it with the shadow operating point."""
    tau = fpr_threshold(s_out, fpr) if fpr is not None else RULES[rule](s_in, s_out)
    return tau, {"rule": f"shadow fpr <= {fpr}" if fpr is not None else rule} | shadow_point(tau, s_in, s_out)


def shadow_point(tau: float, s_in: torch.Tensor, s_out: torch.Tensor) -> dict:
    """The operating point reached on the shadow: the threshold, its TPR and its FPR."""
    return {"threshold": float(tau), "shadow_tpr": float((s_in >= tau).double().mean()),
            "shadow_fpr": float((s_out >= tau).double().mean())}


def fitted_on_shadow(score, tau: float, members: Signals, nonmembers: Signals, **info) -> Fitted:
    """``Fitted(score, tau)`` with ``info`` and the shadow operating point (reported as rows)."""
    return Fitted(score, tau, info | shadow_point(tau, score(members), score(nonmembers)))
