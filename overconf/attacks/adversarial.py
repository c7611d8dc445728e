"""White-box attacks from adversarial examples (Del Grosso et al. 2022; Kadoche et al. 2022, seed 002).

* ``adversarial_distance``: member iff the minimal adversarial perturbation ||x - x_adv|| (the
  smallest one after which the label is no longer predicted) is at least tau (shadow ROC):
  training points sit farther from the decision boundary.
* ``local_variation``: member iff the local variation of the loss around x is at most tau: the
  seed-002 proxy of the model's local total variation (an unconfirmed reading, see
  :func:`overconf.signals.whitebox.local_variation`).

The probes run on the network itself (its decision boundary and loss), not on the calibrated
probabilities: temperature scaling leaves the boundary where it is. Their signals
(``adversarial_distance``, ``local_variation``) are computed once per (model, inputs,
parameters) in eval mode with float32 gradients (no autocast), and cached.
"""
from __future__ import annotations

import torch

from overconf.signals.whitebox import NORMS, local_variation, minimal_adversarial_distance
from overconf.core.errors import ConfigError
from overconf.signals.producers import SIGNALS, SignalContext, SignalRequest
from .base import ATTACKS, Signals
from .signal_threshold import SignalThresholdAttack


# ---------------------------------------------------------------------------------- signals
@SIGNALS.register("adversarial_distance")
def adversarial_distance_signal(ctx: SignalContext, norm: str = "l2", max_radius: float = 10.0,
                                search_steps: int = 6, pgd_steps: int = 5, batch_size: int = 500) -> torch.Tensor:
    """Norm of the minimal adversarial perturbation found by PGD + bisection, float64 [N]
    (0 if misclassified; ``max_radius`` where none was found within it)."""
    return minimal_adversarial_distance(ctx.model, ctx.x, ctx.device, ctx.labels, norm=norm, max_radius=max_radius,
                                        search_steps=search_steps, pgd_steps=pgd_steps, batch_size=batch_size)


@SIGNALS.register("local_variation")
def local_variation_signal(ctx: SignalContext, epsilon: float = 0.5, steps: int = 1, norm: str = "l2",
                           batch_size: int = 500) -> torch.Tensor:
    """(max CE over the epsilon-ball - CE) / epsilon, float64 [N]."""
    return local_variation(ctx.model, ctx.x, ctx.labels, ctx.device, epsilon=epsilon, steps=steps, norm=norm,
                           batch_size=batch_size)


# ---------------------------------------------------------------------------------- attacks
class SignalThreshold(SignalThresholdAttack):
    """Member iff sign * signal >= tau (shadow ROC); the signal is this attack's producer called
    with ``params``."""

    sign = 1.0

    def __init__(self, label: str | None, **params):
        super().__init__(label)
        self.params = params

    @property
    def signal(self) -> SignalRequest:
        return SignalRequest.of(self.name, **self.params)

    def score(self, s: Signals) -> torch.Tensor:
        return self.sign * s.extra[self.signal.key].double()


def _check(name: str, ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(f"attack {name}: {message}")


@ATTACKS.register("adversarial_distance")
class AdversarialDistance(SignalThreshold):
    """Adversarial distance (white-box): member iff the norm of the minimal perturbation after which
    the label is no longer predicted (PGD with a per-input bisection on the radius) is >= tau
    (shadow ROC). Misclassified inputs score 0; unlabelled ones use their predicted class (distance
    to the decision boundary); inputs with no adversarial example within max_radius score max_radius."""

    name = "adversarial_distance"

    def __init__(self, norm: str = "l2", max_radius: float = 10.0, search_steps: int = 6, pgd_steps: int = 5,
                 batch_size: int = 500, label: str | None = None):
        _check(self.name, norm in NORMS, f"norm '{norm}' is not allowed; use one of: {', '.join(NORMS)}")
        _check(self.name, max_radius > 0, f"max_radius must be > 0, got {max_radius}")
        _check(self.name, search_steps >= 0 and pgd_steps >= 1,
               f"needs search_steps >= 0 and pgd_steps >= 1, got {search_steps}, {pgd_steps}")
        _check(self.name, batch_size >= 1, f"batch_size must be >= 1, got {batch_size}")
        super().__init__(label, norm=norm, max_radius=float(max_radius), search_steps=int(search_steps),
                         pgd_steps=int(pgd_steps), batch_size=int(batch_size))


@ATTACKS.register("local_variation")
class LocalVariation(SignalThreshold):
    """Local variation (seed 002 proxy, unconfirmed): member iff (max CE over an epsilon-ball - CE) /
    epsilon is <= tau (shadow ROC); scored as its negative."""

    name = "local_variation"
    sign = -1.0

    def __init__(self, epsilon: float = 0.5, steps: int = 1, norm: str = "l2", batch_size: int = 500,
                 label: str | None = None):
        _check(self.name, norm in NORMS, f"norm '{norm}' is not allowed; use one of: {', '.join(NORMS)}")
        _check(self.name, epsilon > 0 and steps >= 1, f"needs epsilon > 0 and steps >= 1, got {epsilon}, {steps}")
        _check(self.name, batch_size >= 1, f"batch_size must be >= 1, got {batch_size}")
        super().__init__(label, epsilon=float(epsilon), steps=int(steps), norm=norm, batch_size=int(batch_size))
