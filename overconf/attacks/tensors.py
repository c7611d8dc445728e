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

from overconf.core import checks
from overconf.core.errors import ConfigError, InputTypeError
from overconf.core.seeding import generator as seeded_generator
from .base import ATTACKS, Attack, Fitted, Signals


def signals(logits: torch.Tensor, labels: torch.Tensor | None = None, *, log_probs: bool = False,
            names: tuple[str, str] = ("logits", "labels")) -> Signals:
    """Wrap logits z [N, K] (or log-probabilities with ``log_probs=True``) and labels [N] (None or
    -1: unknown) into :class:`Signals`: ``log_probs = log_softmax(z)`` in float64 on the CPU.

    Checked (:mod:`overconf.core.checks`, errors name ``names``): z floating [N, K], N >= 1,
    K >= 2, no NaN / inf (log-probabilities: normalised, -inf allowed); labels integer, in
    [0, K) or -1. A :class:`Signals` is passed through unchecked."""
    if isinstance(logits, Signals):
        return logits
    z = checks.logits(logits, names[0], log_probs=log_probs)
    lp = z.double() if log_probs else torch.log_softmax(z.double(), dim=1)
    if labels is None:
        y = torch.full((len(z),), -1, dtype=torch.long)
    else:
        y = checks.label_range(checks.labels(labels, names[1], len(z)), names[1], z.shape[1])
    return Signals(lp, y)


@dataclass
class FittedAttack:
    """An attack fitted on shadow signals: member iff ``score(x) >= threshold``."""

    attack: Attack
    fitted: Fitted
    log_probs: bool = False
    """whether ``score`` / ``predict`` take log-probabilities instead of logits"""
    n_classes: int | None = None
    """K of the shadow outputs it was fitted on (what ``score`` accepts); None: not checked"""

    @property
    def threshold(self) -> float:
        return self.fitted.threshold

    @property
    def info(self) -> dict[str, Any]:
        """What the fit found on the shadow (rule, shadow TPR / FPR at the threshold, ...)."""
        return self.fitted.info

    def score(self, logits: torch.Tensor | Signals, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample membership scores [N] (float64; higher means 'member')."""
        s = signals(logits, labels, log_probs=self.log_probs)
        if self.n_classes is not None:
            checks.same_classes(s.log_probs.shape[1], "logits", self.n_classes, "the shadow outputs it was fitted on")
        return self.fitted.score(s)

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
        if generator is None:
            seed = checks.number(seed, "seed", integer=True)
        elif not isinstance(generator, torch.Generator):
            checks.fail("generator", f"expected a torch.Generator, got {type(generator).__name__}",
                        "pass torch.Generator().manual_seed(s), or seed=s", InputTypeError)
        g = generator if generator is not None else seeded_generator(seed, "attack", self.label)
        s_in = signals(member_logits, member_labels, log_probs=log_probs, names=("member_logits", "member_labels"))
        s_out = signals(nonmember_logits, nonmember_labels, log_probs=log_probs,
                        names=("nonmember_logits", "nonmember_labels"))
        k = s_in.log_probs.shape[1]
        checks.same_classes(s_out.log_probs.shape[1], "nonmember_logits", k, "member_logits")
        return FittedAttack(self.attack, self.attack.fit(s_in, s_out, generator=g), log_probs, k)


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
