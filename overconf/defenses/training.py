"""Applying a training-time defense (``Defense.kind == "training"``): the runner hands its hooks to
the jobs of the target (always), of the shadow (attacker ``same`` / ``aware``: ``Setting.for_shadow``
keeps the defense) and, through the shadow's job, of the attacker's reference models. Its result
rows (attack '-', source 'defense', e.g. DP-SGD's ``epsilon``) come from the trained models.
"""
from __future__ import annotations

import dataclasses

from .base import DEFENSES, Defense


def training_defense(defense) -> Defense | None:
    """The training-time defense of a :class:`~overconf.config.Component`, or None (none / release)."""
    if defense is None or defense.name == "none":
        return None
    cls = DEFENSES[defense.name]
    return cls(**defense.params) if cls.kind == "training" else None


def with_training_defense(job, defense, validation=None):
    """``job`` with the hooks of ``defense`` when it is a training-time one; else ``job`` itself
    (so a job without a training-time defense keeps its cache key). ``validation``: (uint8 images,
    labels) of the held-out calibration split (early stopping)."""
    d = training_defense(defense)
    if d is None:
        return job
    if hasattr(d, "apply"):  # a recipe key (overconf.defenses.recipe)
        return d.apply(job, validation)
    return dataclasses.replace(job, hooks=d.hooks_for(job, validation))


def training_defense_info(target, shadow, setting, shadow_setting) -> dict[str, float]:
    """Rows of the trained target's (and ``shadow_``-prefixed the shadow's) training-time defense."""
    out = {}
    for prefix, t, s in (("", target, setting), ("shadow_", shadow, shadow_setting)):
        d = training_defense(s.defense)
        if d is not None:
            out |= {prefix + k: float(v) for k, v in d.info(t.job, t.history).items()}
    return out
