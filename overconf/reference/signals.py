"""Signals from the reference models, for LiRA, RMIA and Shokri (registered in ``SIGNALS``).

| signal | value |
|---|---|
| ``reference_logits`` | float32 [N, K, C]: each reference model's logits on the queried points |
| ``reference_keep`` | bool [N, K]: which reference models trained on each queried point |
| ``reference_logits:<q>`` | the same on augmented query ``q`` (``flip``, ``shift_right``, ...) |
| ``logits:<q>`` | the queried (target / shadow) model's outputs on query ``q``, calibrated by the study |
| ``population_log_probs`` | the queried model's calibrated log-probabilities on RMIA's population z [Z, C] |
| ``population_labels`` | labels of z [Z] |
| ``population_reference_logits`` | reference logits on z [Z, K, C] |

Reference models of a (seed, architecture, recipe) are shared by the target's and the shadow's
queries; their outputs are cached per (reference model, input set). Reference outputs are raw
logits: attacks take their log-softmax (the reference models follow the attacker's training
recipe, the shadow's, not any post-hoc calibration), while the queried model's signal is what
it releases, ``Signals.log_probs`` (calibrated).
"""
from __future__ import annotations

from overconf.data.augment import QUERIES
from overconf.core.cache import tensor_digest
from overconf.signals.outputs import cached_outputs
from overconf.signals.producers import SIGNALS, SignalContext
from .manager import ReferenceSet, check_reference, reference_set
from .release import defended_logits, defense_key


def refs(ctx: SignalContext) -> ReferenceSet:
    """The attacker's reference set: trained with the shadow's recipe (``ctx.attacker_job``)."""
    return reference_set(ctx.context, ctx.attacker_job if ctx.attacker_job is not None else ctx.job)


def _register(name: str, producer, key_extra, doc: str, uses_references: bool = True):
    producer.__name__ = name.replace(":", "_")
    producer.__doc__ = doc
    producer.key_extra = key_extra
    if uses_references:
        producer.check = check_reference
    SIGNALS.register(name)(producer)


def _set_key(ctx: SignalContext):
    d = defense_key(ctx.attacker_defense)  # the aware attacker's release-time defense; None keeps the key
    return refs(ctx).key if d is None else [refs(ctx).key, d]


def _released(ctx: SignalContext, logits):
    return defended_logits(refs(ctx), logits, ctx.attacker_defense, ctx.context)


def _reference_logits(query):
    def produce(ctx: SignalContext):
        x = ctx.x if query is None else QUERIES[query](ctx.x)
        return _released(ctx, refs(ctx).logits(x, ctx.cache, ctx.device, ctx.context.progress))

    return produce


def _query_outputs(query):
    def produce(ctx: SignalContext):
        return cached_outputs(ctx.cache, ctx.model_key, ctx.model, QUERIES[query](ctx.x), ctx.labels, ctx.device)

    return produce


def _keep(ctx: SignalContext):
    return refs(ctx).keep_for(ctx.pool, ctx.pool_index, len(ctx.x))


def _keep_key(ctx: SignalContext):
    return [refs(ctx).key, ctx.pool, None if ctx.pool_index is None else tensor_digest(ctx.pool_index)]


def _population_log_probs(ctx: SignalContext):
    rs = refs(ctx)
    return cached_outputs(ctx.cache, ctx.model_key, ctx.model, rs.population_x, rs.population_labels, ctx.device)


def _population_labels(ctx: SignalContext):
    return refs(ctx).population_labels.clone()


def _population_reference_logits(ctx: SignalContext):
    rs = refs(ctx)
    return _released(ctx, rs.logits(rs.population_x, ctx.cache, ctx.device, ctx.context.progress))


def _population_key(ctx: SignalContext):
    rs = refs(ctx)
    return [rs.key, tensor_digest(rs.population_x)]


def _population_reference_key(ctx: SignalContext):
    d = defense_key(ctx.attacker_defense)
    return _population_key(ctx) if d is None else _population_key(ctx) + [d]


_register("reference_logits", _reference_logits(None), _set_key,
          "Reference models' logits on the queried points: float32 [N, K, C].")
_register("reference_keep", _keep, _keep_key,
          "Which reference models trained on each queried point: bool [N, K].")
for _q in QUERIES:
    _register(f"reference_logits:{_q}", _reference_logits(_q), _set_key,
              f"Reference models' logits on the '{_q}' query of the queried points: float32 [N, K, C].")
    _register(f"logits:{_q}", _query_outputs(_q), lambda ctx: None,
              f"The queried model's outputs on the '{_q}' query (calibrated by the study).",
              uses_references=False)
_register("population_log_probs", _population_log_probs, _population_key,
          "The queried model's outputs on RMIA's population sample z (calibrated by the study).")
_register("population_labels", _population_labels, _population_key, "Labels of RMIA's population sample z.")
_register("population_reference_logits", _population_reference_logits, _population_reference_key,
          "Reference models' logits on RMIA's population sample z: float32 [Z, K, C].")
