"""Extra attack signals beyond the model's outputs, computed once per (model, input set), cached.

Attacks that need more than log-probabilities (reference-model outputs, outputs under
augmentation, adversarial distances) name them in ``Attack.requires``; a producer registered
here computes the signal from a :class:`SignalContext` and the study caches it by the model's
key and the content of the queried inputs. The attack itself stays a pure function of tensors.

A requirement is a producer name, or a :class:`SignalRequest` carrying the producer's keyword
parameters (``SignalRequest.of("noisy_predictions", sigma=0.5, queries=16)``); the signal is
stored in ``Signals.extra[request.key]`` and cached per parameters.

A producer returns a tensor whose first dimension is the queried points, or (names starting
with ``population_``) a tensor about a fixed population sample that ``Signals.subset`` leaves
whole, or an :class:`~overconf.signals.outputs.Outputs` of the queried model on other inputs (e.g.
augmented queries), which the study turns into predictive log-probabilities with the setting's
calibration, exactly like the model's own outputs. A producer may carry ``key_extra(ctx)``
(more content for its cache key) and ``check(seed_ctx)`` (validation of the seed's
:class:`~overconf.signals.contexts.SeedContext` before any training).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import torch

from overconf.core.cache import Cache, content_key, tensor_digest
from overconf.signals.contexts import SeedContext
from overconf.signals.outputs import Outputs, is_outputs_entry
from overconf.core.registry import Registry

SIGNALS: Registry = Registry("signal")


@dataclass(frozen=True)
class SignalContext:
    model: torch.nn.Module
    model_key: str
    x: torch.Tensor
    """model inputs of the queried points"""
    labels: torch.Tensor
    role: str
    """'target' or 'shadow'"""
    part: str
    """which set is queried: 'members', 'nonmembers' or 'source:<label>'"""
    device: torch.device
    cache: Cache
    context: SeedContext | None
    """the seed's dataset, splits, seed and config sections, for producers that need more
    (reference models); None outside a study"""
    pool_index: torch.Tensor | None = None
    """indices in the dataset's pool of the queried points, or of the images they were made from
    (transformed test images share their originals' keep status), where they come from it"""
    pool: str | None = None
    """'train' or 'test': the pool ``pool_index`` refers to"""
    job: Any = None
    """the queried model's :class:`~overconf.training.jobs.ClassifierJob` (architecture, recipe, seed)"""
    attacker_job: Any = None
    """the attacker's shadow :class:`~overconf.training.jobs.ClassifierJob`, whose recipe reference
    models follow (None: ``job``)"""
    attacker_defense: Any = None
    """the defense the attacker's shadow is released through (a config ``Component``; None: none):
    an aware attacker releases its reference models' outputs through it too (overconf.reference.release)"""
    release: Any = None
    """the queried model's release: :class:`~overconf.signals.outputs.Outputs` -> the log-probabilities it
    publishes (the setting's calibration and release-time defense); None: log_softmax of the logits"""


@dataclass(frozen=True)
class SignalRequest:
    """A registered signal with the keyword parameters its producer is called with."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, name: str, **params: Any) -> "SignalRequest":
        return cls(name, tuple(sorted(params.items())))

    @property
    def key(self) -> str:
        """The name in ``Signals.extra``: ``name`` or ``name(a=1,b=2)``."""
        if not self.params:
            return self.name
        return f"{self.name}({','.join(f'{k}={v}' for k, v in self.params)})"


Requirement = Union[str, SignalRequest]


def as_request(r: Requirement) -> SignalRequest:
    return r if isinstance(r, SignalRequest) else SignalRequest(r)


def cached_signal(request: Requirement, ctx: SignalContext) -> torch.Tensor | Outputs:
    req = as_request(request)
    producer = SIGNALS[req.name]
    what = {"kind": "signal", "name": req.name, "version": getattr(producer, "version", 1),
            "model": ctx.model_key, "x": tensor_digest(ctx.x), "labels": tensor_digest(ctx.labels),
            "extra": getattr(producer, "key_extra", lambda c: None)(ctx)}
    if req.params:
        what["params"] = dict(req.params)
    key = content_key(what)
    stored = ctx.cache.get_or_create("signals", key, lambda: signal_entry(producer(ctx, **dict(req.params))),
                                     valid=is_signal_entry)
    return Outputs(**stored) if isinstance(stored, dict) else stored


def signal_entry(signal: torch.Tensor | Outputs) -> torch.Tensor | dict[str, torch.Tensor]:
    """A producer's result as plain data for the cache: a tensor as it is, an :class:`Outputs`
    as the dict of its tensors."""
    if isinstance(signal, Outputs):
        return {"logits": signal.logits, "features": signal.features, "labels": signal.labels}
    if not isinstance(signal, torch.Tensor):
        raise TypeError(f"a signal producer returned a {type(signal).__name__}; it must return a tensor or Outputs")
    return signal


def is_signal_entry(stored) -> bool:
    """The structure of a ``signals`` entry: a tensor, or the dict of an :class:`Outputs`."""
    return isinstance(stored, torch.Tensor) or (isinstance(stored, dict) and stored.keys() == {
        "logits", "features", "labels"} and is_outputs_entry(stored))

