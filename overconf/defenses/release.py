"""Applying a release-time defense where the study applies calibrations: a fitted defense wrapped
around a fitted calibration is again a :class:`~overconf.calibrations.Calibration` (``log_probs(outputs)
= defense.release_outputs(calibration.log_probs(outputs), calibration.logits(outputs))``: the
release's logits too, None after a calibration that yields only probabilities), so every released
output of a model (its splits, the evaluation sets, the augmented queries of label-only signals
that return :class:`~overconf.signals.outputs.Outputs`) goes through calibration, then defense, before
signals, attacks and the per-model metrics.

Not covered by a release-time defense (they query the model itself, not its released vector):
label-only signals that return predicted labels (a label-preserving defense changes nothing
there: MemGuard's known blind spot) and white-box probes (adversarial distance). Reference-model
outputs (LiRA / RMIA / Shokri) are the attacker's own models: an aware attacker releases them
through the same defense, fitted per reference model (overconf.reference.release); an unaware one
does not.
"""
from __future__ import annotations

from typing import Any

import torch

from ..calibrations import Calibration
from overconf.signals.outputs import Outputs
from .base import DEFENSES, DefenseContext, ReleaseDefense


class Defended(Calibration):
    """A fitted calibration followed by a fitted release-time defense."""

    def __init__(self, calibration: Calibration, defense: ReleaseDefense):
        self.calibration, self.defense = calibration, defense
        self.name = calibration.name

    def log_probs(self, outputs: Outputs) -> torch.Tensor:
        return self.defense.release_outputs(self.calibration.log_probs(outputs), self.calibration.logits(outputs))

    def describe(self) -> dict[str, Any]:
        return self.calibration.describe()

    def __getattr__(self, name: str) -> Any:  # the calibration's own attributes (llla's predict, T, ...)
        if name in ("calibration", "defense"):
            raise AttributeError(name)
        return getattr(self.calibration, name)


def defend(calibration: Calibration, defense, train: Outputs, held_out: Outputs, seed: int) -> Calibration:
    """``calibration`` itself when ``defense`` is None or ``none``; else the defense (a
    :class:`~overconf.config.Component`) fitted on the calibrated training-split and
    calibration-split outputs and wrapped around it."""
    if defense is None or defense.name == "none":
        return calibration
    if DEFENSES[defense.name].kind != "release":  # training-time: in the model (overconf.defenses.training)
        return calibration
    d = DEFENSES[defense.name](**defense.params)
    ctx = DefenseContext(calibration.log_probs(train), train.labels, calibration.log_probs(held_out),
                         held_out.labels, seed, train_logits=calibration.logits(train))
    return Defended(calibration, d.fit(ctx))


def defense_info(target: Calibration, shadow: Calibration) -> dict[str, float]:
    """The fitted defenses' numeric ``describe()`` values (the shadow's prefixed ``shadow_``), for
    rows with attack '-' and source 'defense'; empty without a defense."""
    out = {}
    for prefix, cal in (("", target), ("shadow_", shadow)):
        if isinstance(cal, Defended):
            out |= {prefix + k: float(v) for k, v in cal.defense.describe().items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return out
