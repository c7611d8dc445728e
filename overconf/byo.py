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

import numpy as np
import torch

from .api import StudyResult
from .attacks import Signals
from .attacks.tensors import get as get_attack
from .config import Component, MetricsConfig
from .config.convert import build
from overconf.core import checks
from overconf.core.errors import InputError, InputTypeError
from .metrics import accuracy, expected_calibration_error, membership_metrics, mmps, overconfidence_error
from overconf.core.seeding import generator

NO_ATTACK = "-"
Data = Union[torch.Tensor, Sequence[torch.Tensor]]
"""model inputs x, or (x, labels); labels -1 (or absent) where the input has no task label"""


def _split(data: Data, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of one input set, checked (:mod:`overconf.core.checks`): floating inputs
    [N, ...], N >= 1; integer labels [N] (their range is checked against the model's K later)."""
    if isinstance(data, (torch.Tensor, np.ndarray)):
        x = checks.model_inputs(data, where)
        return x, torch.full((len(x),), -1, dtype=torch.long)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x = checks.model_inputs(data[0], f"{where} inputs")
        return x, checks.labels(data[1], f"{where} labels", len(x))
    raise InputTypeError(f"{where} must be a tensor of model inputs or a pair (inputs, labels), "
                         f"got {type(data).__name__}")


@torch.inference_mode()
def model_logits(model: torch.nn.Module, x: torch.Tensor, device: str | torch.device = "cpu",
                 batch_size: int = 1024, *, name: str = "inputs") -> torch.Tensor:
    """Logits [N, K] (float32, CPU) of ``model`` in eval mode; an overconf classifier goes through
    the study's own :func:`~overconf.signals.outputs.compute_outputs` (identical numbers).

    ``x``: floating inputs [N, ...], N >= 1, cast to the dtype of the model's first floating-point
    parameter (float64 inputs of a float32 model become float32); integer (uint8) pixels are
    refused. The model must return one tensor of logits [B, K], K >= 2, finite, per batch of B
    inputs. A model that fails on the inputs is reported with their shape and what its first
    layer takes (errors name ``name``)."""
    x = checks.model_inputs(x, name)
    x = x.to(checks.model_input_dtype(model, x.dtype))
    checks.model_shape(x, name, model)
    batch_size = checks.number(batch_size, "batch_size", low=1, integer=True)
    device = torch.device(device)
    was_training = model.training
    try:
        if hasattr(model, "features") and hasattr(model, "head"):
            from overconf.signals.outputs import compute_outputs

            z = compute_outputs(model, x, device, batch_size)[0]
        else:
            model.eval()
            out = [checks.model_outputs(model(xb.to(device)), name, len(xb)).float().cpu()
                   for xb in x.split(batch_size)]
            z = torch.cat(out)
    except InputError:
        raise
    except Exception as e:  # the model cannot take these inputs: say which shape met which model
        layer = checks.first_layer(model, x[:1].to(device))
        raise InputError(f"{name}: the model failed on inputs of per-sample shape {checks.sample_text(x)} "
                         f"({x.dtype}){'; ' + layer if layer else ''}: {type(e).__name__}: {e}; pass inputs of "
                         f"the shape and normalisation the model was trained on") from e
    finally:
        model.train(was_training)
    return checks.logits(z, f"{name}: the model's outputs")


def matched_members(seed: int, source: str, n_members: int, n_source: int) -> torch.Tensor:
    """The members a source is compared with (as :meth:`overconf.runner.study.Study.matched_members`):
    all, or a seeded subset of the source's size."""
    if n_source >= n_members:
        return torch.arange(n_members)
    perm = torch.randperm(n_members, generator=generator(seed, "matched_members", source))
    return perm[:n_source].sort().values


def _arguments(model, shadow, nonmembers, attacks, metrics, temperature, seed) -> tuple:
    """The arguments of :func:`evaluate` that are not input sets, checked: (shadow model, shadow
    members, shadow non-members, MetricsConfig, temperature, seed)."""
    checks.module(model, "model")
    if shadow is None or not isinstance(shadow, (tuple, list)) or len(shadow) not in (2, 3):
        raise InputError("evaluate needs shadow=(shadow_model, shadow_members, shadow_nonmembers) or "
                         "shadow=(shadow_members, shadow_nonmembers) (fitted on the model itself): every attack is "
                         "fitted on a shadow model's members vs non-members")
    shadow_model, fit_in, fit_out = (model, *shadow) if len(shadow) == 2 else shadow
    checks.module(shadow_model, "shadow[0] (the shadow model)")
    if not isinstance(nonmembers, Mapping):
        raise InputTypeError(f"nonmembers must be a dict {{source name: x or (x, y)}}, got "
                             f"{type(nonmembers).__name__}; e.g. nonmembers={{'test': (x_test, y_test)}}")
    if not nonmembers:
        raise InputError("evaluate needs at least one non-member source, e.g. nonmembers={'test': (x, y)}")
    if isinstance(attacks, (str, Mapping)):
        raise InputTypeError(f"attacks must be a list of attacks, got {type(attacks).__name__}; e.g. "
                             f"attacks=[{attacks!r}]")
    if not isinstance(metrics, (MetricsConfig, Mapping, type(None))):
        raise InputTypeError(f"metrics must be a dict of the study's metrics: section, got {type(metrics).__name__}; "
                             f"e.g. metrics={{'bootstrap': 1000}}")
    mcfg = metrics if isinstance(metrics, MetricsConfig) else build(MetricsConfig, dict(metrics or {}), "metrics")
    checks.number(mcfg.confidence, "metrics.confidence", low=0, high=1, open_low=True, open_high=True)
    for key in ("fpr_targets", "priors"):
        for v in getattr(mcfg, key):
            checks.number(v, f"metrics.{key}", low=0, high=1)
    if temperature is not None:
        temperature = checks.number(temperature, "temperature (T of softmax(z / T))", low=0, open_low=True)
    return shadow_model, fit_in, fit_out, mcfg, temperature, checks.number(seed, "seed", integer=True)


def _input_sets(members: Data, nonmembers: Mapping[str, Data], fit_in: Data, fit_out: Data, *,
                same_model: bool) -> tuple[dict, dict]:
    """The target's and the shadow's input sets {name: (x, y)}, checked before any model runs;
    the sets one model reads share their per-sample shape."""
    target_sets = {"members": _split(members, "members")}
    target_sets |= {f"nonmembers['{k}']": _split(v, f"nonmembers['{k}']") for k, v in nonmembers.items()}
    shadow_sets = {"shadow members": _split(fit_in, "shadow members"),
                   "shadow non-members": _split(fit_out, "shadow non-members")}
    for sets in ((target_sets | shadow_sets,) if same_model else (target_sets, shadow_sets)):
        checks.same_sample_shapes({k: x for k, (x, _) in sets.items()})
    return target_sets, shadow_sets


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

    Checked before any model runs (:mod:`overconf.core.checks`, docs/python-api-inputs.md), each
    error naming the argument (``InputError``; ``InputTypeError``, also a TypeError, for a wrong
    type or dtype): inputs floating [N, ...], N >= 1, one per-sample shape across the sets a model
    reads (an overconf model's own C x H x W); float64 / float16 inputs are cast to the dtype of
    the model's parameters, integer (uint8) pixels are refused; labels integer in [0, K), -1 where
    an input has no label (no train / test accuracy rows then); the model and the shadow return one
    tensor of finite logits [B, K], K >= 2, the same K; ``temperature`` a number > 0, not a bool.

    Returns a :class:`~overconf.api.StudyResult` with the study's rows (model ``name`` or the
    class name, ``seed``, ``setting``), ``scores`` and ``thresholds`` keyed by (seed, name, setting)."""
    shadow_model, fit_in, fit_out, mcfg, temperature, seed = _arguments(model, shadow, nonmembers, attacks, metrics,
                                                                        temperature, seed)
    scale = float(temperature) if temperature is not None else 1.0
    label = name or type(model).__name__
    specs = [Component.from_config(a, f"attacks[{i}]") for i, a in enumerate(attacks)]
    attack_objs = [get_attack(c.name, **c.params).attack for c in specs]
    target_sets, shadow_sets = _input_sets(members, nonmembers, fit_in, fit_out, same_model=shadow_model is model)

    def sig(m: torch.nn.Module, where: str, sets: dict, k: int | None = None) -> Signals:
        x, y = sets[where]
        z = model_logits(m, x, device, batch_size, name=where)
        if k is not None:  # the shadow's classes are the target's
            checks.same_classes(z.shape[1], f"{where}: the shadow model's outputs", k, "the model's outputs")
        y = checks.label_range(y, f"{where} labels", z.shape[1])
        return Signals(torch.log_softmax(z.double() / scale, dim=1), y)

    target_in = sig(model, "members", target_sets)
    sources = {str(k): sig(model, f"nonmembers['{k}']", target_sets) for k in nonmembers}
    k = target_in.log_probs.shape[1]
    shadow_in, shadow_out = (sig(shadow_model, w, shadow_sets, k) for w in ("shadow members", "shadow non-members"))
    columns = {"arch": type(model).__name__, "calibration": "none" if temperature is None else "temperature",
               "calibration.T": temperature, "attacker": "same",
               "shadow": "target" if shadow_model is model else "shadow model"}
    key = (seed, label, setting)

    def row(attack: str, source: str, metric: str, value: Any) -> dict:
        return {"model": label, "seed": seed, "setting": setting, "attack": attack, "source": source,
                "metric": metric, "value": float(value), **columns}

    rows = [row(NO_ATTACK, "train", "accuracy", accuracy(target_in.probs, target_in.labels))] \
        if bool((target_in.labels >= 0).all()) else []  # no accuracy of unlabelled members (was 0)
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
