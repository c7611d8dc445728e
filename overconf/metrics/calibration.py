"""Calibration metrics on predictive probabilities [N, K] (Guo et al. 2017; Thulasidasan et al. 2019)."""
from __future__ import annotations

import torch


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probs.argmax(1) == labels).double().mean()) if len(labels) else float("nan")


def _bins(probs: torch.Tensor, labels: torch.Tensor, n_bins: int):
    """Per-bin (weight, mean confidence, accuracy) over confidence bins [b/n, (b+1)/n), plus a
    last bin for confidence exactly 1 (torchmetrics' binning, so ECE matches it exactly)."""
    conf, pred = probs.double().max(1)
    correct = (pred == labels).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    idx = torch.bucketize(conf, edges, right=True) - 1
    count = torch.bincount(idx, minlength=n_bins + 1).double()
    nz = count > 0
    safe = count.clamp_min(1)
    mean_conf = torch.where(nz, torch.bincount(idx, weights=conf, minlength=n_bins + 1) / safe, 0.0)
    acc = torch.where(nz, torch.bincount(idx, weights=correct, minlength=n_bins + 1) / safe, 0.0)
    return count / count.sum().clamp_min(1), mean_conf, acc


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """ECE = sum_b |B_b|/n * |acc(B_b) - conf(B_b)| over ``n_bins`` equal-width bins."""
    w, conf, acc = _bins(probs, labels, n_bins)
    return float((w * (acc - conf).abs()).sum())


def overconfidence_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """OE = sum_b |B_b|/n * conf(B_b) * max(conf(B_b) - acc(B_b), 0) (Thulasidasan et al. 2019)."""
    w, conf, acc = _bins(probs, labels, n_bins)
    return float((w * conf * (conf - acc).clamp_min(0)).sum())


def reliability(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15):
    """(bin weights, mean confidence, accuracy) for a reliability diagram."""
    return _bins(probs, labels, n_bins)
