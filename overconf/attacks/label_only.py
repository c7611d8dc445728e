"""Label-only attacks (Choquette-Choo et al., ICML 2021): the attacker sees predicted labels only.

* ``gap``: member iff the model classifies the point correctly (the "gap attack").
* ``label_only_augmentation``: the fraction of flipped / shifted queries whose predicted label
  equals the label; members keep their label under small augmentations.
* ``label_only_noise``: the same fraction over queries with seeded Gaussian input noise.

Agreement thresholds come from the shadow ROC (max TPR - FPR). Inputs without a label of the
task (OOD and noise sources) are compared with their own predicted class, so there the gap
attack flags every input and the agreement attacks measure how stable the prediction is.
The queried predictions are signals (``augmented_predictions``, ``noisy_predictions``):
computed once per (model, inputs, parameters) in eval mode by the producers below, cached.
"""
from __future__ import annotations

import torch

from overconf.data.augment import flip_shift_views, gaussian_noise
from overconf.core.cache import tensor_digest
from overconf.core.errors import ConfigError
from overconf.signals.inference import predicted_labels
from overconf.core.seeding import generator
from overconf.signals.producers import SIGNALS, SignalContext, SignalRequest
from .base import ATTACKS, Attack, Fitted, Signals
from .operating_point import fitted_on_shadow
from .signal_threshold import SignalThresholdAttack


# ---------------------------------------------------------------------------------- signals
@SIGNALS.register("augmented_predictions")
def augmented_predictions(ctx: SignalContext, flip: bool = True, shift: int = 1) -> torch.Tensor:
    """Predicted labels under every view of :func:`overconf.data.augment.flip_shift_views`
    (identity first), int64 [N, V]."""
    views = flip_shift_views(flip, shift)
    return torch.stack([predicted_labels(ctx.model, ctx.x, ctx.device, v) for v in views], 1)


@SIGNALS.register("noisy_predictions")
def noisy_predictions(ctx: SignalContext, sigma: float = 0.5, queries: int = 16, seed: int = 0) -> torch.Tensor:
    """Predicted labels of x + sigma * eps_q, q = 1..queries, int64 [N, queries]. The draws come
    from a generator seeded by ``seed`` and the content of x (the same on every device)."""
    g = generator(seed, "noisy_predictions", tensor_digest(ctx.x))
    return torch.stack([predicted_labels(ctx.model, gaussian_noise(ctx.x, sigma, g), ctx.device)
                        for _ in range(queries)], 1)


# ---------------------------------------------------------------------------------- attacks
def agreement(predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of queries whose predicted label equals ``labels``, float64 [N]."""
    return (predictions == labels[:, None]).double().mean(1)


@ATTACKS.register("gap")
class Gap(Attack):
    """Gap attack: member iff the predicted class equals the label (correct-or-not; nothing is
    fitted). Unlabelled inputs count as correct, so all of them are flagged."""

    name = "gap"

    def fit(self, members: Signals, nonmembers: Signals, *, generator: torch.Generator) -> Fitted:
        def score(s: Signals) -> torch.Tensor:
            return (s.predicted == s.labels_or_predicted).double()

        return fitted_on_shadow(score, 0.5, members, nonmembers, decision="correct")


class Agreement(SignalThresholdAttack):
    """Member iff the agreement of queried labels with the label is >= tau (shadow ROC)."""

    def score(self, s: Signals) -> torch.Tensor:
        return agreement(s.extra[self.signal.key], s.labels_or_predicted)


@ATTACKS.register("label_only_augmentation")
class AugmentationAgreement(Agreement):
    """Label-only, augmentations: member iff the fraction of flipped / shifted queries (|dx| + |dy|
    <= shift, identity included) predicted as the label is >= tau (shadow ROC)."""

    name = "label_only_augmentation"

    def __init__(self, flip: bool = True, shift: int = 1, label: str | None = None):
        super().__init__(label)
        if shift < 0:
            raise ConfigError(f"attack {self.name}: shift must be >= 0, got {shift}")
        self.flip, self.shift = bool(flip), int(shift)
        self.queries = len(flip_shift_views(self.flip, self.shift))

    @property
    def signal(self) -> SignalRequest:
        return SignalRequest.of("augmented_predictions", flip=self.flip, shift=self.shift)


@ATTACKS.register("label_only_noise")
class NoiseAgreement(Agreement):
    """Label-only, noise: member iff the fraction of queries x + sigma * N(0, I) (seeded draws,
    sigma in model-input units) predicted as the label is >= tau (shadow ROC)."""

    name = "label_only_noise"

    def __init__(self, sigma: float = 0.5, queries: int = 16, seed: int = 0, label: str | None = None):
        super().__init__(label)
        if sigma <= 0 or queries < 1:
            raise ConfigError(f"attack {self.name}: needs sigma > 0 and queries >= 1, got sigma={sigma}, "
                              f"queries={queries}")
        self.sigma, self.queries, self.seed = float(sigma), int(queries), int(seed)

    @property
    def signal(self) -> SignalRequest:
        return SignalRequest.of("noisy_predictions", sigma=self.sigma, queries=self.queries, seed=self.seed)
