"""A user's model (the audit, overconf.runner.audit): a factory of untrained modules, optionally the
user's own training function, and what identifies both in the cache.

A :class:`ClassifierJob` with ``factory`` set builds its model with ``factory.build`` instead of the
``MODELS`` registry and, when the factory has a training function, trains it with that function
instead of overconf's loop; ``factory.describe()`` enters the job's key (a job without a factory
keeps its key). The audited target is a factory with ``weights`` (the digest of its trained
state dict): it is loaded, never trained (:meth:`ModelFactory.train` refuses).

Where the callables come from (``module:function`` of the config the user runs, or Python objects)
and how their ``content`` is computed is the runner's business (overconf.runner.audit.user_code); this
module only calls them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from overconf.core.errors import ConfigError
from overconf.core.seeding import derive_seed, isolated_rng
from ..models.wrapped import as_classifier, inner_module


@dataclass(frozen=True, eq=False)
class ModelFactory:
    """``make()`` -> an untrained ``nn.Module`` whose outputs are the K class logits."""

    name: str
    """what the user wrote (``module:function``), for messages and the key"""
    make: Callable[[], nn.Module] = field(repr=False)
    content: dict[str, Any] = field(default_factory=dict)
    """what identifies the code (the source file's SHA-256, the built module's structure): keyed"""
    fit: Callable[..., Any] | None = field(default=None, repr=False)
    """``fit(module, inputs, labels, *, seed, device)``: the user's training function (None:
    overconf's loop with the job's recipe)"""
    fit_name: str | None = None
    fit_content: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    """SHA-256 of the audited target's state dict: this factory's job is that trained model"""

    def describe(self) -> dict[str, Any]:
        """What enters a :class:`~overconf.training.jobs.ClassifierJob`'s key."""
        out: dict[str, Any] = {"factory": self.name, **self.content}
        if self.fit is not None:
            out["train"] = {"function": self.fit_name, **self.fit_content}
        if self.weights is not None:
            out["weights"] = self.weights
        return out

    @property
    def trains(self) -> bool:
        """True when overconf's loop does not train this factory's models (a training function, or
        the audited target, which is never trained)."""
        return self.fit is not None or self.weights is not None

    def build(self, num_classes: int) -> nn.Module:
        """A fresh model (the caller seeds the global RNG: ``ClassifierJob.build``), as a Classifier."""
        return as_classifier(self.make(), num_classes)

    def for_target(self, weights_digest: str) -> "ModelFactory":
        return dataclasses.replace(self, weights=weights_digest)

    def train(self, model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, seed: int,
              device: torch.device, name: str) -> list[dict]:
        """Train ``model`` in place with the user's function (inputs: the normalised training images,
        float32 [N, C, H, W]; labels int64 [N]); torch's global RNG is seeded from ``seed`` inside
        and restored after. Returns the function's history (a list of dicts) or []."""
        if self.weights is not None:
            raise ConfigError(f"{name}: the audited target model is loaded from its weights, never trained; "
                              f"its cache entry is missing: run the audit again (it stores the weights first)")
        if self.fit is None:
            raise ValueError(f"{name}: the factory {self.name} has no training function")
        with isolated_rng(derive_seed(seed, "user_train"), device):
            history = self.fit(inner_module(model), inputs, labels, seed=seed, device=device)
        model.to(device).eval()
        if isinstance(history, list) and all(isinstance(h, dict) for h in history):
            return history
        return []
