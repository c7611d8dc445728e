from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch

from overconf.core.registry import Registry

if TYPE_CHECKING:
    from overconf.signals.contexts import SeedContext

ATTACKS: Registry = Registry("attack")
SHARED_PREFIX = "population_"
"""``Signals.extra`` names with this prefix hold a fixed population sample, not per-point rows"""


@dataclass
class Signals:
    """What an attack may read about a set of queried points (all tensors, CPU).

    ``log_probs`` are the (calibrated) predictive log-probabilities in float64; ``labels`` are
    the true labels, -1 where the input has no label of the target's task; ``extra`` holds the
    further signals attacks declare in ``Attack.requires`` (reference-model outputs, ...): one
    row per queried point, except names starting with ``population_`` (RMIA's population sample),
    which describe a fixed sample and are not indexed by ``subset``.
    """

    log_probs: torch.Tensor
    labels: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.log_probs)

    @functools.cached_property
    def probs(self) -> torch.Tensor:
        return self.log_probs.exp()

    @functools.cached_property
    def max_score(self) -> torch.Tensor:
        """max_k p_k"""
        return self.probs.max(1).values

    @functools.cached_property
    def entropy(self) -> torch.Tensor:
        """H(p) = -sum_k p_k log p_k"""
        return -(self.probs * self.log_probs).nan_to_num().sum(1)

    @property
    def predicted(self) -> torch.Tensor:
        return self.log_probs.argmax(1)

    @property
    def labels_or_predicted(self) -> torch.Tensor:
        """True labels where known, else the predicted class (the attacker's best guess)."""
        return torch.where(self.labels >= 0, self.labels, self.predicted)

    def subset(self, idx) -> "Signals":
        return Signals(self.log_probs[idx], self.labels[idx],
                       {k: v if k.startswith(SHARED_PREFIX) else v[idx] for k, v in self.extra.items()})


@dataclass
class Fitted:
    """A fitted attack: ``score(signals) >= threshold`` decides membership.

    The FPR the threshold was set for (:attr:`declared_fpr`) is ``nominal_fpr`` where the attack
    was asked for a level (LiRA / RMIA ``fpr``, QMIA's alpha), else the shadow's FPR at the
    threshold (``info['shadow_fpr']``, the shadow-fitted operating point). ``levels`` holds
    decision rules set for requested FPR levels on the shadow's or the public / reference
    non-members (never on evaluation non-members): level -> a ``Fitted`` with that
    ``nominal_fpr``."""

    score: Callable[[Signals], torch.Tensor]
    threshold: float
    info: dict[str, Any] = field(default_factory=dict)
    nominal_fpr: float | None = None
    levels: dict[float, "Fitted"] = field(default_factory=dict)

    def decide(self, signals: Signals) -> torch.Tensor:
        return self.score(signals) >= self.threshold

    @property
    def declared_fpr(self) -> float | None:
        """The FPR this threshold promises: the requested level, else the shadow's FPR (None: neither)."""
        if self.nominal_fpr is not None:
            return float(self.nominal_fpr)
        shadow = self.info.get("shadow_fpr")
        return None if shadow is None else float(shadow)


class Attack:
    """Base class. Subclasses set ``name`` (the registry name) and implement ``fit``."""

    name: str = "attack"
    requires: tuple[str, ...] = ()
    """names of extra signals (``Signals.extra``) the attack reads"""

    @property
    def label(self) -> str:
        """The attack's name in results tables (distinct per configured instance)."""
        return self.name

    def check(self, ctx: "SeedContext") -> None:
        """Validate a seed of the study (:class:`~overconf.signals.contexts.SeedContext`, e.g. the number of
        reference models) before any training."""

    def fit(self, members: Signals, nonmembers: Signals, *, generator: torch.Generator) -> Fitted:
        raise NotImplementedError
