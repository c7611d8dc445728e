"""Defenses (issue 13): one registry, two kinds (``Defense.kind``).

- ``release``: release-time transforms of the released outputs (this package's members today:
  logit_reweighting, memguard, top_k, rounding, label_only); fitted once per (model, setting) from a
  :class:`DefenseContext`, nothing retrained, so model cache keys do not change.
- ``training``: training-time defenses, ``TrainingHooks`` of the one trainer (dp_sgd,
  early_stopping, adversarial_regularisation) or recipe keys (label_smoothing, l2, dropout); the runner
  applies them to the jobs of target, shadow and reference models (:mod:`.training`).
"""
from .base import DEFENSES, KINDS, Defense, DefenseContext, ReleaseDefense
from . import none, logit_reweighting, memguard, postprocess, dp_sgd, early_stopping, recipe, adversarial_regularisation  # noqa: F401  (registers the members)

__all__ = ["DEFENSES", "KINDS", "Defense", "DefenseContext", "ReleaseDefense"]
