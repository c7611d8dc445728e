"""The :class:`AnalysisContext`: one (seed, model, setting) of a finished (or running) study,
giving lazily, and computing at most once, what an analysis reads.

Everything comes from the content-keyed cache: the trained target and shadow (``trained``: a
cache hit after the study), their outputs (logits and penultimate features, ``outputs`` /
``features``, one cache entry per (model, input set)), the released log-probabilities (the
setting's calibration and release-time defense, fitted as in the study), the attacker's
reference set (keep matrix, logits and features of the K reference models, when the study has
reference-model attacks) and the study's per-sample scores. Built by the runner
(``overconf.analyze``); an analysis never imports the runner.

Parts (``part``) of a role (``target`` or ``shadow``): ``members`` (the first eval_size target /
fit_size shadow training images: the study's evaluation or fit members), ``nonmembers`` (the
first eval_size / fit_size images of the role's test split: for the target the ``test`` source's
images, for the shadow the attacks' fit non-members), ``train``, ``test``, ``calibration`` (whole
splits) and, for the target, ``source:<label>`` (each non-member source).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from overconf.core.cache import content_key, tensor_digest
from ..config import ModelSpec, Setting, StudyConfig
from overconf.signals.contexts import SeedContext
from ..data import SourceData
from overconf.signals.outputs import Outputs, cached_outputs, compute_outputs
from overconf.core.seeding import generator
from overconf.signals.producers import as_request
from ..training.jobs import ClassifierJob, TrainedClassifier, load_or_train

ROLES = ("target", "shadow")
REFERENCE_SIGNALS = ("reference_", "population_")


@dataclass(frozen=True, eq=False)
class AnalysisContext:
    """One (seed, model, setting) of a study (frozen; lazily computed values are memoised)."""

    seed: int
    model: str
    """the model's label"""
    setting: str
    """the setting's name"""
    context: SeedContext
    """splits, dataset, cache, device, config sections"""
    config: StudyConfig
    spec: ModelSpec
    setting_config: Setting
    setting_index: int
    """position of the setting in the study (0: the first, usually the baseline)"""
    jobs: dict[str, ClassifierJob]
    """role -> the job that trains it (the model's cache key)"""
    sources: dict[str, SourceData]
    attacks: tuple[Any, ...]
    """the study's attacks (:class:`~overconf.attacks.Attack`)"""
    release_fn: Callable[["AnalysisContext", str], Any]
    """the runner's calibration + release-time defense of a role, fitted as in the study"""
    run_dir: Path | None = None
    per_sample: dict[str, Any] | None = None
    """this cell's entry of the run's per_sample.pt (scores, thresholds), when present"""
    _memo: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ identity
    @property
    def key(self) -> tuple[int, str, str]:
        return (self.seed, self.model, self.setting)

    @property
    def tag(self) -> str:
        """file-name tag: ``<model>_<setting>_s<seed>``"""
        return f"{self.model}_{self.setting}_s{self.seed}"

    @property
    def cache(self):
        return self.context.cache

    @property
    def device(self) -> torch.device:
        return self.context.device

    def generator(self, *names: object) -> torch.Generator:
        """A seeded generator for ``names`` of this context (the only randomness an analysis uses)."""
        return generator(self.seed, "analysis", self.model, self.setting, *names)

    def seed_of(self, *names: object) -> int:
        """A seed for libraries that take an int (scikit-learn's random_state), in [0, 2**31)."""
        return int(torch.randint(0, 2 ** 31 - 1, (1,), generator=self.generator(*names)))

    def _once(self, key: Any, fn: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    # ------------------------------------------------------------------ models and inputs
    def trained(self, role: str) -> TrainedClassifier:
        """The role's trained classifier (a cache hit after the study)."""
        _check_role(role)
        return self._once(("trained", role), lambda: load_or_train(self.jobs[role], self.cache, self.device,
                                                                   progress=False))

    def _split(self, role: str, part: str) -> tuple[str, int | None]:
        n = {"target": self.context.data.eval_size, "shadow": self.context.data.fit_size}[role]
        named = {"members": (f"{role}_train", n), "nonmembers": (f"{role}_test", n), "train": (f"{role}_train", None),
                 "test": (f"{role}_test", None), "calibration": ("calibration", None)}
        if part not in named:
            raise KeyError(f"unknown part '{part}' of role '{role}'; use one of {sorted(named)} or source:<label>")
        return named[part]

    def inputs(self, role: str, part: str) -> tuple[torch.Tensor, torch.Tensor, str | None, torch.Tensor | None]:
        """(model inputs, labels (-1: none), pool, pool indices) of ``part``."""
        _check_role(role)
        if part.startswith("source:"):
            d = self.sources[part.partition(":")[2]]
            return d.x, d.y, d.pool, d.pool_index
        split, n = self._split(role, part)
        s, ds = self.context.splits, self.context.dataset
        images, labels = s.images(ds, split)
        idx = getattr(s, split)
        if n is not None:
            images, labels, idx = images[:n], labels[:n], idx[:n]
        return ds.normalize(images), labels, s.pool(split), idx

    def images(self, role: str, part: str) -> torch.Tensor:
        """uint8 images of ``part`` (for figures)."""
        if part.startswith("source:"):
            return self.sources[part.partition(":")[2]].images
        split, n = self._split(role, part)
        images, _ = self.context.splits.images(self.context.dataset, split)
        return images if n is None else images[:n]

    def outputs(self, role: str, part: str) -> Outputs:
        """Logits and penultimate features of the role's model on ``part`` (cached per input set;
        members / nonmembers are the first rows of the whole split's outputs, as in the study)."""
        def compute():
            if part.startswith("source:") or part in ("train", "test", "calibration"):
                x, y, _, _ = self.inputs(role, part)
                t = self.trained(role)
                return cached_outputs(self.cache, t.key, t.model, x, y, self.device)
            split, n = self._split(role, part)
            whole = self.outputs(role, {f"{role}_train": "train", f"{role}_test": "test"}[split])
            return whole.subset(slice(0, n))
        return self._once(("outputs", role, part), compute)

    def outputs_on(self, role: str, x: torch.Tensor, labels: torch.Tensor) -> Outputs:
        """The role's model on any inputs ``x`` (e.g. the shadow on the target's members), cached
        per (model, input set)."""
        t = self.trained(role)
        return cached_outputs(self.cache, t.key, t.model, x, labels, self.device)

    def features(self, role: str, part: str) -> torch.Tensor:
        """float32 [N, D]: penultimate features (the head's input), cached with the logits."""
        return self.outputs(role, part).features

    def release(self, role: str):
        """The role's fitted calibration + release-time defense (``.log_probs(outputs)``)."""
        _check_role(role)
        return self._once(("release", role), lambda: self.release_fn(self, role))

    def log_probs(self, role: str, part: str) -> torch.Tensor:
        """float64 [N, K]: what the role's model releases on ``part`` (calibrated, defended)."""
        return self._once(("log_probs", role, part),
                          lambda: self.release(role).log_probs(self.outputs(role, part)).double())

    def study_scores(self) -> dict[str, dict[str, torch.Tensor]]:
        """attack -> {'members' | source: per-sample scores of the study} ({} without per_sample.pt)."""
        return dict((self.per_sample or {}).get("scores", {}))

    # ------------------------------------------------------------------ reference models
    @property
    def has_reference(self) -> bool:
        """True when the study's attacks use the attacker's reference models (LiRA, RMIA, Shokri)."""
        return any(as_request(r).name.startswith(REFERENCE_SIGNALS) for a in self.attacks for r in a.requires)

    def reference(self):
        """The attacker's :class:`~overconf.reference.manager.ReferenceSet` (trained with the shadow's
        job, as in the study), or None when the study has no reference-model attack."""
        if not self.has_reference:
            return None
        from ..reference.manager import reference_set

        return self._once("reference", lambda: reference_set(self.context, self.jobs["shadow"]))

    def reference_logits(self, role: str, part: str) -> torch.Tensor:
        """float32 [N, K, C]: every reference model's logits on ``part`` (cached per input set)."""
        rs = self._need_reference()
        return self._once(("reference_logits", role, part),
                          lambda: rs.logits(self.inputs(role, part)[0], self.cache, self.device))

    def reference_keep(self, role: str, part: str) -> torch.Tensor:
        """bool [N, K]: which reference models trained on each point of ``part``."""
        rs = self._need_reference()
        x, _, pool, idx = self.inputs(role, part)
        return rs.keep_for(pool, idx, len(x))

    def reference_features(self, role: str, part: str, k: int = 0) -> torch.Tensor:
        """float32 [N, D]: penultimate features of reference model ``k`` on ``part``, computed once
        per (reference model, input set) and cached (kind ``reference_features``)."""
        rs = self._need_reference()
        x = self.inputs(role, part)[0]

        def compute():
            key = content_key({"kind": "reference_features", "model": rs.model_keys[k], "x": tensor_digest(x)})

            def create():
                model = rs.template()
                model.load_state_dict(rs.state_dicts([k], self.cache, self.device)[0])
                return compute_outputs(model.to(self.device), x, self.device)[1]

            return self.cache.get_or_create("reference_features", key, create,
                                            valid=lambda t: t.dim() == 2 and len(t) == len(x))
        return self._once(("reference_features", role, part, k), compute)

    def _need_reference(self):
        rs = self.reference()
        if rs is None:
            raise ValueError(f"{self.tag}: the study has no reference-model attack (lira, rmia, shokri), so "
                             f"there are no reference models; add one to 'attacks'")
        return rs


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise KeyError(f"unknown role '{role}'; use one of {ROLES}")
