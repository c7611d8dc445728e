"""Registered membership-inference attacks.

An attack is fitted on the shadow model's signals (members vs non-members) and applied unchanged
to the target: ``fitted = attack.fit(shadow_in, shadow_out, generator=g)``, then
``fitted.score(signals) >= fitted.threshold`` means "member". Attacks read only tensors.
"""
from .base import ATTACKS, Attack, Fitted, Signals
from . import (threshold, salem, loss, true_class, modified_entropy, scaled_logit,  # noqa: F401
               label_only, adversarial, shokri, lira, rmia, qmia)  # (registration)

from .tensors import FittedAttack, TensorAttack, fit, get, signals, single_model_attacks  # on plain tensors

__all__ = ["ATTACKS", "Attack", "Fitted", "Signals", "FittedAttack", "TensorAttack", "fit", "get", "signals",
           "single_model_attacks"]
