"""Attacks on plain tensors: the registered attacks without a study.

    >>> import overconf
    >>> attack = overconf.attacks.fit("max_score", shadow_member_logits, shadow_nonmember_logits)
    >>> attack.score(target_logits)            # per-sample membership scores (higher: member)
    >>> attack.predict(target_logits)          # score >= threshold, as bools

Logits (or log-probabilities, ``log_probs=True``) and labels are wrapped into :class:`Signals`
by :func:`signals` (log-softmax in float64, exactly as the study releases an uncalibrated model's
outputs), then the registered :class:`~overconf.attacks.base.Attack` is fitted on the shadow's
members vs non-members and applied unchanged to the target. Attacks that need more than the
model's outputs (reference models, augmented or noisy queries: a non-empty ``requires``) are
study-only. Labels are optional: -1 (unknown) makes label-aware attacks use the predicted class.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from overconf.core.errors import ConfigError
from overconf.core.seeding import generator as seeded_generator
from .base import ATTACKS, Attack, Fitted, Signals


def signals(logits: torch.Tensor, labels: torch.Tensor | None = None, *, log_probs: bool = False) -> Signals:
    """Wrap logits z [N, K] (or log-probabilities with ``log_probs=True``) and labels [N] (None or
    -1: unknown) into :class:`Signals`: ``log_probs = log_softmax(z)`` in float64 on the CPU."""
    if isinstance(logits, Signals):
        return logits
    z = torch.as_tensor(logits).detach().cpu()
    if z.ndim != 2:
        raise ConfigError(f"logits must be a [N, K] tensor (N points, K classes), got shape {tuple(z.shape)}")
    lp = z.double() if log_probs else torch.log_softmax(z.double(), dim=1)
    if labels is None:
        y = torch.full((len(z),), -1, dtype=torch.long)
    else:
        y = torch.as_tensor(labels).detach().cpu().long()
        if y.shape != (len(z),):
            raise ConfigError(f"labels must be a [N] tensor matching the logits' N = {len(z)}, "
                              f"got shape {tuple(y.shape)}")
    return Signals(lp, y)


@dataclass
class FittedAttack:
    """An attack fitted on shadow signals: member iff ``score(x) >= threshold``."""

    attack: Attack
    fitted: Fitted
    log_probs: bool = False
    """whether ``score`` / ``predict`` take log-probabilities instead of logits"""

    @property
    def threshold(self) -> float:
        return self.fitted.threshold

    @property
    def info(self) -> dict[str, Any]:
        """What the fit found on the shadow (rule, shadow TPR / FPR at the threshold, ...)."""
        return self.fitted.info

    def score(self, logits: torch.Tensor | Signals, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample membership scores [N] (float64; higher means 'member')."""
        return self.fitted.score(signals(logits, labels, log_probs=self.log_probs))

    def predict(self, logits: torch.Tensor | Signals, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Membership decisions [N] (bool): ``score >= threshold``."""
        return self.score(logits, labels) >= self.threshold


@dataclass
class TensorAttack:
    """A registered attack, ready to be fitted on shadow logits."""

    attack: Attack

    @property
    def label(self) -> str:
        return self.attack.label

    def fit(self, member_logits: torch.Tensor | Signals, nonmember_logits: torch.Tensor | Signals,
            member_labels: torch.Tensor | None = None, nonmember_labels: torch.Tensor | None = None, *,
            seed: int = 0, generator: torch.Generator | None = None, log_probs: bool = False) -> FittedAttack:
        """Fit on the shadow model's members vs non-members. Attacks that train (salem) draw from
        ``generator``, else from ``overconf.core.seeding.generator(seed, "attack", label)``."""
        g = generator if generator is not None else seeded_generator(seed, "attack", self.label)
        fitted = self.attack.fit(signals(member_logits, member_labels, log_probs=log_probs),
                                 signals(nonmember_logits, nonmember_labels, log_probs=log_probs), generator=g)
        return FittedAttack(self.attack, fitted, log_probs)


def single_model_attacks() -> list[str]:
    """Registered attacks that read only the model's outputs (usable on plain tensors)."""
    return [n for n in ATTACKS.names() if not _requires(ATTACKS[n])]


def _requires(factory) -> tuple:
    try:
        return tuple(factory().requires)
    except Exception:  # an attack that cannot be built without parameters
        return ("?",)


def get(name: str | Attack, **params: Any) -> TensorAttack:
    """The registered attack ``name`` with its parameters (as in a study's ``attacks:`` list),
    e.g. ``get("salem", k=3, epochs=50)``; an unknown name or parameter is a ConfigError."""
    if isinstance(name, Attack):
        attack = name
    else:
        factory = ATTACKS[name]
        try:
            attack = factory(**params)
        except TypeError as e:
            raise ConfigError(f"attack {name}: {e}; see `overconf list` for its parameters") from None
    if attack.requires:
        raise ConfigError(f"attack {attack.name} needs {', '.join(map(str, attack.requires))} besides the model's "
                          f"outputs (reference models or extra queries): run it in a study; on tensors use one of "
                          f"{', '.join(single_model_attacks())}")
    return TensorAttack(attack)


def fit(name: str | Attack, member_logits: torch.Tensor | Signals, nonmember_logits: torch.Tensor | Signals,
        member_labels: torch.Tensor | None = None, nonmember_labels: torch.Tensor | None = None, *,
        seed: int = 0, generator: torch.Generator | None = None, log_probs: bool = False,
        **params: Any) -> FittedAttack:
    """``get(name, **params).fit(...)``: an attack fitted on shadow member / non-member logits."""
    return get(name, **params).fit(member_logits, nonmember_logits, member_labels, nonmember_labels,
                                   seed=seed, generator=generator, log_probs=log_probs)
