"""Defenses (issue 13): one registry, two kinds (``Defense.kind``).

- ``release``: release-time transforms of the released outputs (this package's members today:
  logit_reweighting, memguard, top_k, rounding, label_only); fitted once per (model, setting) from a
  :class:`DefenseContext`, nothing retrained, so model cache keys do not change.
- ``training``: training-time defenses (DP-SGD, early stopping, adversarial regularisation) are to
  be added as ``TrainingHooks`` of the one trainer (ARCHITECTURE.md, "where does a new X go"), in
  this registry with ``kind = "training"``.
"""
from .base import DEFENSES, KINDS, Defense, DefenseContext, ReleaseDefense
from . import none, logit_reweighting, memguard, postprocess, dp_sgd, early_stopping, recipe  # noqa: F401  (registers the members)

__all__ = ["DEFENSES", "KINDS", "Defense", "DefenseContext", "ReleaseDefense"]
