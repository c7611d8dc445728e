"""Bring your own model and data: the study's evaluation of one (model, setting) on tensors.

    >>> rows = overconf.evaluate(model, members=(x_train, y_train),
    ...                          nonmembers={"test": (x_test, y_test), "noise": x_noise},
    ...                          shadow=(shadow_model, (xs_in, ys_in), (xs_out, ys_out)))
    >>> rows.frame

What runs is the study's evaluation path (overconf.runner.study.Study.evaluate) for the single-model
attacks, on your trained ``nn.Module`` and your (already normalised) model inputs: outputs ->
log-probabilities (uncalibrated, or at a fixed temperature) -> every attack fitted on the shadow's members vs non-members
(generators seeded as in a study) and applied to the target's members vs each non-member source
(a source with fewer samples is compared with a seeded equal-size subset of the members) ->
membership metrics with Clopper-Pearson / bootstrap intervals and MMPS -> the study's tidy rows.
Nothing is trained but what an attack trains itself (the salem MLP).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence, Union

import torch

from .api import StudyResult
from .attacks import Signals
from .attacks.tensors import get as get_attack
from .config import Component, MetricsConfig
from overconf.core.errors import ConfigError
from .metrics import accuracy, expected_calibration_error, membership_metrics, mmps, overconfidence_error
from overconf.core.seeding import generator

NO_ATTACK = "-"
Data = Union[torch.Tensor, Sequence[torch.Tensor]]
"""model inputs x, or (x, labels); labels -1 (or absent) where the input has no task label"""


def _split(data: Data, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, torch.Tensor):
        return data, torch.full((len(data),), -1, dtype=torch.long)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (torch.as_tensor(t) for t in data)
        if len(x) != len(y):
            raise ConfigError(f"{where}: {len(x)} inputs but {len(y)} labels; pass (x, y) of equal length")
        return x, y.long()
    raise ConfigError(f"{where} must be a tensor of model inputs or a pair (inputs, labels), got {type(data).__name__}")


@torch.inference_mode()
def model_logits(model: torch.nn.Module, x: torch.Tensor, device: str | torch.device = "cpu",
                 batch_size: int = 1024) -> torch.Tensor:
    """Logits [N, K] (float32, CPU) of ``model`` in eval mode; an overconf classifier goes through
    the study's own :func:`~overconf.signals.outputs.compute_outputs` (identical numbers)."""
    device = torch.device(device)
    if hasattr(model, "features") and hasattr(model, "head"):
        from overconf.signals.outputs import compute_outputs

        return compute_outputs(model, x, device, batch_size)[0]
    was_training = model.training
    model.eval()
    out = [model(x[i: i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    if not out:
        raise ConfigError("an input set is empty; pass at least one input")
    return torch.cat(out)


def matched_members(seed: int, source: str, n_members: int, n_source: int) -> torch.Tensor:
    """The members a source is compared with (as :meth:`overconf.runner.study.Study.matched_members`):
    all, or a seeded subset of the source's size."""
    if n_source >= n_members:
        return torch.arange(n_members)
    perm = torch.randperm(n_members, generator=generator(seed, "matched_members", source))
    return perm[:n_source].sort().values


def evaluate(model: torch.nn.Module, members: Data, nonmembers: Mapping[str, Data], *,
             shadow: tuple | None = None,
             attacks: Sequence[Any] = ("max_score", "entropy", "salem"),
             temperature: float | None = None,
             name: str | None = None, setting: str = "baseline", seed: int = 0,
             metrics: Mapping[str, Any] | MetricsConfig | None = None, device: str | torch.device = "cpu",
             batch_size: int = 1024) -> StudyResult:
    """Evaluate membership inference on your trained ``model`` and tensors; no target training.

    ``members``: the model's training inputs (x or (x, y)); ``nonmembers``: ``{source name: x or
    (x, y)}`` of inputs it never saw (``test`` also gives test accuracy, ECE and OE rows);
    ``shadow``: ``(shadow_model, shadow_members, shadow_nonmembers)``, or ``(shadow_members,
    shadow_nonmembers)`` to fit the attacks on ``model`` itself (an attacker who knows some of its
    members; None: required for fitting, so an error). ``temperature``: release softmax(z / T)
    from target and shadow (fixed temperature scaling, Guo et al. 2017) instead of softmax(z). ``attacks``: single-model attacks as in a
    study's ``attacks:`` list (names or ``{"name": ..., params}``); ``metrics``: the study's
    ``metrics:`` section. Inputs are the model's inputs (normalise them as it was trained).

    Returns a :class:`~overconf.api.StudyResult` with the study's rows (model ``name`` or the
    class name, ``seed``, ``setting``), ``scores`` and ``thresholds`` keyed by (seed, name, setting)."""
    if shadow is None or not isinstance(shadow, (tuple, list)) or len(shadow) not in (2, 3):
        raise ConfigError("evaluate needs shadow=(shadow_model, shadow_members, shadow_nonmembers) or "
                          "shadow=(shadow_members, shadow_nonmembers) (fitted on the model itself): every attack is "
                          "fitted on a shadow model's members vs non-members")
    shadow_model, fit_in, fit_out = (model, *shadow) if len(shadow) == 2 else shadow
    if not nonmembers:
        raise ConfigError("evaluate needs at least one non-member source, e.g. nonmembers={'test': (x, y)}")
    if isinstance(metrics, MetricsConfig):
        mcfg = metrics
    else:
        try:
            mcfg = MetricsConfig(**dict(metrics or {}))
        except TypeError as e:
            raise ConfigError(f"metrics: {e}; allowed keys: bootstrap, confidence, fpr_targets, priors, ece_bins") \
                from None
    if temperature is not None and not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ConfigError(f"temperature must be a positive number (softmax(z / T)), got {temperature!r}")
    scale = float(temperature) if temperature is not None else 1.0
    label = name or type(model).__name__
    specs = [Component.from_config(a, f"attacks[{i}]") for i, a in enumerate(attacks)]
    attack_objs = [get_attack(c.name, **c.params).attack for c in specs]

    def sig(m: torch.nn.Module, data: Data, where: str) -> Signals:
        x, y = _split(data, where)
        return Signals(torch.log_softmax(model_logits(m, x, device, batch_size).double() / scale, dim=1), y)

    target_in = sig(model, members, "members")
    sources = {str(k): sig(model, v, f"nonmembers['{k}']") for k, v in nonmembers.items()}
    shadow_in, shadow_out = sig(shadow_model, fit_in, "shadow members"), sig(shadow_model, fit_out, "shadow non-members")
    columns = {"arch": type(model).__name__, "calibration": "none" if temperature is None else "temperature",
               "calibration.T": temperature, "attacker": "same",
               "shadow": "target" if shadow_model is model else "shadow model"}
    key = (seed, label, setting)

    def row(attack: str, source: str, metric: str, value: Any) -> dict:
        return {"model": label, "seed": seed, "setting": setting, "attack": attack, "source": source,
                "metric": metric, "value": float(value), **columns}

    rows = [row(NO_ATTACK, "train", "accuracy", accuracy(target_in.probs, target_in.labels))]
    if "test" in sources and bool((sources["test"].labels >= 0).all()):
        t = sources["test"]
        rows += [row(NO_ATTACK, "test", "accuracy", accuracy(t.probs, t.labels)),
                 row(NO_ATTACK, "test", "ece", expected_calibration_error(t.probs, t.labels, mcfg.ece_bins)),
                 row(NO_ATTACK, "test", "overconfidence_error", overconfidence_error(t.probs, t.labels, mcfg.ece_bins))]
    rows.append(row(NO_ATTACK, "members", "mean_max_score", target_in.max_score.mean()))
    rows += [row(NO_ATTACK, s, "mean_max_score", v.max_score.mean()) for s, v in sources.items()]
    index = {s: matched_members(seed, s, len(target_in), len(v)) for s, v in sources.items()}
    scores: dict[str, dict[str, torch.Tensor]] = {}
    thresholds: dict[str, float] = {}
    for attack in attack_objs:  # as Study.attack_rows: the same generators, metrics and rows
        fitted = attack.fit(shadow_in, shadow_out, generator=generator(seed, "attack", attack.label, label, setting))
        thresholds[attack.label] = fitted.threshold
        s_in = fitted.score(target_in)
        scores[attack.label] = {"members": s_in}
        rows += [row(attack.label, "shadow", k, v) for k, v in fitted.info.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)]
        for src, s in sources.items():
            s_out = fitted.score(s)
            scores[attack.label][src] = s_out
            idx = index[src]
            m = membership_metrics(s_in[idx], s_out, fitted.threshold, fpr_targets=mcfg.fpr_targets,
                                   priors=mcfg.priors, n_boot=mcfg.bootstrap, confidence=mcfg.confidence,
                                   generator=generator(seed, "bootstrap", attack.label, src))
            m |= mmps(target_in.max_score[idx], s.max_score, s_in[idx] >= fitted.threshold,
                      s_out >= fitted.threshold)
            rows += [row(attack.label, src, k, v) for k, v in m.items()]
    return StudyResult(rows, {key: scores}, {key: thresholds}, {key: index})


__all__ = ["evaluate", "model_logits", "matched_members"]
