"""Reference models' released outputs under the setting's release-time defense (the aware attacker).

An aware attacker (``attacker: same | aware``) knows the defense and simulates it on its own
reference models: reference model k's outputs are released through the same release-time defense
as the target's, fitted on model k exactly as the target's is fitted on the target (its own
training points, the keep column of the reference data, vs the held-out ``calibration`` split,
which no reference model trains on; seed ``derive_seed(seed, "defense", "reference", k)``).
Reference models have no post-hoc calibration, so the defense sees their log-softmax and their raw
logits (a logit-space defense such as logit reweighting works on the latter). The released
log-probabilities replace the logits in ``reference_logits`` (and ``reference_logits:<q>``,
``population_reference_logits``): attacks take their log-softmax, which leaves them unchanged.

``attacker: unaware`` (the shadow is released undefended) leaves the reference models undefended
too. Nothing is retrained: the reference models' keys do not depend on a release-time defense;
their logits on the reference data and the calibration split are cached like any other input set.
A signal without a release-time defense keeps its cache key (:func:`defense_key` is None).
"""
from __future__ import annotations

import weakref
from typing import Any

import torch

from overconf.core.cache import content_key, tensor_digest
from ..defenses import DEFENSES, DefenseContext, ReleaseDefense
from overconf.core.seeding import derive_seed
from .manager import ReferenceSet

_FITTED: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def release_defense(component) -> Any:
    """The attacker's release-time defense (a :class:`~overconf.config.Component`), or None for none
    or a training-time defense (reference models train with the latter: overconf.reference.manager)."""
    if component is None or component.name == "none" or DEFENSES[component.name].kind != "release":
        return None
    return component


def defense_key(component) -> dict | None:
    """What a defended reference signal adds to its cache key (None without a release-time defense)."""
    d = release_defense(component)
    if d is None:
        return None
    version = DEFENSES[d.name].key_version  # a member whose outputs changed for the same parameters
    return {"release_defense": d.name, "params": dict(d.params)} | ({} if version is None else {"version": version})


def fitted_defenses(rs: ReferenceSet, component, seed_ctx) -> list[ReleaseDefense]:
    """One defense per reference model, fitted on its training points vs the calibration split
    (memoised per seed context, reference set and defense)."""
    memo = _FITTED.setdefault(seed_ctx, {})
    spec = content_key({"set": rs.key, "defense": defense_key(component)})
    if spec in memo:
        return memo[spec]
    ds, cache, device = seed_ctx.dataset, seed_ctx.cache, seed_ctx.device
    train = rs.logits(rs.inputs(), cache, device, seed_ctx.progress)  # [n, K, C], cached
    cal_images, cal_labels = seed_ctx.splits.images(ds, "calibration")
    held_out = rs.logits(ds.normalize(cal_images), cache, device, seed_ctx.progress)
    out = []
    for k in range(rs.num_models):
        keep = rs.keep[:, k]
        ctx = DefenseContext(train[keep, k].double().log_softmax(-1), rs.labels[keep],
                             held_out[:, k].double().log_softmax(-1), cal_labels,
                             derive_seed(seed_ctx.seed, "defense", "reference", k),
                             train_logits=train[keep, k].double())
        out.append(DEFENSES[component.name](**component.params).fit(ctx))
    memo[spec] = out
    return out


def released(logits: torch.Tensor, defenses: list[ReleaseDefense]) -> torch.Tensor:
    """float64 [N, K, C]: reference model k's released log-probabilities for its logits [N, K, C]."""
    if logits.shape[1] == 0:
        return logits.double()
    return torch.stack([d.release_outputs(logits[:, k].double().log_softmax(-1), logits[:, k].double())
                        for k, d in enumerate(defenses)], 1)


def defended_logits(rs: ReferenceSet, logits: torch.Tensor, component, seed_ctx) -> torch.Tensor:
    """``logits`` [N, K, C] as the attacker sees them: released through ``component`` when it is a
    release-time defense, else unchanged. Memoised per seed context, reference set, defense and
    logits (RMIA's population is queried with every input set: MemGuard releases it once)."""
    d = release_defense(component)
    if d is None:
        return logits
    memo = _FITTED.setdefault(seed_ctx, {})
    key = content_key({"set": rs.key, "defense": defense_key(d), "logits": tensor_digest(logits)})
    if key not in memo:
        memo[key] = released(logits, fitted_defenses(rs, d, seed_ctx))
    return memo[key]
