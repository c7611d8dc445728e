"""The defense registry and the release-time defense protocol.

A release-time defense is fitted once per (model, setting) from a :class:`DefenseContext` (the
model's released log-probabilities on its own training split and on the held-out calibration
split, never on evaluation non-members; the release's logits when it has them; a seed) and then
maps every released output: ``release(log_probs [N, K]) -> log_probs [N, K]`` (float64, batched,
no per-query Python loop); ``release_outputs(log_probs, logits)`` also hands it the release's
logits (None after a calibration that yields only probabilities). The study applies it after the
setting's calibration, before signals and attacks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from overconf.core.errors import ConfigError
from overconf.core.registry import Registry

DEFENSES: Registry = Registry("defense")

KINDS = ("release", "training")
"""``release``: transforms released outputs (this module's protocol); ``training``: changes how the
model is trained (TrainingHooks; enters the model's cache key)"""

FLOOR = 1e-30
"""probability floor of released vectors with zeros (top-k, rounding, label-only): log(FLOOR) ~ -69"""


@dataclass(frozen=True)
class DefenseContext:
    train_log_probs: torch.Tensor
    """float64 [N, K]: the (calibrated) model's released log-probabilities on its own training split"""
    train_labels: torch.Tensor
    calibration_log_probs: torch.Tensor
    """float64 [M, K]: the same on the held-out calibration split (never evaluation non-members)"""
    calibration_labels: torch.Tensor
    seed: int
    train_logits: torch.Tensor | None = None
    """float64 [N, K]: the release's logits on the training split (log_softmax of them =
    ``train_log_probs``): the model's own logits when uncalibrated, z / T under temperature scaling;
    None when the release has only probabilities (e.g. a Laplace predictive)"""


class Defense:
    name = "defense"
    kind = "release"
    """one of :data:`KINDS`"""
    uses_calibration_split = False
    """True when ``fit`` needs the held-out calibration split (it must then be non-empty)"""
    key_version: int | None = None
    """set (2, 3, ...) when a member's released outputs change for the same parameters: it then enters
    the cache keys of defended reference signals (overconf.reference.release.defense_key); None: no entry"""


class ReleaseDefense(Defense):
    kind = "release"

    def fit(self, ctx: DefenseContext) -> "ReleaseDefense":
        return self

    def release(self, log_probs: torch.Tensor) -> torch.Tensor:
        """float64 [N, K] released log-probabilities for the released log-probabilities [N, K]."""
        raise NotImplementedError

    def release_outputs(self, log_probs: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`release`, also given the release's logits [N, K] (None when it has none); a defense
        defined on logits overrides this."""
        return self.release(log_probs)

    def describe(self) -> dict[str, Any]:
        """Fitted parameters and statistics (rows with attack '-', source 'defense')."""
        return {}


def floor_log(p: torch.Tensor) -> torch.Tensor:
    return p.clamp_min(FLOOR).log()


def predicted(log_probs: torch.Tensor) -> torch.Tensor:
    return log_probs.argmax(1)


def held_out_inputs(job, validation, needs: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out calibration split ``validation`` (uint8 images, labels) in ``job``'s input space;
    a clear error when it is empty (``needs``: what the defense does with it)."""
    if validation is None or len(validation[1]) == 0:
        raise ConfigError(f"{needs}; give it points (data.splits.calibration > 0)")
    images, labels = validation
    return job.normalize(images), labels
