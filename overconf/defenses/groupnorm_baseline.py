"""The fair non-private baseline of DP-SGD on a BatchNorm architecture (issue 21; opacus'
``ModuleValidator.fix``): DP-SGD trains the GroupNorm version of the model, so the accuracy cost of
DP is measured against the same GroupNorm model trained WITHOUT DP (same data, recipe and seed),
not against the BatchNorm model. Rows: ``groupnorm_baseline_test_accuracy`` and
``dp_accuracy_cost_vs_groupnorm`` = baseline accuracy - the DP model's accuracy (the cost of DP
alone); the BatchNorm -> GroupNorm swap's own effect is the baseline study's accuracy minus
``groupnorm_baseline_test_accuracy``."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..training.hooks import TrainingHooks
from .dp_sgd import fix_batchnorm, has_batchnorm


class GroupNormHooks(TrainingHooks):
    """Plain training of the GroupNorm version of a BatchNorm architecture (what DP-SGD trains)."""

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return fix_batchnorm(model) if has_batchnorm(model) else model

    def describe(self) -> dict[str, Any]:
        return {"kind": "groupnorm_baseline", "batchnorm": "groupnorm"}


def needs_groupnorm_baseline(job) -> bool:
    """True for a DP-SGD job whose architecture had its BatchNorm replaced."""
    return bool(getattr(job.hooks, "replace_batchnorm", False)) and getattr(job.hooks, "noise_multiplier", None) is not None


def groupnorm_job(job):
    """``job`` without DP: the GroupNorm model, plain training (its own cache key)."""
    return dataclasses.replace(job, hooks=GroupNormHooks())


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).double().mean())


def groupnorm_rows(baseline_logits: torch.Tensor, dp_logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    base = accuracy(baseline_logits, labels)
    return {"groupnorm_baseline_test_accuracy": base, "dp_accuracy_cost_vs_groupnorm": base - accuracy(dp_logits, labels)}
