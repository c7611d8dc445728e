"""Fitting a score attack's operating point on shadow / reference data only."""
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
