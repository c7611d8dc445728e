"""Fitting a score attack's operating point on shadow / reference data only."""
from __future__ import annotations

import torch

from ..errors import ConfigError
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
    info = {"rule": f"shadow fpr <= {fpr}" if fpr is not None else rule,
            "shadow_tpr": float((s_in >= tau).double().mean()),
            "shadow_fpr": float((s_out >= tau).double().mean())}
    return tau, info
